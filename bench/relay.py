"""Benchmark: `relay` of one announcement into N groups, bot vs plain client.

For each N (default 10, 50 and 100) an owner makes a community with N groups from a DM
with the bot (`!community create … --join open --groups G1,…`); the owner and three
members, each with one real E2EE device (identity and one-time keys uploaded), join the
space, the announcement room and every group. A plain user makes N encrypted rooms of its
own, which the same four people join. The owner posts a message in the announcement room.
Then, alternating, it times

- the bot: from the owner's `!community relay` (an encrypted reply to that message) until
  the bot's acknowledgement "Relayed into N of N groups." reaches an observer in the
  announcement room (a /sync that waits): the command delivered and decrypted, the message
  read, the post recorded as an operation, and in every group (8 at a time) a new Megolm
  session shared with every device, the copy encrypted and sent, the step saved;
- a plain E2EE client (mautrix `Client` + `OlmMachine`, its own SQLite crypto store)
  sending the same content to its N rooms, 8 at a time, each with a new Megolm session:
  list members, share the session, encrypt, send;

and prints the medians and the ratio bot / client, then where the bot's time goes. Before
every timed run both sides forget their outgoing sessions in those rooms, so that each
send is a room's first. After each run (not timed) it checks that every room has the copy
and that every member device got one room key per room. Only 127.0.0.1 is contacted.

    python bench/relay.py [--groups 10,50,100] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from mautrix.client import Client
from mautrix.crypto import OlmMachine
from mautrix.types import EventID, EventType, RoomCreatePreset, RoomID
from megolm_share import (  # type: ignore[import-not-found]  # bench/ is on sys.path
    MEGOLM,
    Homeserver,
    bounded,
    give_device_keys,
    plain_client,
    write_config,
)

from communities_appservice.app import App
from communities_appservice.config import generate_registration
from communities_appservice.core.posts import SENDS_AT_ONCE
from communities_appservice.dev.localhs import LocalSynapse
from communities_appservice.features.announcements import Announcements

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.integration.e2ee import E2EEUser  # noqa: E402  # the suite's nio user

MEMBERS = 3
NO_ROOMS = json.dumps(  # a /sync of to-device messages only
    {"room": {"rooms": []}, "presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}}
)


@dataclass
class Person:
    user_id: str
    token: str
    since: str | None = None  # where its device's to-device messages were read up to


@dataclass
class Setup:
    """One N: the community's rooms, the plain user's rooms, the people in all of them."""

    owner: E2EEUser
    observer: Person  # only in the space and the announcement room, no keys: sees the ack
    members: list[Person]
    prober: Person  # the owner's token, for probes into the DM
    dm: str
    announcements: str
    groups: list[str]
    plain_rooms: list[str]
    message: str  # the announcement that is relayed
    content: dict[str, Any] = field(default_factory=dict)  # the copy the bot posts


@dataclass
class Marks:
    """When the bot did what during one relay (perf_counter), from its gateway's calls."""

    read: float = 0.0  # the bot reads the message replied to
    sends: list[tuple[str, float, float]] = field(default_factory=list)  # room, began, ended
    said: dict[str, str] = field(default_factory=dict)  # room → body of the bot's message


async def sync(hs: Homeserver, token: str, since: str | None, wait_ms: int, filt: str) -> Any:
    query = {"timeout": str(wait_ms), "filter": filt, **({"since": since} if since else {})}
    return await hs.call("GET", f"/_matrix/client/v3/sync?{urlencode(query)}", token)


async def to_device(hs: Homeserver, person: Person) -> list[Any]:
    """Every to-device message that reached the person's device since last time (Synapse
    gives 100 per sync)."""
    got: list[Any] = []
    while True:
        body = await sync(hs, person.token, person.since, 0, NO_ROOMS)
        person.since = str(body["next_batch"])
        events = (body.get("to_device") or {}).get("events") or []
        got.extend(events)
        if not events:
            return got


