"""announce and relay through the dispatcher: what each room gets, what is refused, and that a
post interrupted by the homeserver (or a crash) reaches every room exactly once."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core import operations
from communities_appservice.core.operations import OpState
from communities_appservice.core.posts import Post, markdown
from communities_appservice.core.service import Service
from communities_appservice.matrix.errors import MatrixError

from ...recording import RecordingGateway
from .conftest import ALICE, OWNER, CommunityMaker, Homeserver, Made, until

_IDS = itertools.count(1)
DOWN = aiohttp.ClientConnectionError("the homeserver is away")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(operations, "RETRY_MAX", 0.02)


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids", "Teens", "Big <b>group</b>"])


def command(room_id: str, sender: str, body: str, reply_to: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return {
        "type": "m.room.message",
        "sender": sender,
        "room_id": room_id,
        "event_id": f"$cmd{next(_IDS)}",
        "content": content,
    }


async def ask(
    service: Service, gateway: RecordingGateway, room_id: RoomID, sender: UserID, body: str,
    reply_to: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Send a command; the reply it got."""
    dispatcher = Dispatcher(service)
    incoming = dispatcher.parse_incoming(command(room_id, sender, body, reply_to))
    assert incoming is not None
    await dispatcher.handle(incoming)
    [reply] = [
        m
        for m in gateway.sent(room_id)
        if m.get("msgtype") == "m.notice"
        and m.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == incoming.event_id
    ]
    return reply


def posts(gateway: RecordingGateway, room_id: RoomID) -> list[dict[str, Any]]:
    return [m for m in gateway.sent(room_id) if m.get("msgtype") != "m.notice"]


