"""Table `invite_link`: the one invite alias of each community (DESIGN §2, invite links)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID
from mautrix.util.async_db import Database

Record = Any


@dataclass(frozen=True)
class InviteLink:
    space_id: RoomID
    alias: str
    created_at: int

    @classmethod
    def from_row(cls, row: Record) -> InviteLink:
        return cls(**dict(row))


class InviteLinkTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, space_id: RoomID) -> InviteLink | None:
        row = await self.db.fetchrow(
            "SELECT space_id, alias, created_at FROM invite_link WHERE space_id=$1", space_id
        )
        return InviteLink.from_row(row) if row else None

    async def put(self, link: InviteLink) -> None:
        """Store the community's link, replacing the one it had."""
        await self.db.execute(
            "INSERT INTO invite_link (space_id, alias, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (space_id) DO UPDATE"
            " SET alias=excluded.alias, created_at=excluded.created_at",
            link.space_id,
            link.alias,
            link.created_at,
        )

    async def delete(self, space_id: RoomID) -> None:
        await self.db.execute("DELETE FROM invite_link WHERE space_id=$1", space_id)