async def join_retrying(hs: Homeserver, room_id: str, token: str, timeout: float = 60) -> None:
    """Join as soon as the room lets us (the announcement room: once the bot invited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await hs.call("POST", f"/_matrix/client/v3/join/{room_id}", token, {})
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def joins(hs: Homeserver, rooms: list[str], people: list[Person]) -> None:
    await bounded(
        [
            hs.call("POST", f"/_matrix/client/v3/join/{room}", p.token, {})
            for room in rooms
            for p in people
        ]
    )


async def wait_idle(app: App, hs: Homeserver, probe_from: Person, dm: str) -> None:
    """Until the service has handled everything sent so far: a probe into the DM is handled
    (the homeserver delivers in order), then every room worker is done."""
    txn = secrets.token_hex(8)
    sent = await hs.call(
        "PUT",
        f"/_matrix/client/v3/rooms/{dm}/send/m.room.message/{txn}",
        probe_from.token,
        {"msgtype": "m.text", "body": "probe"},
    )
    deadline = time.monotonic() + 120
    query = "SELECT 1 FROM handled_event WHERE event_id=$1"
    while await app.db.fetchval(query, sent["event_id"]) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not handle the probe")
        await asyncio.sleep(0.1)
    await app.router.wait_idle()


async def prepare(
    app: App,
    synapse: LocalSynapse,
    hs: Homeserver,
    client: Client,
    workdir: Path,
    size: int,
) -> Setup:
    """Everything for one N, not timed."""
    assert app.gateway is not None and app.service is not None
    bot = str(app.gateway.bot)
    localpart = f"owner{size}-{secrets.token_hex(3)}"
    owner_id, _ = await synapse.register_user(localpart, "pw-" + localpart)
    owner = E2EEUser(synapse.base_url, owner_id, "pw-" + localpart, workdir / "nio" / localpart)
    await owner.login(device_name="owner")
    observer = Person(*await synapse.register_user(f"observer{size}-{localpart}", "pw-o"))
    owner_raw = Person(owner_id, str(owner.client.access_token))

    async def member(i: int) -> Person:
        name = f"member{size}-{i}-{secrets.token_hex(3)}"
        user_id, token = await synapse.register_user(name, "pw-" + name)
        await give_device_keys(hs, user_id, token)
        return Person(user_id, token)

    members = [await member(i) for i in range(MEMBERS)]

    made = await owner.client.room_create(invite=[bot], is_direct=True)
    dm = str(made.room_id)  # type: ignore[union-attr]
    await join_wait(hs, dm, bot, owner_raw.token)
    name = f"Bench {size} {secrets.token_hex(2)}"
    groups = ",".join(f"G{i + 1}" for i in range(size))
    command = await owner.send(dm, f"!community create {name} --join open --groups {groups}")
    made_ack = await owner.reply_to(command, timeout=300)
    assert "Created community" in made_ack.body, made_ack.body
    [community] = [c for c in await app.tables.communities.all_active() if c.name == name]
    records = await app.tables.rooms.of_community(community.space_id)
    by_role = {r.role: str(r.room_id) for r in records if r.role != "group"}
    group_ids = [str(r.room_id) for r in records if r.role == "group"]
    assert len(group_ids) == size, len(group_ids)

    plain_rooms = [
        str(r)
        for r in await bounded(
            [
                client.create_room(
                    preset=RoomCreatePreset.PUBLIC, initial_state=[MEGOLM], name=f"plain {i}"
                )
                for i in range(size)
            ]
        )
    ]
    await joins(hs, [by_role["space"], by_role["admins"]], [owner_raw])
    await joins(hs, [by_role["space"]], members)
    await joins(hs, [by_role["space"]], [observer])
    await bounded(
        [
            join_retrying(hs, by_role["announcements"], p.token)
            for p in (owner_raw, *members, observer)
        ]
    )
    await joins(hs, group_ids + plain_rooms, [owner_raw, *members])
    await wait_idle(app, hs, owner_raw, dm)

    announcements = by_role["announcements"]
    text = f"Bench **announcement** {secrets.token_hex(3)}: the trip leaves at 9, bring lunch."
    message = await owner.send(announcements, text)
    deadline = time.monotonic() + 60
    while True:  # until the room key reached the bot and it can read the message
        try:
            event = await app.gateway.get_event(RoomID(announcements), EventID(message))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    content, _ = Announcements(app.service).copy_of(event)
    return Setup(
        owner,
        observer,
        members,
        owner_raw,
        dm,
        announcements,
        group_ids,
        plain_rooms,
        message,
        content,
    )


async def join_wait(hs: Homeserver, room_id: str, user_id: str, token: str) -> None:
    path = f"/_matrix/client/v3/rooms/{room_id}/state/m.room.member/{quote(user_id)}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await hs.call("GET", path, token)).get("membership") == "join":
                return
        except RuntimeError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{user_id} did not join {room_id}")
        await asyncio.sleep(0.1)


def trace(app: App) -> Marks:
    """Record the bot's reads and sends (its gateway, wrapped for this run)."""
    gateway = app.gateway
    assert gateway is not None
    marks = Marks()
    send, get_event = type(gateway).send_message, type(gateway).get_event

    async def traced_send(
        room_id: RoomID, event_type: str, content: dict[str, Any], txn_id: str = ""
    ) -> EventID:
        began = time.perf_counter()
        event_id = await send(gateway, room_id, event_type, content, txn_id)
        marks.sends.append((str(room_id), began, time.perf_counter()))
        marks.said[str(room_id)] = str(content.get("body", ""))
        return event_id

    async def traced_get(room_id: RoomID, event_id: EventID) -> dict[str, Any]:
        marks.read = marks.read or time.perf_counter()
        return await get_event(gateway, room_id, event_id)

    gateway.send_message = traced_send  # type: ignore[method-assign]
    gateway.get_event = traced_get  # type: ignore[method-assign]
    return marks


