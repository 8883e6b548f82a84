"""Benchmark: the first encrypted notice into a room of N members, the bot against a floor
and two plain clients.

For each N (default 100 and 1,000) it registers N users on a local Synapse, gives each one
real device with identity and one-time keys (python-olm), and makes them join one encrypted
room per side. Each side then sends its first encrypted notice into its room, timed:

- bot: `gateway.send_message` of a notice, from the call to the event id: the member list
  (`GET /members`), any key query the share makes, the one-time-key claim, Olm sessions
  made and the room key Olm-encrypted for every device, the to-device send, the Megolm
  encryption and `PUT /send`, with every database write. The bot fetches the devices of
  members as they join (`matrix/tracker.py`), and the benchmark waits, before the timer,
  until it has: so the send makes no key query. With `--cold` the bot forgets them again
  before its send, which then asks for every member's devices (a room whose members the
  bot never saw join), and so does its next send after a join;
- floor: a bare HTTP client (aiohttp) of its own user and room making only the requests the
  bot's share cannot do without, every body made before the timer starts: the claim of one
  one-time key per member device, in requests of at most `CLAIM_CHUNK_USERS` users, then one
  `m.room.encrypted` to-device message per device, in requests of at most
  `TO_DEVICE_CHUNK_MESSAGES` messages, then one `PUT /send` of a Megolm event; at most
  `PARALLEL_REQUESTS` requests in flight. A message's ciphertext is random base64 of the
  length of an Olm pre-key message carrying an `m.room_key` as mautrix builds it, with the
  sender's signed device keys as the bot adds them (the devices never decrypt it). The floor
  leaves out the member list and the key query; it reads the claims' answers (one key per
  device, or it fails) only after the timer;
- client: a plain mautrix `Client` + `OlmMachine` (its own crypto store on SQLite), the
  same span as the bot: list members, share a Megolm session, encrypt, send;
- nio: a matrix-nio `AsyncClient` with its own store. Before the timer it syncs: it knows
  the room, its encryption and its members' joins, and has their key query queued, unmade.
  Timed is one `room_send(..., ignore_unverified_devices=True)`, which (nio counts members
  as synced only once it asked for them) makes `GET /joined_members` and the `/keys/query`
  of the members, claims one-time keys, Olm-encrypts the room key for every device, sends
  it in to-device requests of 20 messages (all at once), Megolm-encrypts and sends: the
  same span as the bot's.

It prints a table per N, the four times and the ratios bot / floor, client / bot, nio / bot,
and under it the requests each side made, with the lengths of its Olm ciphertexts.

Then members join: a new user with one device joins the bot's room, three times one after
the other, and it times the bot's next send after each (which needs only the newcomer's
key query and claim, one to-device message and the send) against a plain send on the
session already shared (the bot's sends right after, median of a few) and a bare
to-device request of one message (the floor, median of a few; also a bare `/keys/query`
and `/keys/claim` of one device, and with the floor's side a bare `PUT /send` into the
floor's room). The goal is a next send of at most 1.3 times a plain send plus one
to-device message.

With `--profile` it also breaks the bot's first send down, per N: every homeserver request
by path (with the users or messages it carries), every crypto and state store method with
the SQLite commits it makes, Olm session creation, Olm and Megolm encryption, signature
checks, each under the stage of the key sharing that called it (member list, key query,
devices and Olm sessions read, claim, Olm encryption, to-device send, ...: the methods of
the bot's share, or of mautrix's `OlmMachine`, it goes through). Times are exclusive, so
the rows add up to the send's time. The wrappers exist in this process only and count
nothing outside the bot's timed send.

`--sides` picks what runs, of bot, floor, client, nio and join (join needs bot), so that a
large room can be run for a few sides only. Only 127.0.0.1 is contacted.

    python bench/megolm_share.py [--members 100,1000] [--sides bot,floor,client,nio,join]
                                 [--rounds N] [--keep DIR] [--profile] [--no-warm-up]
                                 [--cold]

With `--rounds N` each size is measured N times, each round with new members and new rooms
(a first send cannot be repeated), and the size's last line gives each side's median.
Each round also prints the floor of the members' key query (the same chunks, made by the
bare client: the homeserver's part of the one request a first send needs besides the
floor's) and the CPU seconds each timed span cost this process (the bot runs in it,
threads included) and Synapse (from /proc). Before each timed span it waits until Synapse
is quiet (what it does in the background after a round's joins is nobody's send), and it
prints how long it waited. A warm-up round of 50 members comes first and is not counted
(`--no-warm-up` leaves it out): a process's first send pays for lazy imports, caches and
connections, on the bot's side and on Synapse's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextvars
import functools
import inspect
import json
import logging
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import olm
import yaml
from mautrix.client import Client
from mautrix.client.state_store.asyncpg import PgStateStore
from mautrix.crypto import OlmMachine, PgCryptoStore
from mautrix.crypto import device_lists as mautrix_device_lists
from mautrix.crypto import encrypt_olm as mautrix_encrypt_olm
from mautrix.crypto.sessions import OutboundGroupSession
from mautrix.types import (
    DecryptedOlmEvent,
    DeviceID,
    EncryptionAlgorithm,
    EventType,
    Membership,
    OlmEventKeys,
    RoomCreatePreset,
    RoomID,
    RoomKeyEventContent,
    SessionID,
    SigningKey,
    UserID,
)
from mautrix.util.async_db import Database
from mautrix.util.async_db import aiosqlite as mautrix_sqlite
from nio import AsyncClient, AsyncClientConfig, RoomCreateResponse, RoomPreset, RoomSendResponse

from communities_appservice.app import App
from communities_appservice.config import generate_registration
from communities_appservice.dev.localhs import LocalSynapse, free_loopback_port
from communities_appservice.matrix import devices as bot_devices
from communities_appservice.matrix.batches import PARALLEL_REQUESTS
from communities_appservice.matrix.olm import (
    CLAIM_CHUNK_USERS,
    QUERY_CHUNK_USERS,
    TO_DEVICE_CHUNK_MESSAGES,
)
from communities_appservice.matrix.vodozemac_olm import Account as BotAccount
from communities_appservice.matrix.vodozemac_olm import Session as BotSession

SIDES = ("bot", "floor", "client", "nio", "join")
CONCURRENCY = 16  # of the set-up's requests
# One-time keys per device: the bot, the floor, the mautrix client and nio each claim one of
# a member's (in their own rooms); of the last member to join the bot's room, the bot one
# and the floor REPEATS. Ten leave room for a re-claim.
ONE_TIME_KEYS = 10
JOINS = 3  # members joining the bot's room one after the other, each followed by
PLAIN_PER_JOIN = 2  # plain sends (medians are printed)
REPEATS = 5  # of the bare requests after the joins (median)
CLIENT_API = "/_matrix/client/v3"
NOTICE = {"msgtype": "m.notice", "body": "Benchmark announcement"}
MEGOLM = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


@dataclass
class Device:
    """A member: its user and its one device with uploaded keys."""

    user_id: str
    token: str
    device_id: str
    curve25519: str


class Homeserver:
    """Raw client-server calls for the set-up (not timed)."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.http = http

    async def call(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            result: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {result}")
            return result

    async def device_id(self, token: str) -> str:
        return str((await self.call("GET", f"{CLIENT_API}/account/whoami", token))["device_id"])


def cpu_lines(times: dict[str, float], cpu: dict[str, dict[str, float]]) -> str:
    """The key query's floor, and the CPU seconds each timed span cost this process (the
    bot runs in it; threads included) and Synapse."""
    lines = []
    if "query" in times:
        both = times["query"] + times["floor"]
        line = f"  floor of the key query {times['query']:.2f} s; floor + key query {both:.2f} s"
        if "bot" in times:
            line += f", bot / (floor + key query) {times['bot'] / both:.2f}"
        lines.append(line)
    for side, label in (("bot", "bot's send"), ("floor", "floor"), ("query", "key query")):
        if cpu.get(side):
            use = cpu[side]
            lines.append(
                f"  CPU during the {label}: this process {use['process']:.2f} s,"
                f" Synapse {use.get('synapse', 0.0):.2f} s"
            )
    return "\n".join(lines)


def ratios_line(times: dict[str, float]) -> str:
    bot = times.get("bot")
    parts = [f"bot/floor {_ratio(bot, times.get('floor'))}"]
    if "query" in times and bot:
        parts.append(f"bot/(floor + key query) {bot / (times['floor'] + times['query']):.2f}")
    parts += [
        f"mautrix/bot {_ratio(times.get('client'), bot)}",
        f"nio/bot {_ratio(times.get('nio'), bot)}",
    ]
    return ", ".join(parts)


def summary(size: int, times: dict[str, float]) -> str:
    """The size's last line: each side's time (one first send per side: a first send cannot
    be repeated in a room, a second one finds the Olm sessions made)."""
    names = {"bot": "bot", "floor": "floor", "client": "mautrix", "nio": "nio"}
    parts = [f"{names[side]}={times[side]:.2f}s" for side in names if side in times]
    return " ".join([f"members={size}", *parts])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def give_device_keys(hs: Homeserver, user_id: str, token: str) -> Device:
    """One real device: identity keys and signed one-time keys, as any E2EE client uploads."""
    device_id = await hs.device_id(token)
    account = olm.Account()
    identity = account.identity_keys
    device_keys: dict[str, Any] = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device_id}": identity["curve25519"],
            f"ed25519:{device_id}": identity["ed25519"],
        },
    }
    device_keys["signatures"] = {
        user_id: {f"ed25519:{device_id}": account.sign(_canonical(device_keys))}
    }
    account.generate_one_time_keys(ONE_TIME_KEYS)
    one_time: dict[str, Any] = {}
    for key_id, key in account.one_time_keys["curve25519"].items():
        signed = {"key": key}
        signed["signatures"] = {  # type: ignore[assignment]
            user_id: {f"ed25519:{device_id}": account.sign(_canonical({"key": key}))}
        }
        one_time[f"signed_curve25519:{key_id}"] = signed
    await hs.call(
        "POST",
        f"{CLIENT_API}/keys/upload",
        token,
        {"device_keys": device_keys, "one_time_keys": one_time},
    )
    return Device(user_id, token, device_id, identity["curve25519"])