async def test_announce_posts_markdown_signed_in_the_announcement_room_only(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    reply = await ask(
        service,
        gateway,
        made.admins,
        OWNER,
        "!community announce **Meeting** tonight\n<script>alert(1)</script>\n"
        "bring a [map](javascript:x)",
    )
    assert reply["body"] == "Announced in the announcement room and 0 groups."
    [sent] = posts(gateway, made.announcements)
    assert sent["msgtype"] == "m.text"
    assert sent["m.mentions"] == {}
    assert sent["body"].startswith("**Meeting** tonight\n<script>")  # the text as typed
    assert sent["body"].endswith(f"— {OWNER}")
    html = sent["formatted_body"]
    assert "<strong>Meeting</strong> tonight<br" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html.split("href=")[-1].split(">")[0]
    assert f'<a href="https://matrix.to/#/{OWNER}">' in html
    for group in made.groups.values():
        assert posts(gateway, group) == []


async def test_announce_to_all_groups_and_to_named_groups(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    reply = await ask(service, gateway, made.admins, OWNER, "!community announce --groups all Hi")
    assert reply["body"] == "Announced in the announcement room and 3 groups."
    for room in (made.announcements, *made.groups.values()):
        [sent] = posts(gateway, room)
        assert sent["body"] == f"Hi\n— {OWNER}"
    reply = await ask(
        service,
        gateway,
        made.admins,
        OWNER,
        '!community announce --groups "kids,Big <b>group</b>" Second\n\nparagraph',
    )
    assert reply["body"] == "Announced in the announcement room and 2 groups."
    assert len(posts(gateway, made.groups["Kids"])) == 2
    assert len(posts(gateway, made.groups["Teens"])) == 1
    assert posts(gateway, made.groups["Big <b>group</b>"])[-1]["body"].startswith(
        "Second\n\nparagraph"
    )


async def test_announce_refusals_change_nothing(
    service: Service, gateway: RecordingGateway, homeserver: Homeserver, made: Made
) -> None:
    await homeserver.join(made.space, ALICE)
    await homeserver.join(made.announcements, ALICE)
    before = len(gateway.sent(made.announcements))
    reply = await ask(service, gateway, made.announcements, ALICE, "!community announce Hi")
    assert reply["body"] == "⚠️ Only admins of this community can do that."
    reply = await ask(service, gateway, made.admins, OWNER, "!community announce --groups Nope Hi")
    assert reply["body"] == "⚠️ 'Nope' is not a group of this community."
    reply = await ask(service, gateway, made.admins, OWNER, "!community announce")
    assert reply["body"].startswith("⚠️ What should I announce?")
    reply = await ask(service, gateway, made.admins, OWNER, "!community announce " + "x" * 10_001)
    assert "10000" in reply["body"].replace(",", "")
    assert len(gateway.sent(made.announcements)) == before + 1  # Alice's refusal only


async def test_announce_as_a_reply_to_an_image_forwards_it_per_room(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    uri = await gateway.upload(b"PNG bytes", "image/png", "cat.png")
    image = gateway.post(
        made.admins,
        OWNER,
        {
            "msgtype": "m.image",
            "body": "cat.png",
            "url": uri,
            "info": {"mimetype": "image/png", "size": 9, "thumbnail_url": "mxc://x/y"},
        },
    )
    reply = await ask(
        service, gateway, made.admins, OWNER, "!community announce --groups Kids Our cat", image
    )
    assert reply["body"] == "Announced in the announcement room and 1 groups."
    for room in (made.announcements, made.groups["Kids"]):
        [sent] = posts(gateway, room)
        assert sent["msgtype"] == "m.image"
        assert sent["filename"] == "cat.png"
        assert sent["body"] == f"Our cat\n— {OWNER}"  # the caption
        assert sent["info"] == {"mimetype": "image/png", "size": 9}
        assert gateway.media_store[sent["url"]] == b"PNG bytes"
    media_calls = [c for c in gateway.calls if c[0] == "media"]
    assert {c[1] for c in media_calls} == {made.announcements, made.groups["Kids"]}


async def test_relay_copies_a_message_of_the_announcement_room_into_every_group(
    service: Service, gateway: RecordingGateway, homeserver: Homeserver, made: Made
) -> None:
    original = gateway.post(
        made.announcements,
        OWNER,
        {
            "msgtype": "m.text",
            "body": "Trip **Friday**",
            "format": "org.matrix.custom.html",
            "formatted_body": 'Trip <b>Friday</b><img src="mxc://x/y"><a href="javascript:x">?</a>',
        },
    )
    gateway.rooms[made.groups["Teens"]].members[gateway.bot] = "leave"  # kicked from it
    reply = await ask(service, gateway, made.announcements, OWNER, "!community relay", original)
    assert reply["body"] == (
        "Relayed into 2 of 3 groups.\n⚠️ Not posted in: Teens (the bot may have been removed)."
    )
    for name in ("Kids", "Big <b>group</b>"):
        [sent] = posts(gateway, made.groups[name])
        assert sent["body"] == f"Trip **Friday**\n— relayed from {OWNER}"
        assert sent["formatted_body"].startswith("Trip <b>Friday</b><a>?</a><br>— relayed")
    reply = await ask(service, gateway, made.admins, OWNER, "!community relay", original)
    assert reply["body"].startswith(
        "⚠️ Send relay as a reply to a message in the announcement room."
    )
    reply = await ask(service, gateway, made.announcements, OWNER, "!community relay")
    assert reply["body"].startswith(
        "⚠️ Send relay as a reply to a message in the announcement room."
    )


async def test_a_post_the_homeserver_interrupts_reaches_each_room_once(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    sends = 0

    real = gateway.send_message

    async def flaky(room_id: RoomID, event_type: str, content: Any, txn_id: str = "") -> Any:
        nonlocal sends
        sends += 1
        if content.get("msgtype") == "m.text" and sends == 3:
            # The homeserver made the event, then the answer was lost.
            await real(room_id, event_type, content, txn_id)
            raise DOWN
        return await real(room_id, event_type, content, txn_id)

    gateway.send_message = flaky  # type: ignore[method-assign]
    reply = await ask(service, gateway, made.admins, OWNER, "!community announce --groups all Hi")
    assert "I will finish this" in reply["body"]  # pending: it goes on by itself

    async def done() -> bool:
        ops = await service.db.operations.running()
        return not ops and any(
            "Finished after an interruption" in m["body"] for m in gateway.sent(made.admins)
        )

    await until(done, "the post to finish")
    for room in (made.announcements, *made.groups.values()):
        assert [m["body"] for m in posts(gateway, room)] == [f"Hi\n— {OWNER}"]


async def test_a_refused_room_is_named_and_the_others_get_the_post(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    gateway.fail("send_message", MatrixError("M_FORBIDDEN", "not in room", 403))
    params = Post(
        key="test",
        content={"msgtype": "m.text", "body": "x"},
        rooms=[made.announcements, made.groups["Kids"]],
        space_id=made.space,
        names={made.announcements: "A", made.groups["Kids"]: "K"},
    )
    run = await service.ops.run(params, OWNER)
    op = await service.db.operations.get(run.op.id)
    assert op is not None and op.state == OpState.DONE
    assert op.outcome == "Posted in 1 of 2 rooms; these did not take it: A."


def test_markdown_is_rendered_and_html_escaped() -> None:
    text = markdown('# Title\n\n<b onclick="x">bold?</b> ~~old~~ [ok](https://a.example/?q=<1>)')
    assert "<h1>Title</h1>" in text.html
    assert "&lt;b onclick=&quot;x&quot;&gt;" in text.html
    assert "<s>old</s>" in text.html
    assert 'href="https://a.example/?q=%3C1%3E"' in text.html
    assert markdown("one line").html == "one line"


async def test_a_post_too_long_for_one_event_is_refused_before_anything_is_sent(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    before = len(gateway.sent(made.announcements))
    # Under the text limit in characters, over one event in bytes (with its HTML).
    reply = await ask(
        service, gateway, made.admins, OWNER, "!community announce " + "**中文** " * 1400
    )
    assert reply["body"].startswith("⚠️ That is too long to post:"), reply["body"]
    assert len(gateway.sent(made.announcements)) == before
    assert await service.db.operations.running() == []


async def test_relay_drops_the_quote_of_a_reply(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    original = gateway.post(
        made.announcements,
        OWNER,
        {
            "msgtype": "m.text",
            "body": "> <@x:y> earlier\n\nThe answer",
            "format": "org.matrix.custom.html",
            "formatted_body": "<mx-reply><blockquote>earlier</blockquote></mx-reply>The answer",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$earlier"}},
        },
    )
    await ask(
        service, gateway, made.announcements, OWNER, "!community relay --groups Kids", original
    )
    [sent] = posts(gateway, made.groups["Kids"])
    assert sent["body"] == f"The answer\n— relayed from {OWNER}"
    assert sent["formatted_body"].startswith("The answer<br>")
    assert "m.relates_to" not in sent
