"""Table `group_admin`: who administers one topic group (power level 50 there only).

Rows go with their group: unlinking a group (deleting its `community_room` row) drops them.
"""

from __future__ import annotations

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount


class GroupAdminTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def of_room(self, room_id: RoomID) -> list[UserID]:
        """The group's admins, longest-serving first."""
        rows = await self.db.fetch(
            "SELECT user_id FROM group_admin WHERE room_id=$1 ORDER BY since, user_id", room_id
        )
        return [row["user_id"] for row in rows]

    async def is_admin(self, room_id: RoomID, user_id: UserID) -> bool:
        value = await self.db.fetchval(
            "SELECT 1 FROM group_admin WHERE room_id=$1 AND user_id=$2", room_id, user_id
        )
        return value is not None

    async def add(self, room_id: RoomID, user_id: UserID, since: int) -> bool:
        """Record a group admin; True when they were not one before."""
        status = await self.db.execute(
            "INSERT INTO group_admin (room_id, user_id, since) VALUES ($1, $2, $3)"
            " ON CONFLICT (room_id, user_id) DO NOTHING",
            room_id,
            user_id,
            since,
        )
        return _rowcount(status) > 0

    async def remove(self, room_id: RoomID, user_id: UserID) -> bool:
        status = await self.db.execute(
            "DELETE FROM group_admin WHERE room_id=$1 AND user_id=$2", room_id, user_id
        )
        return _rowcount(status) > 0