def untrace(app: App) -> None:
    assert app.gateway is not None
    for name in ("send_message", "get_event"):
        vars(app.gateway).pop(name, None)


async def copies(hs: Homeserver, reader: Person, rooms: list[str], sender: str, since: int) -> int:
    """In how many of `rooms` `sender` sent an encrypted event after `since` (ms)."""

    async def has(room: str) -> bool:
        query = urlencode({"dir": "b", "limit": "10"})
        body = await hs.call(
            "GET", f"/_matrix/client/v3/rooms/{room}/messages?{query}", reader.token
        )
        return any(
            e["type"] == "m.room.encrypted"
            and e["sender"] == sender
            and e["origin_server_ts"] >= since
            for e in body.get("chunk", [])
        )

    return sum(await bounded([has(r) for r in rooms]))


async def room_keys(hs: Homeserver, members: list[Person], key: str) -> int:
    """The fewest Olm messages from the device with identity key `key` any member device
    got since last time: one per room key shared with it."""
    counts = []
    for person in members:
        events = await to_device(hs, person)
        counts.append(sum(1 for e in events if (e.get("content") or {}).get("sender_key") == key))
    return min(counts)


async def time_bot(app: App, hs: Homeserver, s: Setup) -> tuple[float, list[float], str]:
    assert app.gateway is not None and app.gateway.crypto is not None
    await wait_idle(app, hs, s.prober, s.dm)
    crypto = app.gateway.crypto
    for room in s.groups:  # every group's copy starts a new Megolm session
        await crypto.rotate(RoomID(room))
    await room_keys(hs, s.members, "")  # what came before
    filt = json.dumps({"room": {"rooms": [s.announcements], "timeline": {"limit": 20}}})
    watch = str((await sync(hs, s.observer.token, None, 0, filt))["next_batch"])
    marks = trace(app)
    started_ms = int(time.time() * 1000)
    try:
        began = time.perf_counter()
        sent = await s.owner.client.room_send(
            s.announcements,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "!community relay",
                "m.relates_to": {"m.in_reply_to": {"event_id": s.message}},
            },
            ignore_unverified_devices=True,
        )
        command = str(sent.event_id)  # type: ignore[union-attr]
        while True:  # the acknowledgement: the bot's reply to the command
            body = await sync(hs, s.observer.token, watch, 30_000, filt)
            watch = str(body["next_batch"])
            room = ((body.get("rooms") or {}).get("join") or {}).get(s.announcements) or {}
            if any(
                e["sender"] == app.gateway.bot
                and ((e["content"].get("m.relates_to") or {}).get("m.in_reply_to") or {}).get(
                    "event_id"
                )
                == command
                for e in (room.get("timeline") or {}).get("events", [])
            ):
                ended = time.perf_counter()
                break
    finally:
        untrace(app)
    took = ended - began
    groups = [m for m in marks.sends if m[0] != s.announcements]
    [ack] = [m for m in marks.sends if m[0] == s.announcements]
    first = min(b for _, b, _ in groups)
    last = max(e for _, _, e in groups)
    phases = [marks.read - began, first - marks.read, last - first, ack[1] - last, ended - ack[1]]
    reply = marks.said[s.announcements]  # the acknowledgement as the bot sent it
    got = await copies(hs, s.members[0], s.groups, str(app.gateway.bot), started_ms)
    keys = await room_keys(hs, s.members, crypto.machine.account.identity_key)
    check = f'"{reply}", a copy in {got}/{len(s.groups)} groups, keys for {keys} rooms/device'
    return took, phases, check


