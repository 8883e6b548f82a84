"""Table `handled_event`: events whose side effects have run and must never run again.

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
        """Forget the events claimed before `cutoff` (ms); how many were forgotten."""
        status = await self.db.execute("DELETE FROM handled_event WHERE ts < $1", cutoff)
        return _rowcount(status)