async def bounded(calls: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def run(call: Any) -> Any:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(run(c) for c in calls)))


async def make_members(
    synapse: LocalSynapse, hs: Homeserver, count: int, tag: str = ""
) -> list[Device]:
    async def one(i: int) -> Device:
        localpart = f"member{tag or count}-{i}-{secrets.token_hex(3)}"
        user_id, token = await synapse.register_user(localpart, "pw-" + localpart)
        return await give_device_keys(hs, user_id, token)

    return await bounded([one(i) for i in range(count)])


async def join_all(hs: Homeserver, room_id: str, members: list[Device]) -> None:
    await bounded([hs.call("POST", f"{CLIENT_API}/join/{room_id}", m.token, {}) for m in members])


async def bot_sees_joined(app: App, room_id: str, users: set[str], cold: bool = False) -> None:
    """Wait until the bot has handled the join of every one of `users` (its state store has
    them joined, and its router is idle): a join handled later would drop its session. Then
    until the devices of the users are stored, fetched as they joined; `cold`: until then,
    and then the bot forgets them (the send asks for them, as into a room the bot never saw
    the members of)."""
    assert app.crypto is not None
    deadline = time.monotonic() + 120 + 0.05 * len(users)
    while True:
        await app.router.wait_idle()
        joined = await app.crypto.state.get_members(RoomID(room_id), (Membership.JOIN,))
        if users <= set(joined):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bot saw {len(users - set(joined))} joins of {room_id} late")
        await asyncio.sleep(0.2)
    await app.router.wait_idle()
    await app.crypto.machine.tracker.settled()
    if cold:
        await forget_devices(app, users)


