"""Revision 3: `join_request`, knocks on a community's space or groups awaiting an answer."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Join requests")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v3(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE join_request (
            room_id       TEXT NOT NULL,
            user_id       TEXT NOT NULL,
            space_id      TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            reason        TEXT NOT NULL DEFAULT '',
            requested_at  BIGINT NOT NULL,
            PRIMARY KEY (room_id, user_id)
        )
    """)
    await conn.execute("CREATE INDEX join_request_space ON join_request (space_id, requested_at)")
