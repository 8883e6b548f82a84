"""Revision 7: `community_problem`, what reconciliation found and could not repair."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Unrepaired problems")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v7(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE community_problem (
            space_id  TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            key       TEXT NOT NULL,
            text      TEXT NOT NULL,
            since     BIGINT NOT NULL,
            PRIMARY KEY (space_id, key)
        )
    """)
