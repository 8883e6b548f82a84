"""Benchmark: what SQLite's `synchronous = FULL` costs the inbox, against `NORMAL`.

The service writes every transaction's events to the inbox, in one database transaction,
before it answers the homeserver; with `FULL` that commit is synced to disk first, so it
survives a power loss. This times N transactions of E events each (`InboxTable.accept`, the
exact call the HTTP server makes), on a fresh SQLite file in each mode, and prints the times
and the ratio FULL / NORMAL. No network is involved.

    python bench/sqlite_durability.py [--transactions 500] [--events 10] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from communities_appservice.db import Tables, create_database, now_ms


async def time_inbox(path: Path, durable: bool, transactions: int, events: int) -> float:
    db = create_database(f"sqlite:{path}", durable=durable)
    await db.start()
    tables = Tables(db)
    try:
        began = time.perf_counter()
        for t in range(transactions):
            batch = [
                {
                    "event_id": f"$t{t}e{e}",
                    "room_id": f"!room{e % 5}:localhost",
                    "type": "m.room.message",
                    "content": {"body": "x" * 200},
                }
                for e in range(events)
            ]
            await tables.inbox.accept(f"txn{t}", batch, now_ms())
        return time.perf_counter() - began
    finally:
        await db.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=500)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (a disk)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        normal = await time_inbox(
            Path(workdir) / "normal.db", False, args.transactions, args.events
        )
        full = await time_inbox(Path(workdir) / "full.db", True, args.transactions, args.events)
    per = args.transactions
    print(f"{per} transactions of {args.events} events, SQLite in {args.dir or 'the temp dir'}")
    print(f"  synchronous=NORMAL  {normal:7.3f} s  ({normal / per * 1000:.2f} ms a transaction)")
    print(f"  synchronous=FULL    {full:7.3f} s  ({full / per * 1000:.2f} ms a transaction)")
    print(f"  ratio FULL / NORMAL {full / normal:7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
