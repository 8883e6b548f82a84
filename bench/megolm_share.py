"""Benchmark: the first encrypted notice into a room of N members, bot vs plain client.

For each N (default 100 and 1,000) it registers N users on a local Synapse, gives each one
real device with identity and one-time keys (python-olm), and makes them join two encrypted
rooms: one created by the appservice's bot, one by a plain user. Then it times

- the bot: `gateway.send_message` of a notice (members, key query, one-time-key claim, Olm
  encryption of the room key for every device, to-device send, Megolm encryption, send);
- a plain E2EE client of the same library family (mautrix `Client` + `OlmMachine`, its own
  crypto store on SQLite) doing the same: list members, share a Megolm session, encrypt, send;

and prints both times and the ratio bot / client. Only 127.0.0.1 is contacted.

    python bench/megolm_share.py [--members 100,1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import olm
import yaml
from mautrix.client import Client
from mautrix.client.state_store.asyncpg import PgStateStore
from mautrix.crypto import OlmMachine, PgCryptoStore
from mautrix.types import EventType, RoomCreatePreset, RoomID, UserID
from mautrix.util.async_db import Database

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


async def time_bot(app: App, room_id: str) -> float:
    assert app.gateway is not None
    content = {"msgtype": "m.notice", "body": "Benchmark announcement"}
    began = time.perf_counter()
    await app.gateway.send_message(room_id, "m.room.message", content)
    return time.perf_counter() - began


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


async def run(sizes: list[int], workdir: Path) -> None:
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
            bot = await time_bot(app, bot_room)
            plain = await time_plain_client(client, machine, client_room)
            print(f"{size:>8} {bot:>9.2f} {plain:>11.2f} {bot / plain:>7.2f}", flush=True)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)  # "device isn't cross-signed", per member
    sizes = [int(n) for n in args.members.split(",")]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="megolm-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(sizes, workdir))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
