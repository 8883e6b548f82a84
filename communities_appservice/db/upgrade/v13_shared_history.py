"""Revision 13: the room keys of announcement rooms that newcomers may be given (MSC4268)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Shareable room keys")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v13(conn: Connection) -> None:
    # Only the ids: the keys themselves stay in the crypto store, pickled.
    await conn.execute("""
        CREATE TABLE shared_history_key (
            room_id     TEXT NOT NULL,
            session_id  TEXT NOT NULL,
            PRIMARY KEY (room_id, session_id)
        )
    """)
