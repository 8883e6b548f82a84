"""Tables `community_text` (rules, welcome), `welcomed` (greeted once) and `bot_dm`."""

from __future__ import annotations

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount


class TextTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, space_id: RoomID, kind: str) -> tuple[str, str] | None:
        """(body, event_id) of the community's `kind` text ("rules" or "welcome")."""
        row = await self.db.fetchrow(
            "SELECT body, event_id FROM community_text WHERE space_id=$1 AND kind=$2",
            space_id,
            kind,
        )
        return (row["body"], row["event_id"]) if row else None

    async def put(self, space_id: RoomID, kind: str, body: str, event_id: str = "") -> None:
        await self.db.execute(
            "INSERT INTO community_text (space_id, kind, body, event_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (space_id, kind) DO UPDATE SET body=excluded.body,"
            " event_id=excluded.event_id",
            space_id,
            kind,
            body,
            event_id,
        )


class WelcomedTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def has(self, space_id: RoomID, user_id: UserID) -> bool:
        value = await self.db.fetchval(
            "SELECT 1 FROM welcomed WHERE space_id=$1 AND user_id=$2", space_id, user_id
        )
        return value is not None

    async def claim(self, space_id: RoomID, user_id: UserID, ts: int) -> bool:
        """True the first time for this member of this community, False ever after."""
        status = await self.db.execute(
            "INSERT INTO welcomed (space_id, user_id, ts) VALUES ($1, $2, $3)"
            " ON CONFLICT (space_id, user_id) DO NOTHING",
            space_id,
            user_id,
            ts,
        )
        return _rowcount(status) > 0


class BotDmTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: UserID) -> RoomID | None:
        value = await self.db.fetchval("SELECT room_id FROM bot_dm WHERE user_id=$1", user_id)
        return RoomID(str(value)) if value else None

    async def put(self, user_id: UserID, room_id: RoomID) -> None:
        await self.db.execute(
            "INSERT INTO bot_dm (user_id, room_id) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET room_id=excluded.room_id",
            user_id,
            room_id,
        )


class ToldOnceTable:
    """What the bot told a member once per community (why a message was taken down)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, space_id: RoomID, user_id: UserID, topic: str, ts: int) -> bool:
        """True the first time for this member, community and topic; False ever after."""
        status = await self.db.execute(
            "INSERT INTO told_once (space_id, user_id, topic, ts) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (space_id, user_id, topic) DO NOTHING",
            space_id,
            user_id,
            topic,
            ts,
        )
        return _rowcount(status) > 0

    async def forget(self, space_id: RoomID, user_id: UserID, topic: str) -> None:
        await self.db.execute(
            "DELETE FROM told_once WHERE space_id=$1 AND user_id=$2 AND topic=$3",
            space_id,
            user_id,
            topic,
        )
