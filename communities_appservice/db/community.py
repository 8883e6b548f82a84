"""Table `community`: one row per community, keyed by its space."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount

Record = Any

_COLUMNS = (
    "space_id, name, description, join_mode, owner, state, room_version, created_at, timezone,"
    " replies, language"
)


@dataclass
class Community:
    space_id: RoomID
    name: str
    description: str
    join_mode: str
    owner: UserID
    state: str  # "active" | "deactivated"
    room_version: str
    created_at: int
    timezone: str = ""  # IANA name; '' means the service's default (communities.timezone)
    replies: str = ""  # threads | off; '' means the default (communities.announcement_replies)
    language: str = ""  # a code of language.LANGUAGES; '' means communities.default_language

    @classmethod
    def from_row(cls, row: Record) -> Community:
        return cls(**dict(row))


class CommunityTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, c: Community) -> None:
        await self.db.execute(
            f"INSERT INTO community ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
            " $11)",
            c.space_id,
            c.name,
            c.description,
            c.join_mode,
            c.owner,
            c.state,
            c.room_version,
            c.created_at or int(time.time() * 1000),
            c.timezone,
            c.replies,
            c.language,
        )

    async def get(self, space_id: RoomID) -> Community | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM community WHERE space_id=$1", space_id
        )
        return Community.from_row(row) if row else None

    async def find_by_name(self, name: str) -> list[Community]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM community WHERE lower(name)=lower($1) AND state='active'",
            name,
        )
        return [Community.from_row(r) for r in rows]

    async def all_active(self) -> list[Community]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM community WHERE state='active' ORDER BY created_at"
        )
        return [Community.from_row(r) for r in rows]

    async def set_name(self, space_id: RoomID, name: str) -> None:
        await self.db.execute("UPDATE community SET name=$2 WHERE space_id=$1", space_id, name)

    async def set_description(self, space_id: RoomID, description: str) -> None:
        await self.db.execute(
            "UPDATE community SET description=$2 WHERE space_id=$1", space_id, description
        )

    async def replace_owner(self, space_id: RoomID, old: UserID, new: UserID) -> bool:
        """Make `new` the owner if `old` still is; False (and no change) when not."""
        status = await self.db.execute(
            "UPDATE community SET owner=$3 WHERE space_id=$1 AND owner=$2", space_id, old, new
        )
        return _rowcount(status) > 0

    async def set_join_mode(self, space_id: RoomID, join_mode: str) -> None:
        await self.db.execute(
            "UPDATE community SET join_mode=$2 WHERE space_id=$1", space_id, join_mode
        )

    async def delete(self, space_id: RoomID) -> None:
        """Forget the community and, by cascade, every record of it."""
        await self.db.execute("DELETE FROM community WHERE space_id=$1", space_id)

    async def set_timezone(self, space_id: RoomID, zone: str) -> None:
        await self.db.execute("UPDATE community SET timezone=$2 WHERE space_id=$1", space_id, zone)

    async def set_replies(self, space_id: RoomID, mode: str) -> None:
        await self.db.execute("UPDATE community SET replies=$2 WHERE space_id=$1", space_id, mode)

    async def set_language(self, space_id: RoomID, code: str) -> None:
        await self.db.execute("UPDATE community SET language=$2 WHERE space_id=$1", space_id, code)

    async def set_state(self, space_id: RoomID, state: str) -> None:
        await self.db.execute("UPDATE community SET state=$2 WHERE space_id=$1", space_id, state)
