"""Benchmark: `admin add` in a community of N rooms, against a plain client setting the same
power levels.

The bot promotes an admin as an operation: recorded first, then the power levels the records
demand written into every room (one memoised step per room, a few rooms at once), then the
invitation to the admins room, a DM to the new admin and the audit entry. A plain mautrix
`Client` on the same Synapse sends the same power-level contents (read from the bot's rooms
after the promotion) into N rooms of its own, with the same concurrency, precomputed,
nothing else. Printed: the medians over the rounds and the ratio bot / client (goal: at most
1.10), and of the bot's time the part spent writing the power levels (from the first room's
write to the last one's answer), against the same client. Only 127.0.0.1.

    python bench/admin_add.py [--groups 97] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.client import Client
from mautrix.types import EventType, RoomID, UserID
from megolm_share import write_config  # type: ignore[import-not-found]  # bench/ is on sys.path

from communities_appservice.app import App
from communities_appservice.config import generate_registration
from communities_appservice.core.service import Service
from communities_appservice.db.community import Community
from communities_appservice.db.room import CommunityRoom
from communities_appservice.dev.localhs import LocalSynapse
from communities_appservice.features.roles import Roles
from communities_appservice.features.structure import Structure
from communities_appservice.rules.model import JoinMode
from communities_appservice.tasks import bounded


class PowerWrites:
    """When the bot's power-level writes of a promotion began and ended (a wrapper on
    `Service.apply_room_power`, in this process only)."""

    def __init__(self) -> None:
        self.first = self.last = 0.0
        apply = Service.apply_room_power
        writes = self

        async def timed(svc: Service, community: Community, room: CommunityRoom) -> None:
            writes.first = writes.first or time.perf_counter()
            await apply(svc, community, room)
            writes.last = time.perf_counter()

        Service.apply_room_power = timed  # type: ignore[method-assign]

    def span(self) -> float:
        span, self.first, self.last = self.last - self.first, 0.0, 0.0
        return span


async def promote(
    app: App,
    synapse: LocalSynapse,
    community: Community,
    owner: str,
    http: aiohttp.ClientSession,
    writes: PowerWrites,
) -> tuple[float, float]:
    """A new member joins the space; the time of the bot's `admin add` for them, and of its
    power-level writes."""
    assert app.service is not None
    user, token = await synapse.register_user(f"adm-{secrets.token_hex(3)}", "pw-a")
    member = Client(mxid=UserID(user), base_url=synapse.base_url, token=token, client_session=http)
    await member.join_room(community.space_id)
    while not await app.service.db.members.is_member(community.space_id, UserID(user)):
        await asyncio.sleep(0.05)  # the bot handles the join (and its invitation) first
    await app.router.wait_idle()
    writes.span()
    began = time.perf_counter()
    await Roles(app.service).add_admin(community, UserID(owner), UserID(user))
    return time.perf_counter() - began, writes.span()


async def plain_rooms(client: Client, n: int, app: App) -> list[RoomID]:
    """The client's rooms. The bot is in each (it joins when invited), as in a community's
    rooms: the homeserver sends their events to the appservice for both sides alike."""
    assert app.gateway is not None
    gateway = app.gateway

    async def one(i: int) -> RoomID:
        room = await client.create_room(name=f"Plain {i}", invitees=[UserID(app.config.bot_mxid)])
        await gateway.join(room)
        return room

    return await bounded(one(i) for i in range(n))


async def time_plain(client: Client, rooms: list[RoomID], contents: list[dict[str, Any]]) -> float:
    """The same power levels into the client's own rooms, the same number at once."""
    mine = str(client.mxid)
    payloads = []
    for content in contents:
        users = {u: level for u, level in content.get("users", {}).items() if u != mine}
        payloads.append({**content, "users": users})
    began = time.perf_counter()
    await bounded(
        client.send_state_event(room, EventType.ROOM_POWER_LEVELS, payload)  # type: ignore[arg-type]
        for room, payload in zip(rooms, payloads, strict=True)
    )
    return time.perf_counter() - began


async def run(groups: int, rounds: int, workdir: Path) -> None:
    registration = workdir / "registration.yaml"
    synapse = LocalSynapse(workdir / "synapse", server_name="localhost", registration=registration)
    config = generate_registration(write_config(workdir, synapse), registration)
    await synapse.start()
    app = App(config)
    await app.start()
    http = aiohttp.ClientSession()
    owner, _ = await synapse.register_user(f"owner-{secrets.token_hex(3)}", "pw-owner")
    plain, plain_token = await synapse.register_user(f"plain-{secrets.token_hex(3)}", "pw-p")
    client = Client(
        mxid=UserID(plain), base_url=synapse.base_url, token=plain_token, client_session=http
    )
    assert app.service is not None and app.gateway is not None
    try:
        names = [f"Group {i}" for i in range(groups)]
        community = await Structure(app.service).create_community(
            UserID(owner), f"Bench {secrets.token_hex(3)}", "", JoinMode.OPEN, names
        )
        rooms = await app.service.db.rooms.of_community(community.space_id)
        mine = await plain_rooms(client, len(rooms), app)
        print(f"{'rooms':>6} {'bot (s)':>8} {'client (s)':>11} {'ratio':>7}"
              f" {'bot writes (s)':>15} {'ratio':>7}")  # fmt: skip
        bots, plains, powers = [], [], []
        writes = PowerWrites()
        for _ in range(rounds):
            took, wrote = await promote(app, synapse, community, owner, http, writes)
            bots.append(took)
            powers.append(wrote)
            contents = [
                await app.gateway.get_state(r.room_id, "m.room.power_levels") or {} for r in rooms
            ]
            plains.append(await time_plain(client, mine, contents))
        bot, plain_time = statistics.median(bots), statistics.median(plains)
        power = statistics.median(powers)
        print(f"{len(rooms):>6} {bot:>8.2f} {plain_time:>11.2f} {bot / plain_time:>7.2f}"
              f" {power:>15.2f} {power / plain_time:>7.2f}")  # fmt: skip
        print("rounds: " + ", ".join(
            f"bot {b:.2f} client {p:.2f} writes {w:.2f}"
            for b, p, w in zip(bots, plains, powers, strict=True)
        ))  # fmt: skip
    finally:
        await http.close()
        await app.stop()
        await synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=97, help="groups (rooms: groups + 3)")
    parser.add_argument("--rounds", type=int, default=3, help="promotions (median shown)")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="admin-add-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(args.groups, args.rounds, workdir))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