async def forget_devices(app: App, users: set[str]) -> None:
    assert app.crypto is not None
    db: Any = app.crypto.machine.pg.db
    rows = [(u,) for u in sorted(users)]
    async with db.acquire() as conn:
        for table in ("crypto_device", "crypto_tracked_user"):
            await conn.executemany(f"DELETE FROM {table} WHERE user_id=$1", rows)


# --- counting requests -------------------------------------------------------------------

REQUESTS: contextvars.ContextVar[Requests | None] = contextvars.ContextVar("requests", default=None)


class Requests:
    """The homeserver requests of one timed span (method, path, body as sent), recorded as
    they are made and read only afterwards."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, Any]] = []

    def __str__(self) -> str:
        rows: dict[str, Counter[int | None]] = {}
        for method, path, content in self.calls:
            body = json.loads(content) if isinstance(content, str | bytes) else content
            label, size = _request_label(method, str(path).split("?")[0], body)
            rows.setdefault(label, Counter())[size] += 1
        parts = []
        for label, sizes in rows.items():
            known = sorted((s, c) for s, c in sizes.items() if s is not None)
            detail = ", ".join(f"{c} of {s}" for s, c in reversed(known))
            parts.append(f"{label} ×{sum(sizes.values())}" + (f" ({detail})" if detail else ""))
        bodies = self.olm_bodies()
        if bodies:
            parts.append(f"Olm bodies {min(bodies)}–{max(bodies)} chars")
        return "; ".join(parts)

    def olm_bodies(self) -> list[int]:
        """The lengths of the Olm ciphertexts of the to-device messages."""
        lengths = []
        for _, path, content in self.calls:
            if "/sendToDevice/" not in str(path):
                continue
            body = json.loads(content) if isinstance(content, str | bytes) else content
            for devices in body.get("messages", {}).values():
                for message in devices.values():
                    for sealed in (message.get("ciphertext") or {}).values():
                        lengths.append(len(sealed.get("body", "")))
        return lengths


def _counted(func: Any, pick: Callable[..., tuple[Any, Any, Any]]) -> Any:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        requests = REQUESTS.get()
        if requests is not None:
            requests.calls.append(pick(*args, **kwargs))
        return await func(*args, **kwargs)

    return wrapper


def _mautrix_call(method: Any, path: Any, content: Any = None, *_: Any, **__: Any) -> Any:
    return method, path, content


def _nio_call(_response: Any, method: Any, path: Any, data: Any = None, *_: Any, **__: Any) -> Any:
    return method, path, data


def count_mautrix(client: Client) -> None:
    client.api.request = _counted(client.api.request, _mautrix_call)  # type: ignore[method-assign]


@contextmanager
def counting() -> Iterator[Requests]:
    requests = Requests()
    token = REQUESTS.set(requests)
    try:
        yield requests
    finally:
        REQUESTS.reset(token)


# --- the floor: a bare HTTP client -------------------------------------------------------


def _random_base64(length: int) -> str:
    """Unpadded base64 of `length` characters, as Olm and Megolm write theirs."""
    return base64.b64encode(secrets.token_bytes(length)).decode()[:length]


@functools.cache
def _olm_body_length(plaintext_length: int) -> int:
    """Length of the body of an Olm pre-key message (a new session's first) of a plaintext."""
    sender, receiver = olm.Account(), olm.Account()
    receiver.generate_one_time_keys(1)
    one_time_key = next(iter(receiver.one_time_keys["curve25519"].values()))
    session = olm.OutboundSession(sender, receiver.identity_keys["curve25519"], one_time_key)
    return len(session.encrypt("x" * plaintext_length).ciphertext)


def _signed_device_keys(user_id: str, device_id: str) -> dict[str, Any]:
    """Device keys as the homeserver serves them: signed by the device and by its owner's
    self-signing key (their shape and size; the keys are random)."""
    return {
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "device_id": device_id,
        "keys": {
            f"curve25519:{device_id}": _random_base64(43),
            f"ed25519:{device_id}": _random_base64(43),
        },
        "signatures": {
            user_id: {
                f"ed25519:{device_id}": _random_base64(86),
                f"ed25519:{_random_base64(43)}": _random_base64(86),
            }
        },
        "user_id": user_id,
        "unsigned": {"device_display_name": "Communities"},
    }


def _room_key_plaintext(sender: str, sender_device: str, recipient: str, room_id: str) -> str:
    """The plaintext of an `m.room_key` Olm event as mautrix builds it (`_encrypt_olm_event`),
    with the sender's signed device keys (`sender_device_keys`, MSC4147) as the bot adds."""
    group = olm.OutboundGroupSession()
    event = DecryptedOlmEvent(
        sender=UserID(sender),
        sender_device=DeviceID(sender_device),
        keys=OlmEventKeys(ed25519=SigningKey(_random_base64(43))),
        recipient=UserID(recipient),
        recipient_keys=OlmEventKeys(ed25519=SigningKey(_random_base64(43))),
        type=EventType.ROOM_KEY,
        content=RoomKeyEventContent(
            algorithm=EncryptionAlgorithm.MEGOLM_V1,
            room_id=RoomID(room_id),
            session_id=SessionID(group.id),
            session_key=group.session_key,
        ),
    )
    plaintext = event.serialize()
    plaintext["sender_device_keys"] = _signed_device_keys(sender, sender_device)
    return json.dumps(plaintext)


@dataclass
class Floor:
    """The floor's user and device; it has no keys (it never encrypts anything)."""

    user_id: str
    token: str
    device_id: str
    sender_key: str = field(default_factory=lambda: _random_base64(43))

    def to_device(self, devices: list[Device], room_id: str) -> tuple[str, bytes]:
        """One to-device request carrying an Olm-sized `m.room.encrypted` per device."""
        messages: dict[str, dict[str, Any]] = {}
        for device in devices:
            plaintext = _room_key_plaintext(self.user_id, self.device_id, device.user_id, room_id)
            content = {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": self.sender_key,
                "ciphertext": {
                    device.curve25519: {
                        "type": 0,
                        "body": _random_base64(_olm_body_length(len(plaintext))),
                    }
                },
            }
            messages.setdefault(device.user_id, {})[device.device_id] = content
        path = f"{CLIENT_API}/sendToDevice/m.room.encrypted/{secrets.token_hex(12)}"
        return path, json.dumps({"messages": messages}).encode()

    def send(self, room_id: str) -> tuple[str, bytes]:
        """A Megolm event of the notice (really encrypted, with a session nobody has)."""
        group = olm.OutboundGroupSession()
        plaintext = json.dumps({"room_id": room_id, "type": "m.room.message", "content": NOTICE})
        content = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": self.sender_key,
            "ciphertext": group.encrypt(plaintext),
            "session_id": group.id,
            "device_id": self.device_id,
        }
        room = quote(room_id, safe="")
        path = f"{CLIENT_API}/rooms/{room}/send/m.room.encrypted/{secrets.token_hex(12)}"
        return path, json.dumps(content).encode()


