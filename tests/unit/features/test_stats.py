"""Stats: what scripted traffic counts (through the router's accept, exactly once), the
`stats` report and its chart, and the refusals."""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mautrix.types import RoomID, UserID
from PIL import Image

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core import charts
from communities_appservice.core.service import Service
from communities_appservice.db import now_ms
from communities_appservice.features import stats as feature
from communities_appservice.matrix.router import Router
from communities_appservice.rules.stats import Kind, classify, day_of

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, BOT, CAROL, OWNER, CommunityMaker, Made

_IDS = itertools.count(1)
DAVE = UserID("@dave:example.org")


def ev(
    room: str, sender: str, content: dict[str, Any], kind: str = "m.room.message"
) -> dict[str, Any]:
    return {
        "type": kind,
        "sender": sender,
        "room_id": room,
        "event_id": f"$s{next(_IDS)}",
        "origin_server_ts": now_ms(),
        "content": content,
    }


def text(body: str = "hi", **relation: str) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if relation:
        content["m.relates_to"] = dict(relation)
    return content


def member(room: str, user: str, new: str, prev: str | None) -> dict[str, Any]:
    event = ev(room, user, {"membership": new}, "m.room.member")
    event["state_key"] = user
    if prev is not None:
        event["unsigned"] = {"prev_content": {"membership": prev}}
    return event


def receipt(room: str, event_id: str, user: str) -> dict[str, Any]:
    content = {event_id: {"m.read": {user: {"ts": now_ms()}}}}
    return {"type": "m.receipt", "room_id": room, "content": content}


