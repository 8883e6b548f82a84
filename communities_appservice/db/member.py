"""Table `community_member`: who has joined each community's space."""

from __future__ import annotations

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database


class MemberTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, space_id: RoomID, user_id: UserID, joined_at: int) -> bool:
        """Record a member; True when they were not one before."""
        status = await self.db.execute(
            "INSERT INTO community_member (space_id, user_id, joined_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (space_id, user_id) DO NOTHING",
            space_id,
            user_id,
            joined_at,
        )
        return _rowcount(status) > 0

    async def remove(self, space_id: RoomID, user_id: UserID) -> bool:
        status = await self.db.execute(
            "DELETE FROM community_member WHERE space_id=$1 AND user_id=$2", space_id, user_id
        )
        return _rowcount(status) > 0

    async def is_member(self, space_id: RoomID, user_id: UserID) -> bool:
        value = await self.db.fetchval(
            "SELECT 1 FROM community_member WHERE space_id=$1 AND user_id=$2", space_id, user_id
        )
        return value is not None

    async def count(self, space_id: RoomID) -> int:
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM community_member WHERE space_id=$1", space_id
        )
        return int(value)

    async def of_community(self, space_id: RoomID) -> list[UserID]:
        rows = await self.db.fetch(
            "SELECT user_id FROM community_member WHERE space_id=$1 ORDER BY user_id", space_id
        )
        return [UserID(row["user_id"]) for row in rows]

    async def communities_of(self, user_id: UserID) -> list[RoomID]:
        rows = await self.db.fetch(
            "SELECT space_id FROM community_member WHERE user_id=$1", user_id
        )
        return [row["space_id"] for row in rows]


def _rowcount(status: object) -> int:
    """Rows touched, from asyncpg's status string ("INSERT 0 1") or an aiosqlite cursor."""
    if isinstance(status, str):
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0
    return int(getattr(status, "rowcount", 0))
