"""Room keys at community scale, against the real Synapse: a session shared with a few
hundred devices in parts and chunks (small sizes forced, so that every path is taken), every
device decrypting the bot's message with what it received; a newcomer's devices fetched as
they join, and the newcomer getting the current session alone; a departure starting a new
one, shared with the member list kept since the room's first."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from mautrix.types import Membership, RoomID, UserID

from communities_appservice.matrix import batches, olm

from .devices import LightDevice, megolm_decrypt
from .harness import Stack, eventually

USERS = 150
SECOND_DEVICES = 50  # the first SECOND_DEVICES users have two devices
NOTICE = {"msgtype": "m.notice", "body": "To every device"}


@dataclass
class Crowd:
    room: RoomID
    devices: list[LightDevice]


async def light_device(stack: Stack, prefix: str, devices: int = 1) -> list[LightDevice]:
    user = await stack.user(prefix)
    made = [
        LightDevice(stack.synapse.base_url, stack.http, user.user_id, str(user.client.api.token))
    ]
    for _ in range(devices - 1):
        localpart = user.user_id[1:].split(":")[0]
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": "pw-" + localpart,
        }
        async with stack.http.post(
            stack.synapse.base_url + "/_matrix/client/v3/login", json=body
        ) as response:
            token = str((await response.json())["access_token"])
        made.append(LightDevice(stack.synapse.base_url, stack.http, user.user_id, token))
    for device in made:
        await device.upload_keys()
    return made


async def join(device: LightDevice, room: RoomID) -> None:
    await device.call("POST", f"/rooms/{room}/join", {})


@pytest.fixture(scope="module")
async def crowd(stack: Stack) -> AsyncIterator[Crowd]:
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> list[LightDevice]:
        async with gate:
            return await light_device(stack, "crowd", 2 if n < SECOND_DEVICES else 1)

    people = await asyncio.gather(*(one(n) for n in range(USERS)))
    devices = [d for person in people for d in person]
    assert stack.app is not None and stack.app.gateway is not None
    room = await stack.app.gateway.create_room(
        {
            "preset": "private_chat",
            "initial_state": [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
            "invite": [person[0].user_id for person in people],
        }
    )

    async def joined(person: list[LightDevice]) -> None:
        async with gate:
            await join(person[0], room)

    await asyncio.gather(*(joined(p) for p in people))
    assert stack.app.crypto is not None
    crypto, everyone = stack.app.crypto, {UserID(p[0].user_id) for p in people}

    async def all_seen() -> bool:
        return everyone <= set(await crypto.state.get_members(room, (Membership.JOIN,)))

    await eventually(all_seen, "the bot to see every join")
    await crypto.machine.tracker.settled()  # their devices, fetched as they joined
    yield Crowd(room, devices)


class Recorder:
    """The sizes of the bot's key queries, claims and to-device sends."""

    def __init__(self, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
        assert stack.app is not None and stack.app.crypto is not None
        client = stack.app.crypto.client
        self.queries: list[int] = []
        self.claims: list[int] = []
        self.to_device: list[tuple[str, int]] = []
        self.member_lists = 0
        self.in_flight = self.most_in_flight = 0
        request = client.api.request

        async def counted(method: Any, path: Any, content: Any = None, **kwargs: Any) -> Any:
            where, body = str(path), content if isinstance(content, dict) else {}
            if where.endswith("/keys/query"):
                users = body.get("device_keys", {})
                if client.mxid not in users:  # the bot's look at its own device keys
                    self.queries.append(len(users))
            elif where.endswith("/keys/claim"):
                self.claims.append(sum(len(d) for d in body.get("one_time_keys", {}).values()))
            elif "/sendToDevice/" in where:
                kind = where.split("/sendToDevice/")[1].split("/")[0]
                self.to_device.append((kind, sum(len(d) for d in body["messages"].values())))
            else:
                self.member_lists += where.endswith("/members")
                return await request(method, path, content, **kwargs)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await request(method, path, content, **kwargs)
            finally:
                self.in_flight -= 1

        monkeypatch.setattr(client.api, "request", counted)


async def sent_event(device: LightDevice, room: RoomID, event_id: str) -> dict[str, Any]:
    return await device.call("GET", f"/rooms/{room}/event/{event_id}")


async def key_of(device: LightDevice, room: RoomID, session_id: str) -> dict[str, Any]:
    """The room key of `session_id` this device received, once it has."""

    def found() -> dict[str, Any] | None:
        return next(
            (k for k in device.keys_for(room) if k["content"]["session_id"] == session_id), None
        )

    async def arrived() -> bool:
        if found() is None:
            await device.receive(timeout_ms=1000)
        return found() is not None

    await eventually(arrived, f"the room key of {session_id} at {device.device_id}")
    key = found()
    assert key is not None
    return key


async def test_a_first_message_shares_its_key_in_chunks_with_every_device(
    stack: Stack, crowd: Crowd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(olm, "SHARE_CHUNK_USERS", 60)
    monkeypatch.setattr(olm, "QUERY_CHUNK_USERS", 40)
    monkeypatch.setattr(olm, "CLAIM_CHUNK_USERS", 40)
    monkeypatch.setattr(olm, "TO_DEVICE_CHUNK_MESSAGES", 32)
    monkeypatch.setattr(batches, "PARALLEL_REQUESTS", 3)
    assert stack.app is not None and stack.app.gateway and stack.app.crypto
    # The bot forgets the devices it fetched as the crowd joined: a room it never saw the
    # members of (one it is added to later), whose first message asks for every device.
    db = stack.app.crypto.machine.pg.db
    for user in {d.user_id for d in crowd.devices}:
        await db.execute("DELETE FROM crypto_device WHERE user_id=$1", user)
        await db.execute("DELETE FROM crypto_tracked_user WHERE user_id=$1", user)
    recorder = Recorder(stack, monkeypatch)
    event_id = await stack.app.gateway.send_message(crowd.room, "m.room.message", NOTICE)

    count = len(crowd.devices)
    assert recorder.queries and max(recorder.queries) <= 40
    assert sum(recorder.queries) <= USERS  # users tracked meanwhile are not asked again
    assert recorder.claims and max(recorder.claims) <= 40 * 2
    assert sum(recorder.claims) == count
    keys = [n for kind, n in recorder.to_device if kind == "m.room.encrypted"]
    parts = math.ceil(USERS / 60)  # each part's messages are cut into chunks of its own
    assert math.ceil(count / 32) <= len(keys) <= math.ceil(count / 32) + parts - 1
    assert max(keys) <= 32 and sum(keys) == count
    assert recorder.most_in_flight <= 3

    event = await sent_event(crowd.devices[0], crowd.room, event_id)
    session_id = event["content"]["session_id"]
    for device in crowd.devices:
        key = await key_of(device, crowd.room, session_id)
        assert megolm_decrypt(key, event)["content"] == NOTICE
        own = key["sender_device_keys"]
        assert own["user_id"] == stack.bot
        assert own["keys"][f"ed25519:{own['device_id']}"] == key["keys"]["ed25519"]


async def test_a_newcomer_gets_the_current_session_and_nobody_else_gets_anything(
    stack: Stack, crowd: Crowd, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.app is not None and stack.app.gateway and stack.app.crypto
    gateway, machine = stack.app.gateway, stack.app.crypto.machine
    before = await gateway.send_message(crowd.room, "m.room.message", NOTICE)
    first = await sent_event(crowd.devices[0], crowd.room, before)

    (newcomer,) = await light_device(stack, "newcomer")
    await gateway.invite(crowd.room, UserID(newcomer.user_id))
    await join(newcomer, crowd.room)

    async def noticed() -> bool:
        return UserID(newcomer.user_id) in machine.waiting(crowd.room)

    await eventually(noticed, "the bot to see the newcomer join")
    await machine.tracker.settled()  # the newcomer's devices, fetched as they joined
    recorder = Recorder(stack, monkeypatch)
    after = await gateway.send_message(crowd.room, "m.room.message", NOTICE)
    event = await sent_event(newcomer, crowd.room, after)

    assert event["content"]["session_id"] == first["content"]["session_id"]
    assert recorder.queries == []
    assert recorder.to_device == [("m.room.encrypted", 1)]
    assert recorder.claims == [1]
    key = await key_of(newcomer, crowd.room, event["content"]["session_id"])
    assert megolm_decrypt(key, event)["content"] == NOTICE
    with pytest.raises(Exception, match="(?i)index"):  # what was said before stays unreadable
        megolm_decrypt(key, first)


async def test_a_departure_starts_a_new_session_the_leaver_does_not_get(
    stack: Stack, crowd: Crowd, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.app is not None and stack.app.gateway and stack.app.crypto
    gateway, crypto = stack.app.gateway, stack.app.crypto
    before = await sent_event(
        crowd.devices[0],
        crowd.room,
        await gateway.send_message(crowd.room, "m.room.message", NOTICE),
    )
    leaver, stayer = crowd.devices[-1], crowd.devices[0]
    await leaver.call("POST", f"/rooms/{crowd.room}/leave", {})

    async def rotated() -> bool:
        return await crypto.store.get_outbound_group_session(crowd.room) is None

    await eventually(rotated, "the bot to drop the session the leaver holds")
    recorder = Recorder(stack, monkeypatch)
    event_id = await gateway.send_message(crowd.room, "m.room.message", NOTICE)
    event = await sent_event(stayer, crowd.room, event_id)
    session_id = event["content"]["session_id"]
    assert session_id != before["content"]["session_id"]
    # the member list fetched for the room's first session, kept since by the member events
    assert recorder.member_lists == 0 and recorder.queries == []
    assert recorder.claims == []  # every stayer's device has its Olm session already
    key = await key_of(stayer, crowd.room, session_id)
    assert megolm_decrypt(key, event)["content"] == NOTICE
    await leaver.receive()
    assert not [k for k in leaver.keys_for(crowd.room) if k["content"]["session_id"] == session_id]
