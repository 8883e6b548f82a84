"""Benchmark: the first encrypted notice into a room of N members, bot vs plain client.

For each N (default 100 and 1,000) it registers N users on a local Synapse, gives each one
real device with identity and one-time keys (python-olm), and makes them join two encrypted
rooms: one created by the appservice's bot, one by a plain user. Then it times

- the bot: `gateway.send_message` of a notice (members, key query, one-time-key claim, Olm
  encryption of the room key for every device, to-device send, Megolm encryption, send);
- a plain E2EE client of the same library family (mautrix `Client` + `OlmMachine`, its own
  crypto store on SQLite) doing the same: list members, share a Megolm session, encrypt, send;

and prints both times and the ratio bot / client. Only 127.0.0.1 is contacted.

With `--profile` it also breaks the bot's send down, per N: every homeserver request by path
(with the users or messages it carries), every crypto and state store method with the SQLite
commits it makes, Olm session creation, Olm and Megolm encryption, signature checks, each
under the stage of mautrix's key sharing that called it (member list, key query, trust
check, one-time-key claim, ...). Times are exclusive, so the rows add up to the send's time.
The wrappers exist in this process only and count nothing outside the bot's timed send.

    python bench/megolm_share.py [--members 100,1000] [--keep DIR] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import inspect
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import olm
import yaml
from mautrix.client import Client
from mautrix.client.state_store.asyncpg import PgStateStore
from mautrix.crypto import OlmMachine, PgCryptoStore
from mautrix.crypto import device_lists as mautrix_device_lists
from mautrix.crypto import encrypt_olm as mautrix_encrypt_olm
from mautrix.crypto.account import OlmAccount
from mautrix.crypto.sessions import OutboundGroupSession, Session
from mautrix.types import EventType, RoomCreatePreset, RoomID, UserID
from mautrix.util.async_db import Database
from mautrix.util.async_db import aiosqlite as mautrix_sqlite

from communities_appservice.app import App
from communities_appservice.config import generate_registration
from communities_appservice.dev.localhs import LocalSynapse, free_loopback_port

CONCURRENCY = 16
MEGOLM = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def give_device_keys(hs: Homeserver, user_id: str, token: str) -> None:
    """One real device: identity keys and signed one-time keys, as any E2EE client uploads."""
    device_id = (await hs.call("GET", "/_matrix/client/v3/account/whoami", token))["device_id"]
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
    account.generate_one_time_keys(5)
    one_time: dict[str, Any] = {}
    for key_id, key in account.one_time_keys["curve25519"].items():
        signed = {"key": key}
        signed["signatures"] = {  # type: ignore[assignment]
            user_id: {f"ed25519:{device_id}": account.sign(_canonical({"key": key}))}
        }
        one_time[f"signed_curve25519:{key_id}"] = signed
    await hs.call(
        "POST",
        "/_matrix/client/v3/keys/upload",
        token,
        {"device_keys": device_keys, "one_time_keys": one_time},
    )


async def bounded(calls: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def run(call: Any) -> Any:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(run(c) for c in calls)))


async def make_members(synapse: LocalSynapse, hs: Homeserver, count: int) -> list[tuple[str, str]]:
    async def one(i: int) -> tuple[str, str]:
        localpart = f"member{count}-{i}-{secrets.token_hex(3)}"
        user_id, token = await synapse.register_user(localpart, "pw-" + localpart)
        await give_device_keys(hs, user_id, token)
        return user_id, token

    return await bounded([one(i) for i in range(count)])


async def join_all(hs: Homeserver, room_id: str, members: list[tuple[str, str]]) -> None:
    await bounded(
        [hs.call("POST", f"/_matrix/client/v3/join/{room_id}", token, {}) for _, token in members]
    )


async def plain_client(
    synapse: LocalSynapse, hs: Homeserver, workdir: Path, http: aiohttp.ClientSession
) -> tuple[Client, OlmMachine, list[Database]]:
    user_id, token = await synapse.register_user(f"plain-{secrets.token_hex(3)}", "pw-plain")
    device_id = (await hs.call("GET", "/_matrix/client/v3/account/whoami", token))["device_id"]
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
    await store.put_device_id(device_id)
    machine = OlmMachine(client, store, PgStateStore(state_db))
    await machine.load()
    await machine.share_keys()
    return client, machine, [state_db, crypto_db]


async def time_plain_client(client: Client, machine: OlmMachine, room_id: str) -> float:
    content = {"msgtype": "m.notice", "body": "Benchmark announcement"}
    room = RoomID(room_id)
    began = time.perf_counter()
    members = await client.get_joined_members(room)
    await machine.share_group_session(room, list(members))
    encrypted = await machine.encrypt_megolm_event(room, EventType.ROOM_MESSAGE, content)
    await client.send_message_event(room, EventType.ROOM_ENCRYPTED, encrypted)
    return time.perf_counter() - began


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
    for suffix in ("/members", "/joined_members", "/send/", "/state/"):
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
    crypto._record_members = _timed_async(  # type: ignore[method-assign]
        "member list recorded", crypto._record_members, step=True
    )
    for name, label in STEPS.items():
        setattr(crypto.machine, name, _timed_async(label, getattr(crypto.machine, name), True))
    _wrap_store(crypto.store, "crypto store")
    _wrap_store(crypto.state, "state store")
    connection = mautrix_sqlite.TxnConnection
    for name in ("execute", "executemany"):
        setattr(connection, name, _count_sql(getattr(connection, name)))
    connection.commit = _count_commit(connection.commit)  # type: ignore[method-assign]
    OlmAccount.new_outbound_session = _timed_sync(  # type: ignore[method-assign]
        "Olm session creation", OlmAccount.new_outbound_session
    )
    Session.encrypt = _timed_sync("Olm encryption", Session.encrypt)  # type: ignore[method-assign]
    OutboundGroupSession.encrypt = _timed_sync(  # type: ignore[method-assign]
        "Megolm encryption", OutboundGroupSession.encrypt
    )
    for module in (mautrix_device_lists, mautrix_encrypt_olm):
        module.verify_signature_json = _timed_sync(  # type: ignore[attr-defined]
            "signature checks", module.verify_signature_json
        )


async def time_bot(app: App, room_id: str, profile: Profile | None = None) -> float:
    assert app.gateway is not None
    content = {"msgtype": "m.notice", "body": "Benchmark announcement"}
    token = PROFILE.set(profile)
    try:
        began = time.perf_counter()
        await app.gateway.send_message(room_id, "m.room.message", content)
        return time.perf_counter() - began
    finally:
        PROFILE.reset(token)


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


async def run(sizes: list[int], workdir: Path, profiling: bool = False) -> None:
    registration = workdir / "registration.yaml"
    synapse = LocalSynapse(workdir / "synapse", server_name="localhost", registration=registration)
    config = generate_registration(write_config(workdir, synapse), registration)
    await synapse.start()
    app = App(config)
    await app.start()
    http = aiohttp.ClientSession()
    hs = Homeserver(synapse.base_url, http)
    client, machine, dbs = await plain_client(synapse, hs, workdir, http)
    assert app.gateway is not None
    if profiling:
        install_profiling(app)
    try:
        print(f"{'members':>8} {'bot (s)':>9} {'client (s)':>11} {'ratio':>7}")
        for size in sizes:
            members = await make_members(synapse, hs, size)
            bot_room = await app.gateway.create_room(
                {"preset": "public_chat", "initial_state": [MEGOLM], "name": f"bot {size}"}
            )
            client_room = str(
                await client.create_room(
                    preset=RoomCreatePreset.PUBLIC, initial_state=[MEGOLM], name=f"client {size}"
                )
            )
            await join_all(hs, bot_room, members)
            await join_all(hs, client_room, members)
            await app.router.wait_idle()
            profile = Profile() if profiling else None
            bot = await time_bot(app, bot_room, profile)
            plain = await time_plain_client(client, machine, client_room)
            print(f"{size:>8} {bot:>9.2f} {plain:>11.2f} {bot / plain:>7.2f}", flush=True)
            if profile is not None:
                profile.print(bot)
    finally:
        for db in dbs:
            await db.stop()
        await http.close()
        await app.stop()
        await synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", default="100,1000", help="room sizes, comma-separated")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument(
        "--profile", action="store_true", help="break the bot's send down into phases"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)  # "device isn't cross-signed", per member
    sizes = [int(n) for n in args.members.split(",")]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="megolm-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(sizes, workdir, args.profile))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
