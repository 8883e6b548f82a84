"""Replies to announcements (threads | off), the community's photo, and deactivation."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core.events import Events
from communities_appservice.core.service import Service
from communities_appservice.db.schedule import JobState
from communities_appservice.rules.model import MARKER_EVENT, CommunityState

from ...recording import RecordingGateway
from .conftest import ALICE, OWNER, CommunityMaker, Homeserver, Made, power_users

_IDS = itertools.count(1)


@pytest.fixture
async def made(create_community: CommunityMaker, homeserver: Homeserver) -> Made:
    made = await create_community(groups=["Kids", "Teens"])
    await homeserver.join(made.space, ALICE, event=True)
    await homeserver.join(made.announcements, ALICE, event=True)
    return made


async def ask(
    service: Service, gateway: RecordingGateway, room: RoomID, body: str,
    sender: UserID = OWNER, reply_to: str | None = None,
) -> str:  # fmt: skip
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    event = {
        "type": "m.room.message",
        "sender": sender,
        "room_id": room,
        "event_id": f"$l{next(_IDS)}",
        "content": content,
    }
    dispatcher = Dispatcher(service)
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    await dispatcher.handle(incoming)
    return str(gateway.sent(room)[-1]["body"])


def encrypted(room: RoomID, sender: str, relates: dict[str, Any] | None) -> dict[str, Any]:
    """What the homeserver shows of an encrypted message: the ciphertext and, in the clear,
    its relation."""
    content: dict[str, Any] = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "…"}
    if relates is not None:
        content["m.relates_to"] = relates
    return {
        "type": "m.room.encrypted",
        "room_id": room,
        "sender": sender,
        "event_id": f"$m{next(_IDS)}",
        "content": content,
    }


async def test_threads_mode_opens_encrypted_events_and_off_closes_them(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    power = gateway.rooms[made.announcements].state[("m.room.power_levels", "")]
    assert power["events"]["m.room.encrypted"] == 100
    said = await ask(service, gateway, made.admins, "!community replies threads")
    assert said.startswith("Members may now answer announcements in their threads")
    power = gateway.rooms[made.announcements].state[("m.room.power_levels", "")]
    assert power["events"]["m.room.encrypted"] == 0 and power["events_default"] == 100
    assert "threads" in await ask(service, gateway, made.admins, "!community replies")
    await ask(service, gateway, made.admins, "!community replies off")
    power = gateway.rooms[made.announcements].state[("m.room.power_levels", "")]
    assert power["events"]["m.room.encrypted"] == 100
    said = await ask(service, gateway, made.announcements, "!community replies threads", ALICE)
    assert said == "⚠️ Only admins of this community can do that."
    said = await ask(service, gateway, made.admins, "!community replies sometimes")
    assert said.startswith("⚠️ Replies are threads or off")


async def test_what_is_not_a_thread_reply_is_taken_down_and_its_sender_told_once(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    await ask(service, gateway, made.admins, "!community replies threads")
    root = gateway.post(made.announcements, OWNER, {"msgtype": "m.text", "body": "News"})
    kept = [
        encrypted(made.announcements, ALICE, {"rel_type": "m.thread", "event_id": root}),
        encrypted(made.announcements, ALICE, {"rel_type": "m.annotation", "event_id": root}),
        encrypted(made.announcements, OWNER, None),  # an admin posts at the top
    ]
    top = encrypted(made.announcements, ALICE, None)
    answer = encrypted(made.announcements, ALICE, {"m.in_reply_to": {"event_id": root}})
    # a reference is a vote only when it refers to an open poll (tests/unit/features/test_polls)
    reference = encrypted(made.announcements, ALICE, {"rel_type": "m.reference", "event_id": root})
    for event in [*kept, top, answer, reference]:
        await events.handle(event)
    assert [e for _, e in gateway.redacted] == [
        top["event_id"],
        answer["event_id"],
        reference["event_id"],
    ]
    dms = [r for r in gateway.rooms.values() if ALICE in r.members and len(r.members) == 2]
    [dm] = [r for r in dms if r.messages]
    [told] = [c["body"] for _, c in dm.messages]
    assert "taken down" in told and "thread" in told
    # An edit of one's own thread reply stays; an edit turning a message into something else
    # (of another's reply, or of a top-level one) does not.
    own = gateway.post(
        made.announcements,
        ALICE,
        {
            "msgtype": "m.text",
            "body": "mine",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    edit = encrypted(made.announcements, ALICE, {"rel_type": "m.replace", "event_id": own})
    foreign = encrypted(made.announcements, ALICE, {"rel_type": "m.replace", "event_id": root})
    await events.handle(edit)
    await events.handle(foreign)
    assert gateway.redacted[-1][1] == foreign["event_id"]
    assert edit["event_id"] not in [e for _, e in gateway.redacted]
    assert len(dm.messages) == 1  # told once


async def test_messages_elsewhere_are_left_alone(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    await events.handle(encrypted(made.groups["Kids"], ALICE, None))
    assert gateway.redacted == []


async def test_avatar_from_a_replied_image(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    uri = await gateway.upload(b"jpeg", "image/jpeg", "logo.jpg")
    image = gateway.post(
        made.admins,
        OWNER,
        {"msgtype": "m.image", "body": "logo.jpg", "url": uri, "info": {"mimetype": "image/jpeg"}},
    )
    said = await ask(service, gateway, made.admins, "!community avatar", reply_to=image)
    assert said == "The community's photo is set."
    for room in (made.space, made.announcements):
        avatar = gateway.rooms[room].state[("m.room.avatar", "")]
        assert avatar == {"url": uri, "info": {"mimetype": "image/jpeg"}}
    text = gateway.post(made.admins, OWNER, {"msgtype": "m.text", "body": "no"})
    said = await ask(service, gateway, made.admins, "!community avatar", reply_to=text)
    assert said.startswith("⚠️ Send avatar as a reply to an image.")
    said = await ask(service, gateway, made.announcements, "!community avatar", ALICE, image)
    assert said == "⚠️ Only admins of this community can do that."


async def test_deactivate_needs_the_owner_and_confirmation_then_unlinks_and_closes(
    service: Service, gateway: RecordingGateway, homeserver: Homeserver, made: Made
) -> None:
    await ask(service, gateway, made.admins, "!community schedule in 2h Later")
    said = await ask(service, gateway, made.admins, "!community deactivate")
    assert said.startswith("Deactivating Parents unlinks its 2 groups")
    community = await service.db.communities.get(made.space)
    assert community is not None and community.state == CommunityState.ACTIVE
    said = await ask(service, gateway, made.announcements, "!community deactivate --confirm", ALICE)
    assert said == "⚠️ Only the owner of this community can do that."

    said = await ask(service, gateway, made.admins, "!community deactivate --confirm")
    assert said == "Deactivated Parents. Only info answers for it now."
    community = await service.db.communities.get(made.space)
    assert community is not None and community.state == CommunityState.DEACTIVATED
    for group in made.groups.values():
        room = gateway.rooms[group]
        assert room.state[("m.space.parent", made.space)] == {}
        assert room.state[(MARKER_EVENT, "")] == {}
        assert room.state[("m.room.join_rules", "")] == {"join_rule": "invite"}
        assert gateway.rooms[made.space].state[("m.space.child", group)] == {}
        assert await service.db.rooms.get(group) is None
    power = gateway.rooms[made.announcements].state[("m.room.power_levels", "")]
    assert power["events_default"] > max(
        power_users(gateway, made.announcements).values(), default=0
    )
    assert gateway.rooms[made.space].state[(MARKER_EVENT, "")]["deactivated"] is True
    [job] = [j for j in await service.db.schedule.pending(made.space)] or [None]
    assert job is None
    cancelled = await service.db.db.fetchval(
        "SELECT count(*) FROM scheduled_job WHERE space_id=$1 AND state=$2",
        made.space,
        JobState.CANCELLED,
    )
    assert cancelled == 1

    said = await ask(service, gateway, made.admins, "!community group list")
    assert said == "⚠️ Parents is deactivated: only info answers for it."
    said = await ask(service, gateway, made.admins, "!community info")
    assert "🚫 Deactivated" in said
