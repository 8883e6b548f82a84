"""Events through the dispatcher and the scheduler: the card, its .ics and pin, answers by
command and by reaction (and taken back), the card's edit, reminders to those going or
maybe exactly once, the end unpinning, cancellation, and the refusals."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import icalendar
import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core import operations
from communities_appservice.core.events import Events
from communities_appservice.core.service import Service
from communities_appservice.features import events as events_feature

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, CAROL, OWNER, CommunityMaker, Homeserver, Made

_IDS = itertools.count(1)
START = datetime(2030, 6, 1, 18, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(operations, "RETRY_MAX", 0.02)
    monkeypatch.setattr(events_feature, "CARD_EVERY_MS", 0)


@pytest.fixture
async def made(create_community: CommunityMaker, homeserver: Homeserver) -> Made:
    made = await create_community(groups=["Kids"])
    for user in (ALICE, BOB, CAROL):
        await homeserver.join(made.space, user, event=True)
    return made


async def ask(
    service: Service, gateway: RecordingGateway, room: RoomID, body: str, sender: UserID = OWNER
) -> str:
    event = {
        "type": "m.room.message",
        "sender": sender,
        "room_id": room,
        "event_id": f"$q{next(_IDS)}",
        "content": {"msgtype": "m.text", "body": body},
    }
    dispatcher = Dispatcher(service)
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    await dispatcher.handle(incoming)
    return str(gateway.sent(room)[-1]["body"])


async def create(service: Service, gateway: RecordingGateway, made: Made, extra: str = "") -> str:
    return await ask(
        service,
        gateway,
        made.admins,
        '!community event create "Picnic <b>" 2030-06-01T18:00Z --end "2030-06-01 20:30Z"'
        f' --place "Park & lake" --remind 1h,1d {extra}',
    )


def reaction(room: RoomID, sender: str, card: str, key: str) -> dict[str, Any]:
    return {
        "type": "m.reaction",
        "room_id": room,
        "sender": sender,
        "event_id": f"$r{next(_IDS)}",
        "origin_server_ts": 1,
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": card, "key": key}},
    }


async def due_now(service: Service, kind: str) -> None:
    """The pending jobs of `kind` fall due now, and the scheduler fires them."""
    await service.db.db.execute(
        "UPDATE scheduled_job SET due_at=1 WHERE kind=$1 AND state='pending'", kind
    )
    await service.scheduler.fire_due()


def dm_texts(gateway: RecordingGateway, user: str) -> list[str]:
    return [
        str(c["body"])
        for r in gateway.rooms.values()
        if user in r.members and len(r.members) == 2
        for _, c in r.messages
    ]


async def test_an_event_card_with_its_ics_pinned_answers_reminders_and_end(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    said = await create(service, gateway, made)
    assert said.splitlines()[0] == ("Event #1: Picnic <b>, Sat 1 Jun 2030 18:00 (UTC) – 20:30."), (
        said
    )
    card, attachment = gateway.sent(made.announcements)[-2:]
    assert card["body"].splitlines()[:4] == [
        "📅 Picnic <b>",
        "🕒 Sat 1 Jun 2030 18:00 (UTC) – 20:30",
        "📍 Park & lake",
        "✅ Going: 0 · ❓ Maybe: 0 · ❌ Can't go: 0",
    ]
    assert "Picnic &lt;b&gt;" in card["formatted_body"]
    assert attachment["msgtype"] == "m.file" and attachment["filename"] == "event-1.ics"
    [(data, mimetype, _)] = [u for u in gateway.uploads if u[2] == "event-1.ics"]
    assert mimetype == "text/calendar"
    [vevent] = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert vevent.decoded("dtstart").astimezone(UTC) == START
    assert vevent.decoded("dtend").astimezone(UTC) == datetime(2030, 6, 1, 20, 30, tzinfo=UTC)
    assert str(vevent["summary"]) == "Picnic <b>" and str(vevent["location"]) == "Park & lake"
    event = await service.db.events.get(1)
    assert event is not None and event.room_id == made.announcements
    pinned = gateway.rooms[made.announcements].state[("m.room.pinned_events", "")]["pinned"]
    assert event.card_id in pinned

    # Answers: by command, by reaction (the latest counts), a reaction taken back.
    assert "yes" in await ask(service, gateway, made.announcements, "!community rsvp #1 YES", ALICE)
    await ask(service, gateway, made.announcements, "!community rsvp 1 maybe", BOB)
    await ask(service, gateway, made.announcements, "!community rsvp 1 no", CAROL)
    carol_yes = reaction(made.announcements, CAROL, event.card_id, "✅\ufe0f")
    await events.handle(carol_yes)
    assert (await service.db.events.answers(1))[CAROL] == "yes"
    await events.handle(reaction(made.announcements, BOB, "$other", "✅"))  # not the card
    await events.handle(reaction(made.announcements, BOB, event.card_id, "👍"))  # no answer
    assert (await service.db.events.answers(1))[BOB] == "maybe"
    await events.handle(
        {
            "type": "m.room.redaction",
            "room_id": made.announcements,
            "sender": CAROL,
            "event_id": f"$d{next(_IDS)}",
            "content": {"redacts": carol_yes["event_id"]},
        }
    )
    assert CAROL not in await service.db.events.answers(1)
    await due_now(service, events_feature.CARD)
    edit = gateway.sent(made.announcements)[-1]
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": event.card_id}
    assert "✅ Going: 1 · ❓ Maybe: 1 · ❌ Can't go: 0" in edit["m.new_content"]["body"]
    listed = await ask(service, gateway, made.admins, "!community event list", ALICE)
    assert "#1 Picnic <b>" in listed and "Going: 1" in listed

    # Reminders go to those going or maybe, once each.
    await due_now(service, events_feature.REMINDER)
    await due_now(service, events_feature.REMINDER)  # nothing left to fire
    for user in (ALICE, BOB):
        texts = [t for t in dm_texts(gateway, user) if t.startswith("⏰ Reminder")]
        assert sorted(t.splitlines()[0] for t in texts) == [
            "⏰ Reminder: Picnic <b> starts in 1 day.",
            "⏰ Reminder: Picnic <b> starts in 1 hour.",
        ]
    assert not any(t.startswith("⏰") for t in dm_texts(gateway, CAROL))

    # The end: unpinned, no more answers.
    await due_now(service, events_feature.OVER)
    pinned = gateway.rooms[made.announcements].state[("m.room.pinned_events", "")]["pinned"]
    assert event.card_id not in pinned
    refused = await ask(service, gateway, made.announcements, "!community rsvp 1 yes", CAROL)
    assert refused == "⚠️ Event #1 is over; it takes no more answers."


async def test_cancelling_tells_those_going_and_ends_the_reminders(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    await create(service, gateway, made)
    await ask(service, gateway, made.announcements, "!community rsvp 1 yes", ALICE)
    await ask(service, gateway, made.announcements, "!community rsvp 1 no", BOB)
    said = await ask(service, gateway, made.admins, "!community event cancel #1")
    assert said == "Cancelled event #1; told 1 members going or maybe."
    assert any("is cancelled" in t for t in dm_texts(gateway, ALICE))
    assert not any("is cancelled" in t for t in dm_texts(gateway, BOB))
    event = await service.db.events.get(1)
    assert event is not None and event.state == "cancelled"
    edit = gateway.sent(made.announcements)[-1]
    assert edit["m.new_content"]["body"].startswith("❌ Cancelled: Picnic <b>")
    pinned = gateway.rooms[made.announcements].state[("m.room.pinned_events", "")]["pinned"]
    assert event.card_id not in pinned
    assert await service.db.schedule.pending(made.space) == []
    again = await ask(service, gateway, made.admins, "!community event cancel 1")
    assert again == "⚠️ Event #1 is cancelled already."


@pytest.mark.parametrize(
    ("body", "sender", "error"),
    [
        ('!community event create Past "2001-01-01 10:00Z"', OWNER, "⚠️ Mon 1 Jan 2001 10:00"),
        (
            "!community event create X 2030-06-01T18:00Z --end 2030-06-01T17:00Z",
            OWNER,
            "⚠️ The end must be after the start.",
        ),
        (
            "!community event create X 2030-06-01T18:00Z --remind 1s,2s,3s,4s,5s,6s",
            OWNER,
            "⚠️ At most 5 reminders per event.",
        ),
        ("!community event create X in 2h --remind 3h", OWNER, "⚠️ A reminder 3 hours before"),
        ("!community event create X 2030-06-01T18:00Z", ALICE, "⚠️ Only admins"),
        ("!community rsvp 9 yes", ALICE, "⚠️ There is no event #9 in this community."),
        ("!community event cancel 1", ALICE, "⚠️ Only admins"),
    ],
)
async def test_refusals_change_nothing(
    service: Service, gateway: RecordingGateway, made: Made, body: str, sender: UserID, error: str
) -> None:
    said = await ask(service, gateway, made.admins, body, sender)
    assert said.startswith(error), said
    assert await service.db.events.upcoming(made.space) == []
    assert await service.db.schedule.pending(made.space) == []


async def test_a_wrong_answer_is_refused(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    await create(service, gateway, made)
    said = await ask(service, gateway, made.announcements, "!community rsvp 1 perhaps", ALICE)
    assert said.startswith("⚠️ Answer yes, no or maybe, not 'perhaps'.")
    assert await service.db.events.answers(1) == {}
