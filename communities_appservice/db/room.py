"""Table `community_room`: every room of every community and its role there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID
from mautrix.util.async_db import Database

from .sql import chunks, marks

Record = Any

_COLUMNS = "room_id, space_id, role, name, access, adopted, position, created_at"


@dataclass
class CommunityRoom:
    room_id: RoomID
    space_id: RoomID
    role: str  # rules.Role
    name: str
    access: str  # rules.GroupAccess, for groups
    adopted: bool
    position: int
    created_at: int

    @classmethod
    def from_row(cls, row: Record) -> CommunityRoom:
        values = dict(row)
        values["adopted"] = bool(values["adopted"])
        return cls(**values)


class RoomTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, r: CommunityRoom) -> None:
        await self.db.execute(
            f"INSERT INTO community_room ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            r.room_id,
            r.space_id,
            r.role,
            r.name,
            r.access,
            r.adopted,
            r.position,
            r.created_at,
        )

    async def get(self, room_id: RoomID) -> CommunityRoom | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM community_room WHERE room_id=$1", room_id
        )
        return CommunityRoom.from_row(row) if row else None

    async def of_community(self, space_id: RoomID, role: str | None = None) -> list[CommunityRoom]:
        if role is None:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM community_room WHERE space_id=$1 ORDER BY position",
                space_id,
            )
        else:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM community_room WHERE space_id=$1 AND role=$2"
                " ORDER BY position",
                space_id,
                role,
            )
        return [CommunityRoom.from_row(r) for r in rows]

    async def of_rooms(self, room_ids: list[str]) -> dict[str, CommunityRoom]:
        """The community rooms among `room_ids`, by room id (one query per 500)."""
        found: dict[str, CommunityRoom] = {}
        for part in chunks(room_ids):
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM community_room WHERE room_id IN ({marks(len(part))})",
                *part,
            )
            found.update({str(r["room_id"]): CommunityRoom.from_row(r) for r in rows})
        return found

    async def next_position(self, space_id: RoomID) -> int:
        value = await self.db.fetchval(
            "SELECT COALESCE(MAX(position), 0) + 1 FROM community_room WHERE space_id=$1",
            space_id,
        )
        return int(value)

    async def set_name(self, room_id: RoomID, name: str) -> None:
        await self.db.execute("UPDATE community_room SET name=$2 WHERE room_id=$1", room_id, name)

    async def delete(self, room_id: RoomID) -> None:
        await self.db.execute("DELETE FROM community_room WHERE room_id=$1", room_id)
