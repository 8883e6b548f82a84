"""Revision 4: rules and welcome texts, who was welcomed, and the bot's DM with each user."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Rules, welcome and DMs")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v4(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE community_text (
            space_id  TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            kind      TEXT NOT NULL,
            body      TEXT NOT NULL,
            event_id  TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (space_id, kind)
        )
    """)
    await conn.execute("""
        CREATE TABLE welcomed (
            space_id  TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            user_id   TEXT NOT NULL,
            ts        BIGINT NOT NULL,
            PRIMARY KEY (space_id, user_id)
        )
    """)
    await conn.execute("""
        CREATE TABLE bot_dm (
            user_id  TEXT PRIMARY KEY,
            room_id  TEXT NOT NULL
        )
    """)
