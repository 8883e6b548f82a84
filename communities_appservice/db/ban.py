"""Table `community_ban`: who is banned from a community, by whom, why and since when.

Bans act on rooms (the homeserver enforces them); the record is what a room made later —
a group created or adopted after the ban — applies, and what a knock is checked against."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount


@dataclass(frozen=True)
class Ban:
    space_id: RoomID
    user_id: UserID
    reason: str
    banned_by: UserID
    since: int


class BanTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, ban: Ban) -> None:
        await self.db.execute(
            "INSERT INTO community_ban (space_id, user_id, reason, banned_by, since)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (space_id, user_id) DO NOTHING",
            ban.space_id,
            ban.user_id,
            ban.reason,
            ban.banned_by,
            ban.since,
        )

    async def delete(self, space_id: RoomID, user_id: UserID) -> bool:
        status = await self.db.execute(
            "DELETE FROM community_ban WHERE space_id=$1 AND user_id=$2", space_id, user_id
        )
        return _rowcount(status) > 0

    async def is_banned(self, space_id: RoomID, user_id: UserID) -> bool:
        value = await self.db.fetchval(
            "SELECT 1 FROM community_ban WHERE space_id=$1 AND user_id=$2", space_id, user_id
        )
        return value is not None

    async def of_community(self, space_id: RoomID) -> list[Ban]:
        rows = await self.db.fetch(
            "SELECT space_id, user_id, reason, banned_by, since FROM community_ban"
            " WHERE space_id=$1 ORDER BY since, user_id",
            space_id,
        )
        return [Ban(**dict(row)) for row in rows]
