"""Table `community_problem`: what reconciliation found and cannot repair, until it is gone.

Kept in the database so that `info` shows it and a restart does not announce it again."""

from __future__ import annotations

from mautrix.types import RoomID
from mautrix.util.async_db import Database


class ProblemTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def of(self, space_id: RoomID) -> dict[str, str]:
        """The community's problems, key → what an admin should do, oldest first."""
        rows = await self.db.fetch(
            "SELECT key, text FROM community_problem WHERE space_id=$1 ORDER BY since, key",
            space_id,
        )
        return {r["key"]: r["text"] for r in rows}

    async def put(self, space_id: RoomID, key: str, text: str, ts: int) -> None:
        await self.db.execute(
            "INSERT INTO community_problem (space_id, key, text, since) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (space_id, key) DO UPDATE SET text=excluded.text",
            space_id,
            key,
            text,
            ts,
        )

    async def delete(self, space_id: RoomID, key: str) -> None:
        await self.db.execute(
            "DELETE FROM community_problem WHERE space_id=$1 AND key=$2", space_id, key
        )
