"""Revision 8: `community_ban`, who is banned from a community (so that rooms made later
apply the ban too)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Community bans")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v8(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE community_ban (
            space_id   TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            user_id    TEXT NOT NULL,
            reason     TEXT NOT NULL,
            banned_by  TEXT NOT NULL,
            since      BIGINT NOT NULL,
            PRIMARY KEY (space_id, user_id)
        )
    """)