@dataclass
class FloorPlan:
    """Every request of the floor's share, bodies ready."""

    claims: list[bytes]
    to_device: list[tuple[str, bytes]]
    send: tuple[str, bytes]
    devices: int
    queries: list[bytes] = field(default_factory=list)

    def requests(self) -> Requests:
        requests = Requests()
        requests.calls += [("POST", f"{CLIENT_API}/keys/claim", body) for body in self.claims]
        requests.calls += [("PUT", path, body) for path, body in self.to_device]
        requests.calls.append(("PUT", *self.send))
        return requests


def _chunks(items: list[Device], size: int) -> list[list[Device]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def plan_floor(floor: Floor, room_id: str, members: list[Device]) -> FloorPlan:
    claims = [
        json.dumps(
            {"one_time_keys": {m.user_id: {m.device_id: "signed_curve25519"} for m in chunk}}
        ).encode()
        for chunk in _chunks(members, CLAIM_CHUNK_USERS)
    ]
    to_device = [
        floor.to_device(chunk, room_id) for chunk in _chunks(members, TO_DEVICE_CHUNK_MESSAGES)
    ]
    queries = [
        json.dumps({"device_keys": {m.user_id: [] for m in chunk}}).encode()
        for chunk in _chunks(members, QUERY_CHUNK_USERS)
    ]
    return FloorPlan(claims, to_device, floor.send(room_id), len(members), queries)


async def floor_request(
    http: aiohttp.ClientSession, url: str, token: str, method: str, body: bytes
) -> bytes:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with http.request(method, url, data=body, headers=headers) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"floor: {method} {url}: {response.status} {data[:200]!r}")
        return data


async def time_floor(
    http: aiohttp.ClientSession, base_url: str, floor: Floor, plan: FloorPlan
) -> float:
    """The claims, then the to-device requests, then the send; at most PARALLEL_REQUESTS
    requests in flight."""
    semaphore = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def request(method: str, path: str, body: bytes) -> bytes:
        async with semaphore:
            return await floor_request(http, base_url + path, floor.token, method, body)

    claim = f"{CLIENT_API}/keys/claim"
    began = time.perf_counter()
    answers = await asyncio.gather(*(request("POST", claim, body) for body in plan.claims))
    await asyncio.gather(*(request("PUT", path, body) for path, body in plan.to_device))
    await request("PUT", *plan.send)
    elapsed = time.perf_counter() - began
    keys = sum(
        len(devices)
        for answer in answers
        for devices in json.loads(answer).get("one_time_keys", {}).values()
    )
    if keys != plan.devices:
        raise RuntimeError(f"floor: {keys} one-time keys claimed for {plan.devices} devices")
    return elapsed


async def time_floor_query(
    http: aiohttp.ClientSession, base_url: str, floor: Floor, plan: FloorPlan
) -> float:
    """The key query of the members a first send needs before it can claim anything, in
    the bot's chunks, at most PARALLEL_REQUESTS in flight: the homeserver's part of it."""
    semaphore = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def request(body: bytes) -> bytes:
        async with semaphore:
            url = f"{base_url}{CLIENT_API}/keys/query"
            return await floor_request(http, url, floor.token, "POST", body)

    began = time.perf_counter()
    await asyncio.gather(*(request(body) for body in plan.queries))
    return time.perf_counter() - began


# Before each timed span: Synapse busy at most this share of a window of this many seconds
# (waiting at most QUIET_LIMIT seconds).
QUIET_WINDOW = 0.5
# Members of the warm-up round.
WARM_UP_MEMBERS = 50
QUIET_SHARE = 0.05
QUIET_LIMIT = 120.0


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system, every thread) of this process or of process `pid`."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def synapse_quiet(pid: int | None, waited: dict[str, float], side: str) -> None:
    """Wait until Synapse has spent at most QUIET_SHARE of a QUIET_WINDOW on the CPU: what
    it still does in the background after the joins of a round (device-list fan-out, the
    user directory, push rules) would otherwise be counted against the side timed first."""
    began = time.monotonic()
    if pid:
        last = cpu_seconds(pid)
        while time.monotonic() - began < QUIET_LIMIT:
            await asyncio.sleep(QUIET_WINDOW)
            now = cpu_seconds(pid)
            if now - last <= QUIET_WINDOW * QUIET_SHARE:
                break
            last = now
        else:
            print(f"  (Synapse was still busy {QUIET_LIMIT:g} s before the {side}'s span)")
    waited[side] = time.monotonic() - began


@contextmanager
def cpu_use(synapse_pid: int | None, into: dict[str, float]) -> Iterator[None]:
    """The CPU seconds this process and Synapse spend in the block."""
    mine, theirs = cpu_seconds(), cpu_seconds(synapse_pid) if synapse_pid else 0.0
    try:
        yield
    finally:
        into["process"] = cpu_seconds() - mine
        if synapse_pid:
            into["synapse"] = cpu_seconds(synapse_pid) - theirs


async def time_bare(
    http: aiohttp.ClientSession,
    base_url: str,
    floor: Floor,
    requests: list[tuple[str, str, bytes]],
) -> float:
    """Bare requests of the floor's, one after the other, their bodies made before the timer."""
    began = time.perf_counter()
    for method, path, body in requests:
        await floor_request(http, base_url + path, floor.token, method, body)
    return time.perf_counter() - began


