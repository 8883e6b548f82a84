"""Table `inbox`: events accepted from the homeserver and not yet handled.

A transaction is answered only after its events are written here, so a crash between the
homeserver's delivery and the handling loses nothing: on start-up the router drains what is
left. Rows are deleted once handled. The inbox is the queue: the router reads it a room at a
time, a page at a time, and never holds a backlog in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection, Database

from ..errors import isolated
from .member import _rowcount
from .sql import chunks, marks

log = logging.getLogger("communities.inbox")


@dataclass
class InboxItem:
    seq: int
    room_id: str
    event: dict[str, Any]
    retrying: bool = False  # a transient failure put it back: retry it, never "interrupted"
    new: bool = True  # False for an event already in the inbox (delivered twice)


class InboxTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def seen(self, txn_id: str, digest: str) -> bool:
        """True for a transaction already accepted with exactly this content."""
        value = await self.db.fetchval("SELECT digest FROM handled_txn WHERE txn_id=$1", txn_id)
        return bool(value == digest)

    async def accept(
        self,
        txn_id: str,
        events: list[dict[str, Any]],
        ts: int,
        digest: str | None = None,
        also: Callable[[list[InboxItem]], Awaitable[None]] | None = None,
    ) -> list[InboxItem]:
        """Store a transaction's events and remember it, atomically; returns its rows.
        `also` runs in the same database transaction, given the rows (what is counted of
        a transaction is counted exactly once: with it, or not at all). It runs in a
        savepoint: when it fails, its writes are undone and the events are still stored
        (on PostgreSQL a failed statement would otherwise abort the whole transaction, and
        the homeserver's every retry of it would fail the same way).

        A transaction id seen before with the same content is a retry and returns nothing.
        The same id with other content is new: a homeserver that lost its pending
        transactions (Synapse on SQLite, after a restart) numbers them from 1 again.
        """
        digest = digest or content_digest(events)
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            known = await conn.fetchval("SELECT digest FROM handled_txn WHERE txn_id=$1", txn_id)
            if known == digest:
                return []
            fresh = {str(e["event_id"]): e for e in events if isinstance(e.get("event_id"), str)}
            ids = list(fresh)
            there = await _existing(conn, "inbox", ids)
            if ids:
                await conn.executemany(
                    "INSERT INTO inbox (event_id, room_id, event, received)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                    [(i, str(fresh[i].get("room_id", "")), json.dumps(fresh[i]), ts) for i in ids],
                )
            seqs = await _seqs(conn, ids)
            items = [
                InboxItem(
                    seq=seqs[i], room_id=str(fresh[i].get("room_id", "")), event=fresh[i],
                    new=i not in there,
                )
                for i in ids
            ]  # fmt: skip
            if also is not None:
                await _isolated(conn, also, await _not_handled(conn, items), txn_id)
            await conn.execute(
                "INSERT INTO handled_txn (txn_id, digest, ts) VALUES ($1, $2, $3)"
                " ON CONFLICT (txn_id) DO UPDATE SET digest=excluded.digest, ts=excluded.ts",
                txn_id,
                digest,
                ts,
            )
        return items

    async def prune_transactions(self, cutoff: int) -> int:
        """Forget the transaction ids recorded before `cutoff` (ms)."""
        status = await self.db.execute("DELETE FROM handled_txn WHERE ts < $1", cutoff)
        return _rowcount(status)

    async def pending(self) -> list[InboxItem]:
        """Every row, oldest first (a small inbox's whole content: for tests and tools)."""
        rows = await self.db.fetch("SELECT seq, room_id, event, retrying FROM inbox ORDER BY seq")
        return [_item(r) for r in rows]

    async def of_room(self, room_id: str, limit: int, after: int = 0) -> list[InboxItem]:
        """The room's oldest rows after row `after`, at most `limit`."""
        rows = await self.db.fetch(
            "SELECT seq, room_id, event, retrying FROM inbox WHERE room_id=$1 AND seq>$2"
            " ORDER BY seq LIMIT $3",
            room_id,
            after,
            limit,
        )
        return [_item(r) for r in rows]

    async def rooms(self) -> list[str]:
        """The rooms with rows in the inbox."""
        rows = await self.db.fetch("SELECT DISTINCT room_id FROM inbox ORDER BY room_id")
        return [str(r["room_id"]) for r in rows]

    async def last_seq(self) -> int:
        return int(await self.db.fetchval("SELECT COALESCE(MAX(seq), 0) FROM inbox") or 0)

    async def set_retrying(self, seq: int) -> None:
        """The event failed for a transient reason: it stays, to be retried (also after a
        restart)."""
        await self.db.execute("UPDATE inbox SET retrying=true WHERE seq=$1", seq)

    async def done(self, seq: int) -> None:
        await self.db.execute("DELETE FROM inbox WHERE seq=$1", seq)


async def _isolated(
    conn: Connection,
    also: Callable[[list[InboxItem]], Awaitable[None]],
    items: list[InboxItem],
    txn_id: str,
) -> None:
    await conn.execute("SAVEPOINT inbox_also")
    with isolated(log, "transaction %s: counting it failed; stored it uncounted", txn_id) as failed:
        await also(items)
    if failed.ref is not None:
        await conn.execute("ROLLBACK TO SAVEPOINT inbox_also")
    await conn.execute("RELEASE SAVEPOINT inbox_also")


async def _not_handled(conn: Connection, items: list[InboxItem]) -> list[InboxItem]:
    """`items`, those delivered before (still in the inbox, or handled) marked not new."""
    fresh = [i for i in items if i.new]
    handled = await _existing(conn, "handled_event", [str(i.event["event_id"]) for i in fresh])
    for item in fresh:
        item.new = str(item.event["event_id"]) not in handled
    return items


async def _existing(conn: Connection, table: str, event_ids: list[str]) -> set[str]:
    """Which of `event_ids` the table (`inbox` or `handled_event`) holds."""
    found: set[str] = set()
    for part in chunks(event_ids):
        query = f"SELECT event_id FROM {table} WHERE event_id IN ({marks(len(part))})"
        found.update(str(r["event_id"]) for r in await conn.fetch(query, *part))
    return found


async def _seqs(conn: Connection, event_ids: list[str]) -> dict[str, int]:
    seqs: dict[str, int] = {}
    for part in chunks(event_ids):
        query = f"SELECT event_id, seq FROM inbox WHERE event_id IN ({marks(len(part))})"
        seqs.update({str(r["event_id"]): int(r["seq"]) for r in await conn.fetch(query, *part)})
    return seqs


def _item(row: Any) -> InboxItem:
    return InboxItem(
        seq=int(row["seq"]),
        room_id=row["room_id"],
        event=json.loads(row["event"]),
        retrying=bool(row["retrying"]),
    )


def content_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
