"""The bot as a full Megolm participant, tested with independent E2EE clients (matrix-nio)."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import pytest
from mautrix.types import EventID, UserID
from nio import MegolmEvent

from communities_appservice.core.parking import PARK_FOR

from .e2ee import E2EEUser
from .harness import Stack, eventually


def encrypted_reply(reply: object) -> bool:
    return reply.decrypted and reply.source.get("type") == "m.room.message"  # type: ignore[attr-defined]


async def test_encrypted_dm_command_gets_an_encrypted_reply(
    stack: Stack, people: list[E2EEUser], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    owner = await stack.e2ee_person("owner")  # type: ignore[attr-defined]
    dm = await owner.encrypted_dm(stack.bot)
    secret = f"Secret Parents {secrets.token_hex(4)}"
    event_id = await owner.send(dm, f'!community create "{secret}"')
    reply = await owner.reply_to(event_id)
    assert reply.decrypted, "the reply was not encrypted"
    assert "Created community" in reply.body
    assert secret in reply.body
    # Nothing decrypted reaches the logs, at any level.
    service_records = [r for r in caplog.records if not r.name.startswith("nio")]
    assert service_records, "the service logged nothing at all: the check would be empty"
    leaked = [r.name for r in service_records if secret in r.getMessage()]
    assert leaked == [], leaked


async def test_commands_in_encrypted_community_rooms(stack: Stack, people: list[E2EEUser]) -> None:
    person = stack.e2ee_person  # type: ignore[attr-defined]
    owner = await person("owner")
    dm = await owner.encrypted_dm(stack.bot)
    created = await owner.reply_to(await owner.send(dm, "!community create Encrypted --join open"))
    assert "Created community" in created.body
    assert stack.app is not None
    [community] = [
        c for c in await stack.app.tables.communities.all_active() if c.owner == owner.user_id
    ]
    rooms = {
        r.role: r.room_id for r in await stack.app.tables.rooms.of_community(community.space_id)
    }
    for role in ("space", "announcements", "admins"):
        await owner.join(rooms[role])
    second_device = await person("owner", owner.user_id[1:].split(":")[0])
    member = await person("member")
    await member.join(rooms["space"])
    await member.wait(
        lambda: rooms["announcements"] in member.client.invited_rooms, "the announcements invite"
    )
    await member.join(rooms["announcements"])

    event_id = await owner.send(rooms["announcements"], "!community info")
    for reader in (owner, second_device, member):
        reply = await reader.reply_to(event_id)
        assert reply.decrypted and "Encrypted" in reply.body, reader.user_id

    group_reply = await owner.reply_to(
        await owner.send(rooms["admins"], "!community group create Talk")
    )
    assert group_reply.decrypted and "Created group Talk" in group_reply.body
    [talk] = await stack.app.tables.rooms.of_community(community.space_id, "group")
    await owner.join(talk.room_id)
    await member.join(talk.room_id)
    event_id = await member.send(talk.room_id, "!community group list")
    for reader in (member, owner):
        reply = await reader.reply_to(event_id)
        assert reply.decrypted and "Talk" in reply.body, reader.user_id


async def test_withheld_keys_get_a_could_not_read_notice(
    stack: Stack, people: list[E2EEUser]
) -> None:
    """Keys that never come: the event waits its bound, parked, then its sender is told."""
    assert stack.app is not None and stack.app.events is not None
    parking, crypto = stack.app.events.parking, stack.app.crypto
    assert parking is not None and crypto is not None
    parking.park_for = 2.0
    try:
        owner = await stack.e2ee_person("owner")  # type: ignore[attr-defined]
        dm = await owner.encrypted_dm(stack.bot)
        await owner.sync()
        bot_device = owner.client.device_store[stack.bot][crypto.device_id]
        owner.client.blacklist_device(bot_device)
        event_id = await owner.send(dm, "!community help")
        reply = await owner.reply_to(event_id)
        assert "could not read" in reply.body
    finally:
        parking.park_for = PARK_FOR


async def test_an_event_waiting_for_its_keys_holds_up_nothing_and_runs_when_they_come(
    stack: Stack, people: list[E2EEUser]
) -> None:
    """In a group, a member's command whose keys have not reached the bot is parked: the
    next member's command in that room is answered meanwhile, and the parked one is
    answered once its keys arrive."""
    assert stack.app is not None and stack.app.crypto is not None
    bot_device = stack.app.crypto.device_id
    person = stack.e2ee_person  # type: ignore[attr-defined]
    owner, member = await person("owner"), await person("member")
    rooms = await open_encrypted_community(stack, owner, "Parked")
    await owner.join(rooms["admins"])
    created = await owner.reply_to(
        await owner.send(rooms["admins"], "!community group create Late")
    )
    assert "Created group Late" in created.body
    [late] = [r for r in await stack.app.tables.rooms.of_community(rooms["space"], "group")]
    for user in (owner, member):
        await user.join(rooms["space"])
        await user.join(late.room_id)
    await member.sync()
    member.client.blacklist_device(member.client.device_store[stack.bot][bot_device])
    withheld = await member.send(late.room_id, "!community group list")
    session = member.outbound_session(late.room_id)
    assert stack.app.events is not None and stack.app.events.parking is not None

    async def parked() -> bool:
        assert stack.app is not None
        return await stack.app.tables.parked.holds(EventID(withheld))

    await eventually(parked, "the bot to park the command it cannot read")
    answered = await owner.reply_to(await owner.send(late.room_id, "!community group list"))
    assert "Late" in answered.body
    assert await parked()  # still waiting: the room went on without it

    await member.forward_room_key(late.room_id, session, stack.bot, bot_device)
    reply = await member.reply_to(withheld)
    assert reply.decrypted and "Late" in reply.body

    async def released() -> bool:  # the row goes after the listeners have run
        return not await parked()

    await eventually(released, "the parked command to leave the parking")


async def test_same_device_after_restart_and_in_sync_mode(
    stack: Stack, people: list[E2EEUser]
) -> None:
    assert stack.app is not None and stack.app.crypto is not None
    device, key = stack.app.crypto.device_id, stack.app.crypto.identity_key
    owner = await stack.e2ee_person("owner")  # type: ignore[attr-defined]
    dm = await owner.encrypted_dm(stack.bot)
    await stack.restart_app()
    assert stack.app.crypto is not None
    assert (stack.app.crypto.device_id, stack.app.crypto.identity_key) == (device, key)
    reply = await owner.reply_to(await owner.send(dm, "!community help"))
    assert reply.decrypted and "Commands" in reply.body

    await stack.restart_app(encryption={"appservice": False})
    try:
        assert stack.app.crypto is not None and not stack.app.crypto.appservice_mode
        assert stack.app.crypto.device_id == device
        fresh = await stack.e2ee_person("fresh")  # type: ignore[attr-defined]
        fresh_dm = await fresh.encrypted_dm(stack.bot)
        reply = await fresh.reply_to(await fresh.send(fresh_dm, '!community create "Synced"'))
        assert reply.decrypted and "Created community" in reply.body
    finally:
        await stack.restart_app()


async def open_encrypted_community(stack: Stack, owner: E2EEUser, name: str) -> dict[str, str]:
    """An open community `owner` created from an encrypted DM: its rooms by role."""
    assert stack.app is not None
    dm = await owner.encrypted_dm(stack.bot)
    created = await owner.reply_to(await owner.send(dm, f"!community create {name} --join open"))
    assert "Created community" in created.body
    [community] = [
        c for c in await stack.app.tables.communities.all_active() if c.owner == owner.user_id
    ]
    rooms = await stack.app.tables.rooms.of_community(community.space_id)
    return {r.role: r.room_id for r in rooms}


async def _to_device_from(
    stack: Stack, token: str, since: str, sender: str, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The to-device events `sender` sent to this device after `since`, once there are any
    (a plain /sync with the device's token, so no client library hides any of them)."""
    url = f"{stack.synapse.base_url}/_matrix/client/v3/sync"
    filter_ = json.dumps({"room": {"rooms": []}, "presence": {"types": []}})
    headers = {"Authorization": f"Bearer {token}"}
    found: list[dict[str, Any]] = []

    async def probe() -> list[dict[str, Any]]:
        nonlocal since
        params = {"since": since, "timeout": "1000", "filter": filter_}
        async with stack.http.get(url, params=params, headers=headers) as response:
            body = await response.json()
        since = body["next_batch"]
        events = (body.get("to_device") or {}).get("events") or []
        found.extend(e for e in events if e.get("sender") == sender)
        return found

    return await eventually(probe, f"a to-device message from {sender}", timeout, 0)