# --- the plain clients -------------------------------------------------------------------


async def plain_client(
    synapse: LocalSynapse, hs: Homeserver, workdir: Path, http: aiohttp.ClientSession
) -> tuple[Client, OlmMachine, list[Database]]:
    user_id, token = await synapse.register_user(f"plain-{secrets.token_hex(3)}", "pw-plain")
    device_id = await hs.device_id(token)
    client = Client(
        mxid=UserID(user_id),
        device_id=device_id,
        base_url=synapse.base_url,
        token=token,
        client_session=http,
    )
    url = f"sqlite:{workdir / 'plain-client.db'}"
    crypto_db = Database.create(url, upgrade_table=PgCryptoStore.upgrade_table)
    state_db = Database.create(url, upgrade_table=PgStateStore.upgrade_table)
    await crypto_db.start()
    state_db.override_pool(crypto_db)
    await state_db.start()
    store = PgCryptoStore(user_id, "bench", crypto_db)
    await store.open()
    await store.put_device_id(DeviceID(device_id))
    machine = OlmMachine(client, store, PgStateStore(state_db))
    await machine.load()
    await machine.share_keys()
    count_mautrix(client)
    return client, machine, [state_db, crypto_db]


async def time_plain_client(
    client: Client, machine: OlmMachine, room_id: str
) -> tuple[float, Requests]:
    room = RoomID(room_id)
    with counting() as requests:
        began = time.perf_counter()
        members = await client.get_joined_members(room)
        await machine.share_group_session(room, list(members))
        encrypted = await machine.encrypt_megolm_event(room, EventType.ROOM_MESSAGE, NOTICE)
        await client.send_message_event(room, EventType.ROOM_ENCRYPTED, encrypted)
        return time.perf_counter() - began, requests


async def nio_client(synapse: LocalSynapse, hs: Homeserver, workdir: Path) -> AsyncClient:
    user_id, token = await synapse.register_user(f"nio-{secrets.token_hex(3)}", "pw-nio")
    device_id = await hs.device_id(token)
    store = workdir / "nio-store"
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(
        synapse.base_url,
        user_id,
        device_id=device_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )
    client.restore_login(user_id, device_id, token)
    if client.should_upload_keys:
        await client.keys_upload()
    await client.sync(timeout=0, full_state=True)
    client._send = _counted(client._send, _nio_call)
    return client


async def nio_room(client: AsyncClient, name: str) -> str:
    response = await client.room_create(
        preset=RoomPreset.public_chat, initial_state=[MEGOLM], name=name
    )
    assert isinstance(response, RoomCreateResponse), response
    return str(response.room_id)


async def time_nio(client: AsyncClient, room_id: str, users: int) -> tuple[float, Requests]:
    """Synced first (not timed): nio knows the room's members and has their key query queued.
    (An incremental sync: a full-state one has nio query the members of earlier rooms again.)"""
    for _ in range(20):
        await client.sync(timeout=0)
        room = client.rooms.get(room_id)
        if room is not None and len(room.users) >= users and room.encrypted:
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"nio does not see {users} users in {room_id}")
    assert not room.members_synced and client.should_query_keys
    with counting() as requests:
        began = time.perf_counter()
        response = await client.room_send(
            room_id, "m.room.message", dict(NOTICE), ignore_unverified_devices=True
        )
        elapsed = time.perf_counter() - began
    assert isinstance(response, RoomSendResponse), response
    return elapsed, requests


# --- profiling (--profile) ---------------------------------------------------------------

PROFILE: contextvars.ContextVar[Profile | None] = contextvars.ContextVar("profile", default=None)
SQL_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Frame:
    def __init__(self, label: str, step: bool) -> None:
        self.label, self.step = label, step
        self.in_steps = self.in_leaves = 0.0


class Row:
    def __init__(self) -> None:
        self.seconds, self.calls, self.commits = 0.0, 0, 0
        self.sizes: Counter[int] = Counter()


