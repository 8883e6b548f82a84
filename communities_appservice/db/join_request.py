"""Table `join_request`: who knocked on which room of a community, and why; kept until answered."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount


@dataclass
class JoinRequest:
    room_id: RoomID
    user_id: UserID
    space_id: RoomID
    reason: str
    requested_at: int


_COLUMNS = "room_id, user_id, space_id, reason, requested_at"


class JoinRequestTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, r: JoinRequest) -> None:
        """Record a knock (a repeated knock keeps the first time, takes the new reason)."""
        await self.db.execute(
            f"INSERT INTO join_request ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (room_id, user_id) DO UPDATE SET reason=excluded.reason",
            r.room_id,
            r.user_id,
            r.space_id,
            r.reason,
            r.requested_at,
        )

    async def get(self, room_id: RoomID, user_id: UserID) -> JoinRequest | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM join_request WHERE room_id=$1 AND user_id=$2",
            room_id,
            user_id,
        )
        return JoinRequest(**dict(row)) if row else None

    async def of_community(self, space_id: RoomID) -> list[JoinRequest]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM join_request WHERE space_id=$1 ORDER BY requested_at",
            space_id,
        )
        return [JoinRequest(**dict(r)) for r in rows]

    async def delete(self, room_id: RoomID, user_id: UserID) -> bool:
        status = await self.db.execute(
            "DELETE FROM join_request WHERE room_id=$1 AND user_id=$2", room_id, user_id
        )
        return _rowcount(status) > 0