async def test_the_bot_forwards_no_room_keys_to_other_users(
    stack: Stack, people: list[E2EEUser]
) -> None:
    """A late joiner asks the bot's device for the session of a message sent before they
    joined: the bot answers `m.room_key.withheld` (`m.unauthorised`), never the key."""
    assert stack.app is not None and stack.app.crypto is not None
    person = stack.e2ee_person  # type: ignore[attr-defined]
    owner = await person("owner")
    rooms = await open_encrypted_community(stack, owner, "Oracle")
    ann = rooms["announcements"]
    for role in ("space", "announcements"):
        await owner.join(rooms[role])
    secret_event = await owner.send(ann, "!community info")
    assert (await owner.reply_to(secret_event)).decrypted  # the bot holds the owner's session

    late = await person("late")
    await late.join(rooms["space"])
    await late.wait(lambda: ann in late.client.invited_rooms, "the announcements invitation")
    await late.join(ann)
    history = await late.client.room_messages(ann, start="", limit=50)
    [locked] = [
        e
        for e in history.chunk  # type: ignore[union-attr]
        if isinstance(e, MegolmEvent) and e.event_id == secret_event
    ]
    since = str(late.client.next_batch)
    bot_device = stack.app.crypto.device_id
    request = locked.as_key_request(stack.bot, str(late.client.device_id), device_id=bot_device)
    await late.client.to_device(request)

    answers = await _to_device_from(stack, str(late.client.access_token), since, stack.bot)
    withheld = ("m.room_key.withheld", "org.matrix.room_key.withheld")
    assert [a["type"] for a in answers if a["type"] not in withheld] == [], answers  # no key
    assert answers[0]["content"]["code"] == "m.unauthorised", answers
    assert answers[0]["content"]["session_id"] == locked.session_id