class Profile:
    """One timed send (one task, sequential): steps (mautrix's stages of sharing a room key),
    and under each the leaves (requests, store methods, Olm calls), all times exclusive."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.steps: dict[str, Row] = {}
        self.leaves: dict[tuple[str, str], Row] = {}  # (step, leaf) → row

    def _step(self) -> str:
        return next((f.label for f in reversed(self.frames) if f.step), "")

    @contextmanager
    def phase(self, label: str, size: int | None = None, step: bool = False) -> Iterator[None]:
        frame = Frame(label, step)
        owner = self._step()
        self.frames.append(frame)
        began = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - began
            self.frames.pop()
            if step:
                row = self.steps.setdefault(label, Row())
                row.seconds += elapsed - frame.in_steps
            else:
                row = self.leaves.setdefault((owner, label), Row())
                row.seconds += elapsed - frame.in_steps - frame.in_leaves
            row.calls += 1
            if size is not None:
                row.sizes[size] += 1
            if self.frames:
                parent = self.frames[-1]
                if step:
                    parent.in_steps += elapsed
                else:
                    parent.in_leaves += elapsed

    def commit(self) -> None:
        """A commit (a transaction, or a write outside one) of the innermost phase."""
        inner = self.frames[-1] if self.frames else None
        label = inner.label if inner and not inner.step else "commit of a transaction"
        self.leaves.setdefault((self._step(), label), Row()).commits += 1

    def print(self, total: float) -> None:
        def line(label: str, row: Row, indent: str) -> None:
            per = ", ".join(f"{n} × {c}" for n, c in sorted(row.sizes.items(), reverse=True))
            commits = str(row.commits) if row.commits else ""
            calls = str(row.calls) if row.calls else ""
            print(
                f"  {indent}{label:<{46 - len(indent)}} {row.seconds:>7.2f} {calls:>6}"
                f" {commits:>7}  {per}"
            )

        print(f"\n  {'phase of the bot send':<46} {'s':>7} {'calls':>6} {'commits':>7}  per call")
        for step in ["", *self.steps]:
            leaves = {leaf: r for (owner, leaf), r in self.leaves.items() if owner == step}
            if step:
                row = self.steps[step]
                row.commits = sum(r.commits for r in leaves.values())
                line(step, row, "")
                own = Row()
                own.seconds = row.seconds - sum(r.seconds for r in leaves.values())
                leaves["(Python in between)"] = own
            for leaf, leaf_row in leaves.items():
                line(leaf, leaf_row, "    " if step else "")
        accounted = sum(r.seconds for r in self.steps.values()) + sum(
            r.seconds for (owner, _), r in self.leaves.items() if not owner
        )
        print(f"  {'other (Python outside the above)':<46} {total - accounted:>7.2f}")
        commits = sum(r.commits for r in self.leaves.values())
        print(f"  {'total':<46} {total:>7.2f} {'':>6} {commits:>7}\n", flush=True)


def _timed_async(
    label: str | Callable[..., tuple[str, int | None]], func: Any, step: bool = False
) -> Any:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        profile = PROFILE.get()
        if profile is None:
            return await func(*args, **kwargs)
        name, size = label(*args, **kwargs) if callable(label) else (label, None)
        with profile.phase(name, size, step):
            return await func(*args, **kwargs)

    return wrapper


def _timed_sync(label: str, func: Any) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        profile = PROFILE.get()
        if profile is None:
            return func(*args, **kwargs)
        with profile.phase(label):
            return func(*args, **kwargs)

    return wrapper


def _request_label(method: Any, path: Any, content: Any = None, *_: Any, **__: Any) -> Any:
    """A homeserver request: its phase by path, and how many users or messages it carries."""
    text, verb = str(path), str(method).rsplit(".", 1)[-1].upper()
    body = content if isinstance(content, dict) else {}
    if "/keys/query" in text:
        return "POST /keys/query (users)", len(body.get("device_keys", {}))
    if "/keys/claim" in text:
        return "POST /keys/claim (users)", len(body.get("one_time_keys", {}))
    if "/sendToDevice/" in text:
        messages = sum(len(devices) for devices in body.get("messages", {}).values())
        return "PUT /sendToDevice (messages)", messages
    for suffix in ("/joined_members", "/members", "/send/", "/state/"):
        if suffix in text:
            return f"{verb} /rooms/…{suffix.rstrip('/')}", None
    return f"{verb} {text}", None


def _fetch_label(users: Any, *_: Any, **__: Any) -> tuple[str, int | None]:
    if len(users) == 1:
        return "key query of one user (trust check)", None
    return "key query of all members, devices stored", len(users)


STEPS: dict[str, Any] = {
    "_fetch_keys": _fetch_label,
    "resolve_trust": "trust check, per device",
    "_create_outbound_sessions": "one-time-key claim, Olm sessions made",
    "_find_olm_sessions": "Olm session looked up, per device",
    "_encrypt_and_share_group_session": "room key Olm-encrypted and sent",
    "_new_outbound_group_session": "new Megolm session",
    "_encrypt_megolm_event": "Megolm encryption of the notice",
    # The bot's own sharing (matrix/share.py, matrix/olm.py), where it has these stages:
    "_share": "room key shared",
    "devices_of": "devices of the recipients read",
    "olm_sessions": "Olm sessions read",
    "claim_sessions": "one-time-key claim, Olm sessions made",
    "own_device_keys": "the bot's own device keys",
    "encrypt_olm_many": "room key Olm-encrypted",
    "send_to_devices": "to-device send",
}


def _wrap_store(store: Any, prefix: str) -> None:
    for name, member in inspect.getmembers(type(store)):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(store, name, _timed_async(f"{prefix}.{name}", getattr(store, name)))


def _count_sql(func: Any) -> Any:
    @functools.wraps(func)
    async def wrapper(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        profile = PROFILE.get()
        write = query.lstrip().upper().startswith(SQL_WRITES)
        if profile is not None and write and not mautrix_sqlite.in_transaction.get():
            profile.commit()
        return await func(self, query, *args, **kwargs)

    return wrapper


def _count_commit(func: Any) -> Any:
    @functools.wraps(func)
    async def wrapper(self: Any) -> Any:
        profile = PROFILE.get()
        if profile is None:
            return await func(self)
        if profile.frames and not profile.frames[-1].step:
            profile.commit()  # a store method's own transaction: in its time
            return await func(self)
        with profile.phase("commit of a transaction"):
            profile.commit()
            return await func(self)

    return wrapper


def install_profiling(app: App) -> None:
    """Timing wrappers (this process only); they count only inside `PROFILE`'s context."""
    assert app.gateway is not None and app.crypto is not None
    gateway, crypto = app.gateway, app.crypto
    api = gateway.client.api
    api.request = _timed_async(_request_label, api.request)  # type: ignore[method-assign]
    gateway.share_targets = _timed_async(  # type: ignore[method-assign]
        "member list", gateway.share_targets, step=True
    )
    crypto.members.record = _timed_async(  # type: ignore[method-assign]
        "member list recorded", crypto.members.record, step=True
    )
    for name, label in STEPS.items():
        if hasattr(crypto.machine, name):
            method = getattr(crypto.machine, name)
            setattr(crypto.machine, name, _timed_async(label, method, True))
    _wrap_store(crypto.store, "crypto store")
    _wrap_store(crypto.state, "state store")
    connection = mautrix_sqlite.TxnConnection
    for name in ("execute", "executemany"):
        setattr(connection, name, _count_sql(getattr(connection, name)))
    connection.commit = _count_commit(connection.commit)  # type: ignore[method-assign]
    BotAccount.new_outbound_session = _timed_sync(  # type: ignore[method-assign]
        "Olm session creation", BotAccount.new_outbound_session
    )
    BotSession.encrypt = _timed_sync("Olm encryption", BotSession.encrypt)  # type: ignore[method-assign]
    OutboundGroupSession.encrypt = _timed_sync(  # type: ignore[method-assign]
        "Megolm encryption", OutboundGroupSession.encrypt
    )
    for module in (mautrix_device_lists, mautrix_encrypt_olm):
        module.verify_signature_json = _timed_sync(  # type: ignore[attr-defined]
            "signature checks", module.verify_signature_json
        )
    bot_devices.signed_by = _timed_sync("signature checks", bot_devices.signed_by)


