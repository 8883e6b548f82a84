"""Benchmark: a mixed soak, to see memory stay flat and nothing fail.

The service runs as operators run it (`python -m communities_appservice`, encryption on,
SQLite) against a local Synapse, with one open community of a few groups. For D minutes
(10 by default) a workload runs without pause: people join the space and leave again,
members write in the groups, and an admin sends commands from a DM (`info`, `stats`,
`group list`, `polls`, `scheduled`, `log`), each reply awaited. Every 30 s the service's
resident memory is sampled. Printed: the samples, the growth from the second minute (the
first warms up) to the last, how many commands, joins and messages ran, and the errors:
commands unanswered within 30 s, replies that report a failure, and ERROR lines in the
service's log (goal: none, and memory flat). Only 127.0.0.1.

    python bench/soak.py [--minutes 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sqlite3
import time
from pathlib import Path

import aiohttp
from common import in_workdir, local_synapse, service_process  # type: ignore[import-not-found]  # bench/
from mautrix.client import Client
from mautrix.types import PaginationDirection, RoomID, UserID
from memory import memory_mb  # type: ignore[import-not-found]

COMMANDS = ("info", "stats", "group list", "polls", "scheduled", "log --limit 5")


class Soak:
    def __init__(self, base_url: str, bot: str, http: aiohttp.ClientSession) -> None:
        self.base_url, self.bot, self.http = base_url, bot, http
        self.counts = {"commands": 0, "joins": 0, "leaves": 0, "messages": 0}
        self.errors: list[str] = []

    def client(self, user: str, token: str) -> Client:
        return Client(
            mxid=UserID(user), base_url=self.base_url, token=token, client_session=self.http
        )

    async def command(self, owner: Client, dm: RoomID, text: str, timeout: float = 30) -> str:
        event_id = await owner.send_text(dm, f"!community {text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = await owner.get_messages(dm, PaginationDirection.BACKWARD, limit=20)
            for event in page.events:
                content = event.content.serialize()
                reply = (content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
                if event.sender == self.bot and reply.get("event_id") == event_id:
                    return str(content.get("body", ""))
            await asyncio.sleep(0.2)
        self.errors.append(f"no reply to {text!r}")
        return ""

    async def joined(self, client: Client, room: RoomID, user: str, timeout: float = 60) -> None:
        """Wait until `user` is in `room`."""
        deadline = time.monotonic() + timeout
        while UserID(user) not in await client.get_joined_members(room):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user} did not join {room}")
            await asyncio.sleep(0.2)

    async def admin(self, owner: Client, dm: RoomID, until: float) -> None:
        while time.monotonic() < until:
            text = random.choice(COMMANDS)
            body = await self.command(owner, dm, text)
            self.counts["commands"] += 1
            if "went wrong" in body or "reference" in body:
                self.errors.append(f"{text!r}: {body[:80]}")

    async def people(self, people: list[Client], space: RoomID, until: float) -> None:
        while time.monotonic() < until:
            person = random.choice(people)
            await person.join_room_by_id(space)
            self.counts["joins"] += 1
            await asyncio.sleep(random.uniform(0.2, 1.0))
            await person.leave_room(space)
            self.counts["leaves"] += 1

    async def talk(self, members: list[Client], groups: list[RoomID], until: float) -> None:
        while time.monotonic() < until:
            member, group = random.choice(members), random.choice(groups)
            await member.send_text(group, f"hello {secrets.token_hex(2)}")
            self.counts["messages"] += 1
            await asyncio.sleep(0.1)


async def run(minutes: float, workdir: Path) -> None:
    synapse, config, config_path = local_synapse(workdir)
    await synapse.start()
    log = workdir / "service.log"
    service = await service_process(config, config_path, log)
    http = aiohttp.ClientSession()
    soak = Soak(synapse.base_url, config.bot_mxid, http)
    try:
        owner = soak.client(*await synapse.register_user("soak-owner", "pw"))
        dm = await owner.create_room(invitees=[UserID(config.bot_mxid)], is_direct=True)
        await soak.joined(owner, dm, config.bot_mxid)
        created = await soak.command(owner, dm, 'create "Soak" --join open --groups A,B,C', 120)
        assert "Created community" in created, created
        space, groups = _rooms(workdir / "communities.db")
        await owner.join_room_by_id(space)
        members = [soak.client(*await synapse.register_user(f"m{i}", "pw")) for i in range(10)]
        for member in members:
            await member.join_room_by_id(space)
            for group in groups:
                await member.join_room_by_id(group)
        people = [soak.client(*await synapse.register_user(f"p{i}", "pw")) for i in range(20)]
        began = time.monotonic()
        until = began + minutes * 60
        samples: list[tuple[float, float]] = []

        async def sample() -> None:
            while time.monotonic() < until:
                samples.append((time.monotonic() - began, memory_mb(service.pid)[0]))
                await asyncio.sleep(30)

        await asyncio.gather(
            sample(),
            soak.admin(owner, dm, until),
            soak.people(people, space, until),
            soak.talk(members, groups, until),
        )
        samples.append((time.monotonic() - began, memory_mb(service.pid)[0]))
        print(f"{'seconds':>8} {'RSS (MB)':>9}")
        for at, rss in samples:
            print(f"{at:>8.0f} {rss:>9.1f}")
        # The first minute warms up (pools, caches, the first Olm and Megolm sessions).
        second = [rss for at, rss in samples if 60 <= at <= 120]
        last = [rss for at, rss in samples if at >= samples[-1][0] - 60]
        growth = sum(last) / len(last) - sum(second) / len(second)
        print(f"memory growth, second minute to last: {growth:+.1f} MB")
        print(", ".join(f"{n} {what}" for what, n in soak.counts.items()))
    finally:
        await http.close()
        service.terminate()
        await service.wait()
        await synapse.stop()
    logged = [line for line in log.read_text().splitlines() if " ERROR " in line]
    soak.errors += [f"log: {line[:120]}" for line in logged]
    print(f"errors: {len(soak.errors)}")
    for error in soak.errors[:20]:
        print("  " + error)


def _rooms(database: Path) -> tuple[RoomID, list[RoomID]]:
    """The community's space and groups, from the service's records."""
    con = sqlite3.connect(database, timeout=30)
    try:
        rows = con.execute("SELECT room_id, role FROM community_room").fetchall()
    finally:
        con.close()
    [space] = [RoomID(room) for room, role in rows if role == "space"]
    return space, [RoomID(room) for room, role in rows if role == "group"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    in_workdir(args.keep, "soak-bench-", lambda workdir: run(args.minutes, workdir))


if __name__ == "__main__":
    main()