async def _session_of(stack: Stack, user: E2EEUser, room_id: str, event_id: str) -> str:
    """The Megolm session an encrypted event was sent with, as the homeserver stores it."""
    url = f"{stack.synapse.base_url}/_matrix/client/v3/rooms/{room_id}/event/{event_id}"
    headers = {"Authorization": f"Bearer {user.client.access_token}"}
    async with stack.http.get(url, headers=headers) as response:
        event = await response.json()
    assert event["type"] == "m.room.encrypted", event
    return str(event["content"]["session_id"])


async def test_the_bot_rotates_its_session_when_it_removes_someone(
    stack: Stack, people: list[E2EEUser]
) -> None:
    """The reply to `admin remove` in the admins room is not readable with the session the
    dismissed admin holds: the bot starts a new one as soon as it has removed them."""
    assert stack.app is not None
    person = stack.e2ee_person  # type: ignore[attr-defined]
    owner = await person("owner")
    rooms = await open_encrypted_community(stack, owner, "Rotating")
    admins_room = rooms["admins"]
    for role in ("space", "admins"):
        await owner.join(rooms[role])
    alice = await person("alice")
    await alice.join(rooms["space"])
    added = await owner.reply_to(
        await owner.send(admins_room, f"!community admin add {alice.user_id}")
    )
    assert "is now an admin" in added.body
    await alice.wait(lambda: admins_room in alice.client.invited_rooms, "the admins room")
    await alice.join(admins_room)
    info = await owner.send(admins_room, "!community info")
    seen = await alice.reply_to(info)  # Alice holds the session of the bot's replies now
    assert seen.decrypted

    removed = await owner.reply_to(
        await owner.send(admins_room, f"!community admin remove {alice.user_id}")
    )
    assert "no longer an admin" in removed.body
    before = await _session_of(stack, owner, admins_room, seen.event_id)
    after = await _session_of(stack, owner, admins_room, removed.event_id)
    assert after != before


async def test_a_new_device_of_a_member_who_predates_the_bot_gets_the_next_key(
    stack: Stack, people: list[E2EEUser]
) -> None:
    """In an adopted room, members who joined before the bot are known to its encryption as
    soon as it shares a session: once the bot learns of a new device of theirs, its next
    message reaches that device (the current session is shared with it)."""
    assert stack.app is not None and stack.app.crypto is not None
    crypto = stack.app.crypto
    person = stack.e2ee_person  # type: ignore[attr-defined]
    owner = await person("owner")
    dm = await owner.encrypted_dm(stack.bot)
    created = await owner.reply_to(await owner.send(dm, "!community create Adopting"))
    assert "Created community" in created.body

    carol = await person("carol")
    made = await carol.client.room_create(
        room_version="11",
        invite=[stack.bot],
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    assert hasattr(made, "room_id"), made
    room = str(made.room_id)
    power = {"users": {stack.bot: 100, carol.user_id: 50}, "events": {}, "state_default": 50}
    stepped_down = await carol.client.room_put_state(room, "m.room.power_levels", power)
    assert hasattr(stepped_down, "event_id"), stepped_down
    adopted = await owner.reply_to(await owner.send(dm, f"!community group add {room}"))
    assert "as a group" in adopted.body, adopted.body
    first = await carol.reply_to(await carol.send(room, "!community group list"))
    assert first.decrypted  # the bot shared a session with Carol's first device

    second = await person("carol", carol.user_id[1:].split(":")[0])

    async def known() -> bool:
        devices = await crypto.store.get_devices(UserID(carol.user_id)) or {}
        return second.client.device_id in devices

    await eventually(known, "the bot to learn of Carol's new device")
    event_id = await carol.send(room, "!community group list")
    assert (await second.reply_to(event_id)).decrypted
