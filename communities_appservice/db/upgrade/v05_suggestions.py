"""Revision 5: `group_suggestion`, groups members propose and admins accept or reject."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Group suggestions")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v5(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    await conn.execute(f"""
        CREATE TABLE group_suggestion (
            id          {serial},
            space_id    TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            sender      TEXT NOT NULL,
            name        TEXT NOT NULL,
            room_id     TEXT NOT NULL DEFAULT '',
            state       TEXT NOT NULL DEFAULT 'pending',
            created_at  BIGINT NOT NULL
        )
    """)
