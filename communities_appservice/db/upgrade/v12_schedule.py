"""Revision 12: timed jobs (scheduled posts; later, event reminders), each community's time
zone and replies mode, and what the bot told someone once."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Scheduled jobs")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v12(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    await conn.execute("ALTER TABLE community ADD COLUMN timezone TEXT NOT NULL DEFAULT ''")
    # Members' replies to announcements: '' (the service's default), threads, off.
    await conn.execute("ALTER TABLE community ADD COLUMN replies TEXT NOT NULL DEFAULT ''")
    # What the bot told someone once (why their message was taken down, say).
    await conn.execute("""
        CREATE TABLE told_once (
            space_id    TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            user_id     TEXT NOT NULL,
            topic       TEXT NOT NULL,
            ts          BIGINT NOT NULL,
            PRIMARY KEY (space_id, user_id, topic)
        )
    """)
    # `due_at` is the next occurrence (UTC ms); a recurring job keeps its rule: the first
    # occurrence as wall-clock time (`anchor`, ISO without offset), its zone and `every`.
    await conn.execute(f"""
        CREATE TABLE scheduled_job (
            id          {serial},
            space_id    TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            kind        TEXT NOT NULL,
            author      TEXT NOT NULL,
            params      TEXT NOT NULL,
            due_at      BIGINT NOT NULL,
            anchor      TEXT NOT NULL DEFAULT '',
            zone        TEXT NOT NULL DEFAULT '',
            every       TEXT NOT NULL DEFAULT '',
            fired       INTEGER NOT NULL DEFAULT 0,
            state       TEXT NOT NULL DEFAULT 'pending',
            created_at  BIGINT NOT NULL
        )
    """)
    await conn.execute("CREATE INDEX scheduled_job_due ON scheduled_job (state, due_at)")
