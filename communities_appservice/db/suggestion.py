"""Table `group_suggestion`: a member's proposed group (a name, or an existing room)."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

_COLUMNS = "id, space_id, sender, name, room_id, state, created_at"


@dataclass
class Suggestion:
    id: int
    space_id: RoomID
    sender: UserID
    name: str
    room_id: str  # empty: a new group called `name`
    state: str  # pending | accepted | rejected
    created_at: int


class SuggestionTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, space_id: RoomID, sender: UserID, name: str, room_id: str, ts: int) -> int:
        await self.db.execute(
            "INSERT INTO group_suggestion (space_id, sender, name, room_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            space_id,
            sender,
            name,
            room_id,
            ts,
        )
        value = await self.db.fetchval(
            "SELECT MAX(id) FROM group_suggestion WHERE space_id=$1 AND sender=$2",
            space_id,
            sender,
        )
        return int(value)

    async def get(self, space_id: RoomID, suggestion_id: int) -> Suggestion | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM group_suggestion WHERE space_id=$1 AND id=$2",
            space_id,
            suggestion_id,
        )
        return Suggestion(**dict(row)) if row else None

    async def pending(self, space_id: RoomID) -> list[Suggestion]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM group_suggestion WHERE space_id=$1 AND state='pending'"
            " ORDER BY id",
            space_id,
        )
        return [Suggestion(**dict(r)) for r in rows]

    async def decide(self, suggestion_id: int, state: str) -> None:
        await self.db.execute(
            "UPDATE group_suggestion SET state=$2 WHERE id=$1", suggestion_id, state
        )
