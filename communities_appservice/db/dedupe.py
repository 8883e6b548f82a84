"""Tables `handled_event` and `handled_listener`: events whose side effects have run and
must never run again, and, for an event retried after a transient failure, the listeners
that had already done their part.

The homeserver may deliver the same event in a new transaction (transaction ids are
remembered by the inbox); the event id is claimed here, so a restart forgets neither.
"""

from __future__ import annotations

from mautrix.util.async_db import Database

from .member import _rowcount


class DedupeTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_event(self, event_id: str, ts: int) -> bool:
        """True for the first caller with this event id, False ever after."""
        status = await self.db.execute(
            "INSERT INTO handled_event (event_id, ts) VALUES ($1, $2)"
            " ON CONFLICT (event_id) DO NOTHING",
            event_id,
            ts,
        )
        return _rowcount(status) > 0

    async def prune(self, cutoff: int) -> int:
        """Forget the events claimed before `cutoff` (ms), but none still in the inbox (a
        crash or a retry may still need to know it ran); how many were forgotten."""
        pending = "event_id NOT IN (SELECT event_id FROM inbox)"
        await self.db.execute(f"DELETE FROM handled_listener WHERE ts < $1 AND {pending}", cutoff)
        status = await self.db.execute(
            f"DELETE FROM handled_event WHERE ts < $1 AND {pending}", cutoff
        )
        return _rowcount(status)

    async def listeners_done(self, event_id: str) -> set[str]:
        rows = await self.db.fetch(
            "SELECT listener FROM handled_listener WHERE event_id=$1", event_id
        )
        return {str(row["listener"]) for row in rows}

    async def listener_done(self, event_id: str, listener: str, ts: int) -> None:
        await self.db.execute(
            "INSERT INTO handled_listener (event_id, listener, ts) VALUES ($1, $2, $3)"
            " ON CONFLICT (event_id, listener) DO NOTHING",
            event_id,
            listener,
            ts,
        )
