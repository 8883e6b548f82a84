"""export: an archive of every record kind of one community, and back (the round trip), on
both databases; what it leaves out; who may ask for it."""

from __future__ import annotations

import io
import itertools
import zipfile

import pytest
from mautrix.types import EventID, RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core.service import Service
from communities_appservice.db import now_ms
from communities_appservice.db.ban import Ban
from communities_appservice.db.event import CommunityEvent
from communities_appservice.db.export import QUERIES
from communities_appservice.db.invite_link import InviteLink
from communities_appservice.db.join_request import JoinRequest
from communities_appservice.db.schedule import Job
from communities_appservice.features import export as feature
from communities_appservice.rules.model import AdminRole
from communities_appservice.rules.stats import day_of

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, CAROL, OWNER, CommunityMaker, Made

_IDS = itertools.count(1)
DAVE = UserID("@dave:example.org")


async def ask(service: Service, gateway: RecordingGateway, room: RoomID, sender: UserID) -> str:
    event = {
        "type": "m.room.message",
        "sender": sender,
        "room_id": room,
        "event_id": f"$x{next(_IDS)}",
        "content": {"msgtype": "m.text", "body": "!community export"},
    }
    dispatcher = Dispatcher(service)
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    before = len(gateway.sent(room))
    await dispatcher.handle(incoming)
    replies = [m for m in gateway.sent(room)[before:] if m.get("msgtype") == "m.notice"]
    return str(replies[-1]["body"])


async def fill(service: Service, made: Made) -> None:
    """One record or more of every kind."""
    db, space, now = service.db, made.space, now_ms()
    group = made.groups["Kids"]
    for user in (ALICE, BOB, CAROL):
        await db.members.add(space, user, now)
    await db.admins.put(space, ALICE, AdminRole.ADMIN, now)
    await db.group_admins.add(group, BOB, now)
    await db.bans.put(Ban(space, DAVE, "spam", OWNER, now))
    await db.join_requests.put(JoinRequest(space, UserID("@eve:example.org"), space, "hi", now))
    await db.texts.put(space, "welcome", "Welcome to **Parents** — שלום, 欢迎")
    await db.invite_links.put(InviteLink(space, "#communities_parents:example.org", now))
    await db.schedule.add(
        Job(0, space, "announce", OWNER, {"text": "Meeting"}, now + 3_600_000, "", "UTC", "", 0,
            "pending", now)
    )  # fmt: skip
    poll = await db.polls.add(space, OWNER, "Which day?", ["Mon", "Tue", "Wed"], 1, True, now)
    await db.polls.posted(poll, made.announcements, EventID("$poll"))
    for n, (user, answer) in enumerate([(ALICE, "1"), (BOB, "2"), (CAROL, "2")]):
        await db.polls.vote(poll, EventID(f"$v{n}"), made.announcements, user, now + n, [answer])
    event = await db.events.add(
        CommunityEvent(0, space, OWNER, "Picnic", "Park", now + 86_400_000, now + 90_000_000,
                       "Europe/Paris", [3600], "upcoming", "", "", now)
    )  # fmt: skip
    await db.events.answer(event, ALICE, "yes", now)
    await db.events.answer(event, BOB, "no", now)
    await db.stats.add({(space, group, day_of(now), "message"): 5})
    await db.stats.add({(space, made.announcements, day_of(now), "reaction"): 2})


async def test_every_record_kind_goes_into_the_archive_and_back(
    service: Service, gateway: RecordingGateway, create_community: CommunityMaker
) -> None:
    made = await create_community("Parents")
    await fill(service, made)
    other = await create_community("Others", groups=("Elsewhere",))
    await service.db.members.add(other.space, DAVE, now_ms())

    reply = await ask(service, gateway, made.groups["Kids"], OWNER)
    assert "in the admins room" in reply
    assert "Members: 3, admins: 2, groups: 2," in reply  # the owner is an admin too
    [sent] = [m for m in gateway.sent(made.admins) if m.get("msgtype") == "m.file"]
    assert sent["info"]["mimetype"] == "application/zip"
    assert sent["body"].startswith("Parents-") and sent["body"].endswith(".zip")
    data = gateway.media_store[sent["url"]]

    parts = feature.read(data)
    records = await service.db.export.records(made.space)
    for kind in QUERIES:  # the round trip: what the database holds, kind by kind
        assert records[kind], kind  # every kind is exercised
        if kind == "stats":
            assert parts["stats"] == [
                {k: r[k] for k in ("day", "room_id", "kind", "n")} for r in records["stats"]
            ]
        else:
            assert parts[kind] == records[kind], kind
    assert parts["polls"][0]["announcements"] is True  # on both databases
    assert {r["adopted"] for r in parts["rooms"]} == {False}
    assert parts["manifest"]["community"] == made.space
    assert parts["manifest"]["records"]["members"] == 3
    assert {m["user_id"] for m in parts["members"]} == {ALICE, BOB, CAROL}  # not Dave's
    assert parts["texts"][0]["body"] == "Welcome to **Parents** — שלום, 欢迎"
    [tally] = parts["tallies"]
    assert tally["question"] == "Which day?"
    assert [o["votes"] for o in tally["options"]] == [1, 2, 0]
    assert tally["voters"] == 3
    [ics] = parts["ics"].values()
    assert "SUMMARY:Picnic" in ics and "LOCATION:Park" in ics and "Europe/Paris" in ics
    assert sorted(r["n"] for r in parts["stats"]) == [2, 5]


async def test_the_archive_holds_no_hashes_of_people(
    service: Service, gateway: RecordingGateway, create_community: CommunityMaker
) -> None:
    made = await create_community("Parents")
    await service.db.stats.active([(made.space, day_of(now_ms()), "hash-of-alice")])
    await ask(service, gateway, made.admins, OWNER)
    [sent] = [m for m in gateway.sent(made.admins) if m.get("msgtype") == "m.file"]
    archive = zipfile.ZipFile(io.BytesIO(gateway.media_store[sent["url"]]))
    for name in archive.namelist():
        assert b"hash-of-alice" not in archive.read(name), name


async def test_members_cannot_export(
    service: Service, gateway: RecordingGateway, create_community: CommunityMaker
) -> None:
    made = await create_community("Parents")
    await service.db.members.add(made.space, ALICE, now_ms())
    reply = await ask(service, gateway, made.groups["Kids"], ALICE)
    assert "admin" in reply.lower()
    assert not [m for m in gateway.sent(made.admins) if m.get("msgtype") == "m.file"]


def test_what_is_not_an_archive_is_refused() -> None:
    with pytest.raises(ValueError, match="not an export archive"):
        feature.read(b"PK not really")
