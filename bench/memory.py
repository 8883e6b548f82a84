"""Benchmark: the service's memory with 1,000 communities and 100,000 members recorded.

The records are written straight into the service's SQLite database: N communities, each a
space, an announcement room, an admins room and one group, with M members each (100,000 in
all by default) and its owner as admin. Then the service starts as operators run it
(`python -m communities_appservice -c config.yaml`, encryption on) against a local Synapse.
The rooms exist only in the records, so the first reconciliation pass finds that every room
refuses the bot and records a problem for each: a pass that reads every record, the most
the service does with them at once. Printed: the service's resident memory (VmRSS, and the
peak VmHWM) once it is ready, after that pass, and after a minute idle. Goal: at most
200 MB. Only 127.0.0.1.

    python bench/memory.py [--communities 1000] [--members 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path

from common import in_workdir, local_synapse, service_process  # type: ignore[import-not-found]  # bench/

from communities_appservice.db import Tables, create_database

GOAL_MB = 200


async def migrate(url: str) -> None:
    db = create_database(url)
    await db.start()  # runs the migrations
    Tables(db)
    await db.stop()


def populate(path: Path, communities: int, members: int) -> None:
    """The records of `communities` communities with `members` members each."""
    now = int(time.time() * 1000)
    con = sqlite3.connect(path)
    with con:
        for c in range(communities):
            space = f"!space{c}:localhost"
            owner = f"@owner{c}:localhost"
            con.execute(
                "INSERT INTO community (space_id, name, description, join_mode, owner, state,"
                " room_version, created_at, timezone, replies, language)"
                " VALUES (?, ?, '', 'open', ?, 'active', '12', ?, '', '', '')",
                (space, f"Chapter {c}", owner, now),
            )
            rooms = [(space, "space", "Chapter"), (f"!ann{c}:localhost", "announcements", "News")]
            rooms += [
                (f"!adm{c}:localhost", "admins", "Admins"),
                (f"!grp{c}:localhost", "group", "Chat"),
            ]
            con.executemany(
                "INSERT INTO community_room (room_id, space_id, role, name, access, adopted,"
                " position, created_at) VALUES (?, ?, ?, ?, 'open', 0, ?, ?)",
                [(room, space, role, name, i, now) for i, (room, role, name) in enumerate(rooms)],
            )
            con.execute(
                "INSERT INTO community_admin (space_id, user_id, role, since)"
                " VALUES (?, ?, 'owner', ?)",
                (space, owner, now),
            )
            con.executemany(
                "INSERT INTO community_member (space_id, user_id, joined_at) VALUES (?, ?, ?)",
                [(space, f"@m{c}-{m}:localhost", now) for m in range(members)],
            )
    con.close()


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def problems(path: Path) -> int:
    con = sqlite3.connect(path, timeout=30)
    try:
        return int(
            con.execute("SELECT count(DISTINCT space_id) FROM community_problem").fetchone()[0]
        )
    finally:
        con.close()


async def run(communities: int, members: int, workdir: Path) -> None:
    synapse, config, config_path = local_synapse(workdir)
    database = workdir / "communities.db"
    await migrate(f"sqlite:{database}")
    began = time.perf_counter()
    populate(database, communities, members)
    print(f"recorded {communities:,} communities, {communities * members:,} members"
          f" in {time.perf_counter() - began:.1f} s")  # fmt: skip
    await synapse.start()
    service = await service_process(config, config_path, workdir / "service.log")
    try:
        rss, peak = memory_mb(service.pid)
        print(f"{'ready':<28} RSS {rss:7.1f} MB   peak {peak:7.1f} MB")
        began = time.perf_counter()
        while problems(database) < communities:
            await asyncio.sleep(1)
        rss, peak = memory_mb(service.pid)
        took = time.perf_counter() - began
        print(f"{f'after the pass ({took:.0f} s)':<28} RSS {rss:7.1f} MB   peak {peak:7.1f} MB")
        await asyncio.sleep(60)
        rss, peak = memory_mb(service.pid)
        print(f"{'a minute later':<28} RSS {rss:7.1f} MB   peak {peak:7.1f} MB")
        print(f"goal: at most {GOAL_MB} MB: {'met' if peak <= GOAL_MB else 'NOT met'}")
    finally:
        service.terminate()
        await service.wait()
        await synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--communities", type=int, default=1000)
    parser.add_argument("--members", type=int, default=100, help="members per community")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    in_workdir(args.keep, "memory-bench-", lambda w: run(args.communities, args.members, w))


if __name__ == "__main__":
    main()
