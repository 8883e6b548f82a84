"""Table `parked_event`: encrypted events that arrived before their keys.

The ciphertext is kept as it came (nothing decrypted is stored); `running` is set while
the event's listeners run, so a restart knows the event was cut short, not still waiting."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.types import EventID, RoomID
from mautrix.util.async_db import Database

from .member import _rowcount


@dataclass(frozen=True)
class Parked:
    event_id: EventID
    room_id: RoomID
    session_id: str
    event: dict[str, Any]
    parked_at: int
    running: bool


class ParkedTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def park(self, event: dict[str, Any], session_id: str, now: int) -> None:
        await self.db.execute(
            "INSERT INTO parked_event (event_id, room_id, session_id, event, parked_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            str(event["event_id"]),
            str(event["room_id"]),
            session_id,
            json.dumps(event),
            now,
        )

    async def oldest(self, limit: int) -> list[Parked]:
        """The longest-waiting events first, at most `limit`."""
        rows = await self.db.fetch(
            "SELECT event_id, room_id, session_id, event, parked_at, running FROM parked_event"
            " ORDER BY parked_at, event_id LIMIT $1",
            limit,
        )
        return [
            Parked(
                event_id=EventID(row["event_id"]),
                room_id=RoomID(row["room_id"]),
                session_id=row["session_id"],
                event=json.loads(row["event"]),
                parked_at=int(row["parked_at"]),
                running=bool(row["running"]),
            )
            for row in rows
        ]

    async def holds(self, event_id: EventID) -> bool:
        """Whether the event is parked."""
        value = await self.db.fetchval("SELECT 1 FROM parked_event WHERE event_id=$1", event_id)
        return value is not None

    async def set_running(self, event_id: EventID, running: bool) -> None:
        await self.db.execute(
            "UPDATE parked_event SET running=$2 WHERE event_id=$1", event_id, running
        )

    async def delete(self, event_id: EventID) -> bool:
        status = await self.db.execute("DELETE FROM parked_event WHERE event_id=$1", event_id)
        return _rowcount(status) > 0

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM parked_event") or 0)
