"""Revision 2: `invite_link`, the invite alias of each community."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Invite links")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v2(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE invite_link (
            space_id    TEXT PRIMARY KEY REFERENCES community(space_id) ON DELETE CASCADE,
            alias       TEXT NOT NULL UNIQUE,
            created_at  BIGINT NOT NULL
        )
    """)
