"""Table `audit_log`: every admin action and every repair — who, what, target, when, result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

Record = Any


@dataclass
class AuditEntry:
    id: int
    space_id: RoomID
    actor: UserID
    action: str
    target: str
    detail: str
    result: str
    ts: int

    @classmethod
    def from_row(cls, row: Record) -> AuditEntry:
        return cls(**dict(row))


class AuditTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        space_id: RoomID,
        actor: UserID,
        action: str,
        target: str,
        detail: str,
        result: str,
        ts: int,
    ) -> None:
        await self.db.execute(
            "INSERT INTO audit_log (space_id, actor, action, target, detail, result, ts)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            space_id,
            actor,
            action,
            target,
            detail,
            result,
            ts,
        )

    async def recent(self, space_id: RoomID, limit: int) -> list[AuditEntry]:
        rows = await self.db.fetch(
            "SELECT id, space_id, actor, action, target, detail, result, ts FROM audit_log"
            " WHERE space_id=$1 ORDER BY id DESC LIMIT $2",
            space_id,
            limit,
        )
        return [AuditEntry.from_row(r) for r in rows]
