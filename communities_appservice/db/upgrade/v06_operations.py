"""Revision 6: `operation` and `operation_step`, multi-step work that survives a crash."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Operations")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v6(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    await conn.execute(f"""
        CREATE TABLE operation (
            id          {serial},
            kind        TEXT NOT NULL,
            space_id    TEXT NOT NULL DEFAULT '',
            actor       TEXT NOT NULL,
            params      TEXT NOT NULL,
            room_id     TEXT NOT NULL DEFAULT '',
            event_id    TEXT NOT NULL DEFAULT '',
            thread_root TEXT NOT NULL DEFAULT '',
            state       TEXT NOT NULL DEFAULT 'running',
            attempts    INTEGER NOT NULL DEFAULT 0,
            outcome     TEXT NOT NULL DEFAULT '',
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL
        )
    """)
    await conn.execute("CREATE INDEX operation_state_idx ON operation (state)")
    await conn.execute("CREATE INDEX operation_event_idx ON operation (event_id)")
    await conn.execute("""
        CREATE TABLE operation_step (
            op_id       BIGINT NOT NULL REFERENCES operation(id) ON DELETE CASCADE,
            step        TEXT NOT NULL,
            result      TEXT NOT NULL,
            done_at     BIGINT NOT NULL,
            PRIMARY KEY (op_id, step)
        )
    """)
