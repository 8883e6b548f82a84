"""Revision 11: the inbox is read a room at a time, in order (an index for it)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Inbox by room")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v11(conn: Connection) -> None:
    await conn.execute("CREATE INDEX inbox_room_seq ON inbox (room_id, seq)")