async def stats_of(service: Service, gateway: RecordingGateway, room: RoomID, body: str,
                   sender: UserID = OWNER) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The text reply to a command and what was sent after it."""
    before = len(gateway.sent(room))
    dispatcher = Dispatcher(service)
    command = ev(room, sender, text(body))
    incoming = dispatcher.parse_incoming(command)
    assert incoming is not None
    await dispatcher.handle(incoming)
    new = gateway.sent(room)[before:]
    return str(new[0]["body"]), new[1:]


@pytest.fixture
async def router(service: Service) -> AsyncIterator[Router]:
    async def nothing(event: dict[str, Any]) -> None:
        return None

    r = Router(service.db, nothing)
    r.counter = lambda events, ephemeral: feature.count(service, events, ephemeral)
    yield r
    await r.wait_idle()
    await r.stop()


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids", "Teens"])


async def test_traffic_is_counted_exactly_once(
    service: Service, gateway: RecordingGateway, made: Made, router: Router
) -> None:
    kids, teens, news = made.groups["Kids"], made.groups["Teens"], made.announcements
    root = ev(kids, ALICE, text("first"))
    post1 = ev(news, OWNER, text("school closed friday"))
    post2 = ev(news, BOT, text("relayed"))
    traffic = [
        root,
        ev(kids, ALICE, text("second")),
        ev(kids, BOB, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"}, "m.room.encrypted"),
        ev(kids, BOB, text("in thread", rel_type="m.thread", event_id=root["event_id"])),
        ev(kids, ALICE, text("* edit", rel_type="m.replace", event_id=root["event_id"])),
        ev(
            kids,
            CAROL,
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": root["event_id"],
                    "key": "👍",
                }
            },
            "m.reaction",
        ),  # fmt: skip
        ev(teens, CAROL, text("hello teens")),
        post1,
        post2,
        ev(
            news,
            ALICE,
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": post1["event_id"],
                    "key": "❤️",
                }
            },
            "m.reaction",
        ),  # fmt: skip
        ev(
            news,
            BOB,
            {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "x",
                "m.relates_to": {"rel_type": "m.annotation", "event_id": post1["event_id"]},
            },
            "m.room.encrypted",
        ),  # fmt: skip
        member(made.space, DAVE, "join", None),
        member(made.space, DAVE, "join", "join"),  # a new display name: not a join
        member(made.space, CAROL, "leave", "join"),
        member(made.space, BOT, "join", "invite"),
        ev("!elsewhere:example.org", ALICE, text("not a community room")),
    ]
    reads = [
        receipt(news, post2["event_id"], ALICE),
        receipt(news, post1["event_id"], BOB),
        receipt(news, post1["event_id"], ALICE),
        receipt(news, post2["event_id"], BOT),
    ]
    await router.accept("t1", traffic[:8], "d1")
    await router.accept("t2", traffic[8:], "d2", reads)
    await router.accept("t2", traffic[8:], "d2", reads)  # a retry: the router does not store it
    await router.accept("t3", [traffic[0]], "d3")  # the same event again, in a new transaction

    day = day_of(now_ms())
    counts = {(c.room_id, c.kind): c.n for c in await service.db.stats.per_room(made.space, day)}
    assert counts == {
        (kids, Kind.MESSAGE): 3,
        (kids, Kind.THREAD): 1,
        (kids, Kind.REACTION): 1,
        (teens, Kind.MESSAGE): 1,
        (news, Kind.MESSAGE): 1,  # the owner's post; the bot's own events are not counted
        (news, Kind.REACTION): 2,
        (made.space, Kind.JOIN): 1,
        (made.space, Kind.LEAVE): 1,
    }
    assert await service.db.stats.active_members(made.space, day) == 4  # alice bob carol owner
    posts = {p.event_id: p.readers for p in await service.db.stats.posts(made.space, 0, 10)}
    assert posts == {post1["event_id"]: 2, post2["event_id"]: 1}

    reply, after = await stats_of(service, gateway, kids, "!community stats --days 3")
    assert "the last 3 days" in reply
    assert "Members: " in reply and "1 joined, 1 left; 4 active" in reply
    assert "Announcements: 2 reactions, 0 thread replies, 0 poll votes; 0 RSVPs" in reply
    assert "Kids: 3 messages, 1 thread replies, 1 reactions, 0 poll votes" in reply
    assert "Teens: 1 messages, 0 thread replies, 0 reactions" in reply
    assert reply.count("UTC: ") == 2 and ": 2" in reply
    assert [c["msgtype"] for c in after] == ["m.image"]
    png = gateway.uploads[-1][0]
    assert Image.open(io.BytesIO(png)).format == "PNG"
    for needle in (b"school", b"hi", b"relayed"):
        assert needle not in png  # nothing of the content


async def test_no_user_ids_are_stored(service: Service, made: Made, router: Router) -> None:
    await router.accept("t1", [ev(made.groups["Kids"], ALICE, text())], "d1")
    rows = await service.db.db.fetch("SELECT who FROM stat_active")
    assert len(rows) == 1 and "alice" not in str(rows[0]["who"])


def test_classify_from_cleartext() -> None:
    assert classify(ev("!r", ALICE, text()), BOT) is Kind.MESSAGE
    assert classify(ev("!r", BOT, text()), BOT) is None
    assert classify(ev("!r", ALICE, text(rel_type="m.reference", event_id="$p")), BOT) is None
    vote = ev("!r", ALICE, {"m.relates_to": {"rel_type": "m.reference", "event_id": "$p"}},
              "org.matrix.msc3381.poll.response")  # fmt: skip
    assert classify(vote, BOT) is None


def test_chart_draws_hebrew_and_chinese_names() -> None:
    series = {"הורים תל אביב": [1, 2, 3], "北京家长": [3, 2, 1], "Parents": [0, 1, 0]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = charts.stacked_bars("קהילה 社区", ["a", "b", "c"], series, "messages")
    assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert charts.shown("אבג") == "גבא"  # drawn in visual order


@pytest.mark.parametrize("days", ["0", "91", "week", "-1"])
async def test_bad_days_are_refused(
    service: Service, gateway: RecordingGateway, made: Made, days: str
) -> None:
    reply, after = await stats_of(
        service, gateway, made.announcements, f"!community stats --days {days}"
    )
    assert "--days must be a whole number from 1 to 90" in reply and not after


async def test_members_cannot_read_stats(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    reply, after = await stats_of(service, gateway, made.announcements, "!community stats", ALICE)
    assert "Only admins" in reply and not after