async def time_bot(
    app: App, room_id: str, profile: Profile | None = None
) -> tuple[float, Requests]:
    assert app.gateway is not None
    token = PROFILE.set(profile)
    try:
        with counting() as requests:
            began = time.perf_counter()
            await app.gateway.send_message(RoomID(room_id), "m.room.message", dict(NOTICE))
            return time.perf_counter() - began, requests
    finally:
        PROFILE.reset(token)


async def member_joins(
    app: App,
    synapse: LocalSynapse,
    hs: Homeserver,
    floor: Floor,
    room_id: str,
    size: int,
    floor_room: str | None,
    cold: bool = False,
) -> None:
    """New members with one device each join the bot's room (after its first send there),
    one after the other: the bot's next send after each, against plain sends, the floor of
    one to-device message and (with the floor's room) the floor of a plain send."""
    assert app.crypto is not None
    room = RoomID(room_id)
    next_times: list[float] = []
    plain_times: list[float] = []
    kept: list[bool] = []
    next_requests: list[str] = []
    plain_requests = Requests()
    for i in range(JOINS):
        newcomer = (await make_members(synapse, hs, 1, tag=f"new{size}.{i}"))[0]
        await join_all(hs, room_id, [newcomer])
        await bot_sees_joined(app, room_id, {newcomer.user_id}, cold)
        kept.append(await app.crypto.store.get_outbound_group_session(room) is not None)
        seconds, requests = await time_bot(app, room_id)
        next_times.append(seconds)
        next_requests.append(str(requests))
        for _ in range(PLAIN_PER_JOIN):
            seconds, plain_requests = await time_bot(app, room_id)
            plain_times.append(seconds)
    after_join, plain = statistics.median(next_times), statistics.median(plain_times)
    http, base = hs.http, hs.base_url
    messages = [[("PUT", *floor.to_device([newcomer], room_id))] for _ in range(REPEATS)]
    one_message = statistics.median([await time_bare(http, base, floor, m) for m in messages])
    query = json.dumps({"device_keys": {newcomer.user_id: []}}).encode()
    claim = {"one_time_keys": {newcomer.user_id: {newcomer.device_id: "signed_curve25519"}}}
    lookup = [
        ("POST", f"{CLIENT_API}/keys/query", query),
        ("POST", f"{CLIENT_API}/keys/claim", json.dumps(claim).encode()),
    ]
    keys = statistics.median([await time_bare(http, base, floor, lookup) for _ in range(REPEATS)])
    session = "kept" if all(kept) else "dropped" if not any(kept) else "sometimes kept"
    lines = [
        f"  a member joins the bot's room of {size}, {JOINS} times one after the other"
        f" (the bot {session} its Megolm session on the join)",
        f"    next send                   {after_join:>7.3f} s   median of {JOINS}"
        f" ({min(next_times):.3f}–{max(next_times):.3f}); requests of each:"
        f" {' | '.join(dict.fromkeys(next_requests))}",
        f"    plain send                  {plain:>7.3f} s   median of {len(plain_times)},"
        f" {PLAIN_PER_JOIN} after each next send; requests of the last: {plain_requests}",
        f"    one to-device message       {one_message:>7.3f} s   floor, median of {REPEATS}",
        f"    query + claim of one device {keys:>7.3f} s   floor, one after the other,"
        f" median of {REPEATS}",
    ]
    if floor_room is not None:
        sends = [[("PUT", *floor.send(floor_room))] for _ in range(REPEATS)]
        bare = statistics.median([await time_bare(http, base, floor, s) for s in sends])
        lines.append(
            f"    bare PUT /send              {bare:>7.3f} s   floor, into its room of"
            f" {size}, median of {REPEATS}"
        )
    lines.append(
        f"    next / (plain + to-device)  {after_join / (plain + one_message):>7.2f}"
        f"     (goal ≤ 1.30); next / plain {after_join / plain:.2f}"
    )
    print("\n".join(lines), flush=True)


