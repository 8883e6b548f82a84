"""Benchmark: ingestion of non-command events with stats on, against stats off.

What the homeserver pushes goes through `Router.accept` (the inbox's database transaction,
where stats are counted) and then the room workers (claim, handler, done). This script
feeds the router transactions of 100 events (Synapse's most) of one community of ten
groups: encrypted messages, thread replies and reactions (cleartext relations, as Element
sends them), plus ten read receipts per transaction on announcement posts. The handler is a
no-op: what is measured is the path every event takes before any feature looks at it, and
what counting adds to it. It prints events per second for

- accept alone, stats off and on (what the homeserver waits for before its 200);
- accept and drain (every event handled and forgotten), stats off and on;

on SQLite as the service runs it (durable commits), pinned to one core; with `--postgres
URL` on PostgreSQL too. Only 127.0.0.1 is contacted.

    python bench/stats_ingest.py [--events 20000] [--rounds 3] [--postgres postgres://…]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from communities_appservice.config import CommunitiesConfig
from communities_appservice.db import Tables, create_database, now_ms
from communities_appservice.db.community import Community
from communities_appservice.db.room import CommunityRoom
from communities_appservice.features import stats
from communities_appservice.matrix.router import Router

BOT = "@communities:bench.localhost"
SPACE = "!space:bench.localhost"
ANN = "!ann:bench.localhost"
GROUPS = [f"!g{i}:bench.localhost" for i in range(10)]
PER_TXN = 100
_ids = itertools.count()


async def community(tables: Tables) -> None:
    await tables.communities.insert(
        Community(SPACE, "Bench", "", "open", "@owner:bench.localhost", "active", "12", now_ms())
    )
    for n, (room, role) in enumerate([(SPACE, "space"), (ANN, "announcements")]
                                     + [(g, "group") for g in GROUPS]):  # fmt: skip
        await tables.rooms.insert(
            CommunityRoom(room, SPACE, role, f"room {n}", "open", False, n, now_ms())
        )


def event(room: str, sender: str, relates: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    content: dict[str, Any] = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x" * 200}
    if relates:
        content["m.relates_to"] = relates
    return {"type": kind, "room_id": room, "sender": sender, "content": content,
            "event_id": f"$e{next(_ids)}", "origin_server_ts": now_ms()}  # fmt: skip


def transaction(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    for i in range(PER_TXN):
        room, sender = GROUPS[i % 10], f"@user{(n * 7 + i) % 500}:bench.localhost"
        if i == 0:
            events.append(event(ANN, "@owner:bench.localhost", None, "m.room.encrypted"))
        elif i % 10 == 1:
            relates = {"rel_type": "m.thread", "event_id": "$root"}
            events.append(event(room, sender, relates, "m.room.encrypted"))
        elif i % 10 == 2:
            relates = {"rel_type": "m.annotation", "event_id": "$root", "key": "👍"}
            events.append(event(room, sender, relates, "m.reaction"))
        else:
            events.append(event(room, sender, None, "m.room.encrypted"))
    post = events[0]["event_id"]
    receipts = [
        {"type": "m.receipt", "room_id": ANN,
         "content": {post: {"m.read": {f"@user{(n + r) % 500}:bench.localhost": {"ts": 1}}}}}
        for r in range(10)
    ]  # fmt: skip
    return events, receipts


async def run(url: str, counting: bool, drain: bool, total: int) -> float:
    db = create_database(url)
    await db.start()
    tables = Tables(db)
    try:
        await community(tables)
        svc: Any = SimpleNamespace(config=SimpleNamespace(communities=CommunitiesConfig()),
                                   bot=BOT, db=tables)  # fmt: skip

        async def nothing(event: dict[str, Any]) -> None:
            return None

        router = Router(tables, nothing)
        if counting:
            router.counter = lambda events, ephemeral: stats.count(svc, events, ephemeral)
        batches = [transaction(n) for n in range(total // PER_TXN)]
        start = time.perf_counter()
        for n, (events, receipts) in enumerate(batches):
            await router.accept(f"t{n}", events, f"d{n}", receipts)
        if drain:
            await router.wait_idle()
        elapsed = time.perf_counter() - start
        await router.stop()
        return total / elapsed
    finally:
        await db.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="", help="also on this PostgreSQL (emptied)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    targets: list[tuple[str, Any]] = [("SQLite", None)]
    if args.postgres:
        targets.append(("PostgreSQL", args.postgres))
    print(f"{args.events} events in transactions of {PER_TXN}, {args.rounds} rounds, medians")
    for name, pg in targets:
        for drain in (False, True):
            results: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for counting in (False, True):
                    with tempfile.TemporaryDirectory() as tmp:
                        url = pg or f"sqlite:{Path(tmp) / 'bench.db'}"
                        if pg:
                            await _empty(pg)
                        results[counting].append(await run(url, counting, drain, args.events))
            off, on = (statistics.median(results[c]) for c in (False, True))
            what = "accept and drain" if drain else "accept alone    "
            print(f"{name:10} {what}: stats off {off:8.0f} events/s, on {on:8.0f} events/s"
                  f" ({on / off:.2f}x)")  # fmt: skip


async def _empty(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