async def time_client(
    app: App, client: Client, machine: OlmMachine, hs: Homeserver, s: Setup
) -> tuple[float, str]:
    await wait_idle(app, hs, s.prober, s.dm)  # the service done with the bot's run
    for room in s.plain_rooms:  # every room's message starts a new Megolm session
        await machine.crypto_store.remove_outbound_group_session(RoomID(room))
    await room_keys(hs, s.members, "")
    started_ms = int(time.time() * 1000)
    limit = asyncio.Semaphore(SENDS_AT_ONCE)

    async def send(room_id: str) -> None:
        room = RoomID(room_id)
        async with limit:
            members = await client.get_joined_members(room)
            await machine.share_group_session(room, list(members))
            encrypted = await machine.encrypt_megolm_event(room, EventType.ROOM_MESSAGE, s.content)
            await client.send_message_event(room, EventType.ROOM_ENCRYPTED, encrypted)

    began = time.perf_counter()
    await asyncio.gather(*(send(r) for r in s.plain_rooms))
    took = time.perf_counter() - began
    got = await copies(hs, s.members[0], s.plain_rooms, str(client.mxid), started_ms)
    keys = await room_keys(hs, s.members, machine.account.identity_key)
    return took, f"a copy in {got}/{len(s.plain_rooms)} rooms, keys for {keys} rooms/device"


async def run(sizes: list[int], rounds: int, workdir: Path) -> None:
    registration = workdir / "registration.yaml"
    synapse = LocalSynapse(workdir / "synapse", server_name="localhost", registration=registration)
    config = generate_registration(write_config(workdir, synapse), registration)
    await synapse.start()
    app = App(config)
    await app.start()
    http = aiohttp.ClientSession()
    hs = Homeserver(synapse.base_url, http)
    client, machine, dbs = await plain_client(synapse, hs, workdir, http)
    owners: list[E2EEUser] = []
    rows, breakdown = [], []
    try:
        for size in sizes:
            began = time.monotonic()
            setup = await prepare(app, synapse, hs, client, workdir, size)
            owners.append(setup.owner)
            print(f"{size} groups: set up in {time.monotonic() - began:.0f} s", flush=True)
            bots, plains, phases = [], [], []
            for i in range(rounds):  # alternating, so that neither side always runs warm
                bot, parts, bot_check = await time_bot(app, hs, setup)
                plain, plain_check = await time_client(app, client, machine, hs, setup)
                bots.append(bot)
                plains.append(plain)
                phases.append(parts)
                print(f"  round {i + 1}: bot {bot:.2f} s ({bot_check})", flush=True)
                print(f"  round {i + 1}: client {plain:.2f} s ({plain_check})", flush=True)
            bot, plain = statistics.median(bots), statistics.median(plains)
            rows.append(f"| {size} | {bot:.2f} | {plain:.2f} | {bot / plain:.2f} |")
            medians = [statistics.median(p[k] for p in phases) for k in range(5)]
            breakdown.append(f"| {size} | " + " | ".join(f"{m:.2f}" for m in medians) + " |")
    finally:
        for owner in owners:
            await owner.close()
        for db in dbs:
            await db.stop()
        await http.close()
        await app.stop()
        await synapse.stop()
    print("\n| groups | bot (s) | client (s) | ratio |\n|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        "\nThe bot's time, by phase (median, s): command sent → the bot reads the message;"
        " → its first group send; → the last group send done; → the acknowledgement sent;"
        " → the acknowledgement seen.\n"
    )
    print("| groups | to read | to first send | group sends | to ack | ack |")
    print("|---:|---:|---:|---:|---:|---:|")
    print("\n".join(breakdown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", default="10,50,100", help="group counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs per size (median shown)")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)  # "device isn't cross-signed", per member
    logging.getLogger("nio").setLevel(logging.ERROR)
    sizes = [int(n) for n in args.groups.split(",")]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="relay-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(sizes, args.rounds, workdir))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