def write_config(workdir: Path, synapse: LocalSynapse) -> Path:
    port = free_loopback_port()
    config = {
        "homeserver": {"address": synapse.base_url, "domain": "localhost"},
        "appservice": {
            "address": f"http://127.0.0.1:{port}",
            "hostname": "127.0.0.1",
            "port": port,
            "database": f"sqlite:{workdir / 'communities.db'}",
            "as_token": "generate",
            "hs_token": "generate",
        },
        "encryption": {"enabled": True, "appservice": True, "pickle_key": "generate"},
        "permissions": {"*": "member", "localhost": "creator"},
        "logging": {"version": 1, "root": {"level": "WARNING"}},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ratio(top: float | None, bottom: float | None) -> str:
    return "–" if top is None or not bottom else f"{top / bottom:.2f}"


HEADER = (
    f"{'members':>8} {'bot (s)':>8} {'floor (s)':>10} {'client (s)':>11} {'nio (s)':>8}"
    f" {'bot/floor':>10} {'client/bot':>11} {'nio/bot':>8}"
)


async def run(
    sizes: list[int],
    sides: set[str],
    workdir: Path,
    profiling: bool,
    rounds: int = 1,
    warm_up: bool = True,
    cold: bool = False,
) -> None:
    registration = workdir / "registration.yaml"
    synapse = LocalSynapse(workdir / "synapse", server_name="localhost", registration=registration)
    config = generate_registration(write_config(workdir, synapse), registration)
    await synapse.start()
    app = App(config)
    await app.start()
    http = aiohttp.ClientSession()
    hs = Homeserver(synapse.base_url, http)
    assert app.gateway is not None
    count_mautrix(app.gateway.client)
    if profiling:
        install_profiling(app)
    dbs: list[Database] = []
    plain: tuple[Client, OlmMachine] | None = None
    nio: AsyncClient | None = None
    floor: Floor | None = None
    try:
        if "client" in sides:
            client, machine, dbs = await plain_client(synapse, hs, workdir, http)
            plain = client, machine
        if "nio" in sides:
            nio = await nio_client(synapse, hs, workdir)
        if sides & {"floor", "join"}:
            user_id, token = await synapse.register_user(f"floor-{secrets.token_hex(3)}", "pw")
            floor = Floor(user_id, token, await hs.device_id(token))
        # A warm-up round first, not counted: the first send of a process (and the first
        # requests Synapse serves of each kind) pays for lazy imports, caches and connections.
        plan = [(WARM_UP_MEMBERS, 1, True)] if warm_up else []
        plan += [(size, rounds, False) for size in sizes]
        for size, size_rounds, warming in plan:
            medians: dict[str, list[float]] = {}
            for round_ in range(size_rounds):
                members = await make_members(synapse, hs, size)
                rooms: dict[str, str] = {}
                if "bot" in sides:
                    rooms["bot"] = await app.gateway.create_room(
                        {"preset": "public_chat", "initial_state": [MEGOLM], "name": f"bot {size}"}
                    )
                if floor is not None and "floor" in sides:
                    request = {"preset": "public_chat", "initial_state": [MEGOLM]}
                    created = await hs.call(
                        "POST", f"{CLIENT_API}/createRoom", floor.token, request
                    )
                    rooms["floor"] = str(created["room_id"])
                if plain is not None:
                    rooms["client"] = str(
                        await plain[0].create_room(
                            preset=RoomCreatePreset.PUBLIC,
                            initial_state=[MEGOLM],
                            name=f"client {size}",
                        )
                    )
                if nio is not None:
                    rooms["nio"] = await nio_room(nio, f"nio {size}")
                for room_id in rooms.values():
                    await join_all(hs, room_id, members)
                times: dict[str, float] = {}
                requests: dict[str, Requests] = {}
                profile = Profile() if profiling else None
                cpu: dict[str, dict[str, float]] = {"bot": {}, "floor": {}, "query": {}}
                pid = synapse.pid
                waited: dict[str, float] = {}
                if "bot" in rooms:
                    joined = {m.user_id for m in members}
                    await bot_sees_joined(app, rooms["bot"], joined, cold and not warming)
                    await synapse_quiet(pid, waited, "bot")
                    with cpu_use(pid, cpu["bot"]):
                        times["bot"], requests["bot"] = await time_bot(app, rooms["bot"], profile)
                if floor is not None and "floor" in rooms:
                    floor_plan = plan_floor(floor, rooms["floor"], members)
                    await synapse_quiet(pid, waited, "floor")
                    with cpu_use(pid, cpu["floor"]):
                        times["floor"] = await time_floor(http, synapse.base_url, floor, floor_plan)
                    requests["floor"] = floor_plan.requests()
                    await synapse_quiet(pid, waited, "key query")
                    with cpu_use(pid, cpu["query"]):
                        times["query"] = await time_floor_query(
                            http, synapse.base_url, floor, floor_plan
                        )
                if plain is not None:
                    await synapse_quiet(pid, waited, "client")
                    times["client"], requests["client"] = await time_plain_client(
                        *plain, rooms["client"]
                    )
                if nio is not None:
                    await synapse_quiet(pid, waited, "nio")
                    times["nio"], requests["nio"] = await time_nio(nio, rooms["nio"], size + 1)
                bot = times.get("bot")
                print(HEADER)
                print(
                    f"{size:>8} {_seconds(bot):>8} {_seconds(times.get('floor')):>10}"
                    f" {_seconds(times.get('client')):>11} {_seconds(times.get('nio')):>8}"
                    f" {_ratio(bot, times.get('floor')):>10}"
                    f" {_ratio(times.get('client'), bot):>11} {_ratio(times.get('nio'), bot):>8}"
                )
                for side, made in requests.items():
                    print(f"  requests of {side + ':':<7} {made}")
                print(cpu_lines(times, cpu), flush=True)
                quiet = ", ".join(f"{side} {s:.1f} s" for side, s in waited.items())
                print(f"  waited for a quiet Synapse before: {quiet}", flush=True)
                if warming:
                    print(f"  (a warm-up round of {size} members: not counted)\n", flush=True)
                    continue
                if profile is not None and bot is not None:
                    profile.print(bot)
                for side, seconds in times.items():
                    medians.setdefault(side, []).append(seconds)
                if "join" in sides and floor is not None and round_ == rounds - 1:
                    await member_joins(
                        app, synapse, hs, floor, rooms["bot"], size, rooms.get("floor"), cold
                    )
                    print(flush=True)
            if warming:
                continue
            median = {side: statistics.median(values) for side, values in medians.items()}
            if rounds > 1:
                print(f"  medians of {rounds} rounds:", ratios_line(median), flush=True)
            print(summary(size, median), flush=True)
    finally:
        if nio is not None:
            await nio.close()
        for db in dbs:
            await db.stop()
        await http.close()
        await app.stop()
        await synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", default="100,1000", help="room sizes, comma-separated")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"what runs, comma-separated, of {','.join(SIDES)} (join needs bot)",
    )
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="first sends per size, each with new members and rooms; medians are printed",
    )
    parser.add_argument(
        "--profile", action="store_true", help="break the bot's first send down into phases"
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help=f"leave out the warm-up round ({WARM_UP_MEMBERS} members, not counted)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="the bot forgets the members' devices before its send: it asks for them then",
    )
    args = parser.parse_args()
    sides = {s.strip() for s in args.sides.split(",") if s.strip()}
    if sides - set(SIDES):
        parser.error(f"unknown sides: {', '.join(sorted(sides - set(SIDES)))}")
    if "join" in sides and "bot" not in sides:
        parser.error("join needs bot")
    if args.profile and "bot" not in sides:
        parser.error("--profile needs bot")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)  # "device isn't cross-signed", per member
    logging.getLogger("nio").setLevel(logging.ERROR)
    sizes = [int(n) for n in args.members.split(",")]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="megolm-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(
            run(
                sizes,
                sides,
                workdir,
                args.profile,
                max(1, args.rounds),
                not args.no_warm_up,
                args.cold,
            )
        )
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
