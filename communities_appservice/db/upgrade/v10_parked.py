"""Revision 10: encrypted events whose keys had not arrived, parked until they do."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Parked events")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v10(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE parked_event (
            event_id    TEXT PRIMARY KEY,
            room_id     TEXT NOT NULL,
            session_id  TEXT NOT NULL,
            event       TEXT NOT NULL,
            parked_at   BIGINT NOT NULL,
            running     BOOLEAN NOT NULL DEFAULT false
        )
    """)
    await conn.execute("CREATE INDEX parked_event_parked_at ON parked_event (parked_at)")
