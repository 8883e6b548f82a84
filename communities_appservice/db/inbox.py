"""Table `inbox`: events accepted from the homeserver and not yet handled.

A transaction is answered only after its events are written here, so a crash between the
homeserver's delivery and the handling loses nothing: on start-up the router drains what is
left. Rows are deleted once handled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Database


@dataclass
class InboxItem:
    seq: int
    room_id: str
    event: dict[str, Any]


class InboxTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def accept(self, txn_id: str, events: list[dict[str, Any]], ts: int) -> list[InboxItem]:
        """Store a transaction's events and mark it seen, atomically; returns the new rows."""
        items: list[InboxItem] = []
        async with self.db.acquire() as conn, conn.transaction():
            seen = await conn.fetchval("SELECT 1 FROM handled_txn WHERE txn_id=$1", txn_id)
            if seen:
                return []
            for event in events:
                event_id = event.get("event_id")
                if not isinstance(event_id, str):
                    continue
                room_id = str(event.get("room_id", ""))
                await conn.execute(
                    "INSERT INTO inbox (event_id, room_id, event, received) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (event_id) DO NOTHING",
                    event_id, room_id, json.dumps(event), ts,
                )
                seq = await conn.fetchval("SELECT seq FROM inbox WHERE event_id=$1", event_id)
                items.append(InboxItem(seq=int(seq), room_id=room_id, event=event))
            await conn.execute(
                "INSERT INTO handled_txn (txn_id, ts) VALUES ($1, $2)", txn_id, ts
            )
        return items

    async def pending(self) -> list[InboxItem]:
        rows = await self.db.fetch("SELECT seq, room_id, event FROM inbox ORDER BY seq")
        return [
            InboxItem(seq=int(r["seq"]), room_id=r["room_id"], event=json.loads(r["event"]))
            for r in rows
        ]

    async def done(self, seq: int) -> None:
        await self.db.execute("DELETE FROM inbox WHERE seq=$1", seq)
