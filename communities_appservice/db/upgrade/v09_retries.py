"""Revision 9: events retried after a transient failure: the inbox row says so, and
`handled_listener` names the listeners that had already done their part."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Event retries")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v9(conn: Connection) -> None:
    await conn.execute("ALTER TABLE inbox ADD COLUMN retrying BOOLEAN NOT NULL DEFAULT false")
    await conn.execute("""
        CREATE TABLE handled_listener (
            event_id  TEXT NOT NULL,
            listener  TEXT NOT NULL,
            ts        BIGINT NOT NULL,
            PRIMARY KEY (event_id, listener)
        )
    """)
