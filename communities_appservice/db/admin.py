"""Table `community_admin`: who administers which community; one of them is the owner."""

from __future__ import annotations

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from ..rules.model import AdminRole


class AdminTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def roles(self, space_id: RoomID) -> dict[UserID, AdminRole]:
        rows = await self.db.fetch(
            "SELECT user_id, role FROM community_admin WHERE space_id=$1 ORDER BY since, user_id",
            space_id,
        )
        return {row["user_id"]: AdminRole(row["role"]) for row in rows}

    async def put(self, space_id: RoomID, user_id: UserID, role: AdminRole, since: int) -> None:
        await self.db.execute(
            "INSERT INTO community_admin (space_id, user_id, role, since) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (space_id, user_id) DO UPDATE SET role=excluded.role",
            space_id,
            user_id,
            str(role),
            since,
        )

    async def delete(self, space_id: RoomID, user_id: UserID) -> None:
        await self.db.execute(
            "DELETE FROM community_admin WHERE space_id=$1 AND user_id=$2", space_id, user_id
        )

    async def communities_of(self, user_id: UserID) -> list[RoomID]:
        rows = await self.db.fetch("SELECT space_id FROM community_admin WHERE user_id=$1", user_id)
        return [row["space_id"] for row in rows]
