"""Revision 1: communities, rooms, admins, group admins, members, audit log, inbox, dedupe."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Initial schema")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    await conn.execute("""
        CREATE TABLE community (
            space_id      TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            description   TEXT NOT NULL DEFAULT '',
            join_mode     TEXT NOT NULL,
            owner         TEXT NOT NULL,
            state         TEXT NOT NULL,
            room_version  TEXT NOT NULL,
            created_at    BIGINT NOT NULL
        )
    """)
    await conn.execute("""
        CREATE TABLE community_room (
            room_id     TEXT PRIMARY KEY,
            space_id    TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            role        TEXT NOT NULL,
            name        TEXT NOT NULL DEFAULT '',
            access      TEXT NOT NULL DEFAULT 'open',
            adopted     BOOLEAN NOT NULL DEFAULT false,
            position    INTEGER NOT NULL DEFAULT 0,
            created_at  BIGINT NOT NULL
        )
    """)
    await conn.execute("CREATE INDEX community_room_space ON community_room (space_id, role)")
    await conn.execute("""
        CREATE TABLE community_admin (
            space_id  TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            user_id   TEXT NOT NULL,
            role      TEXT NOT NULL,
            since     BIGINT NOT NULL,
            PRIMARY KEY (space_id, user_id)
        )
    """)
    await conn.execute("""
        CREATE TABLE group_admin (
            room_id  TEXT NOT NULL REFERENCES community_room(room_id) ON DELETE CASCADE,
            user_id  TEXT NOT NULL,
            since    BIGINT NOT NULL,
            PRIMARY KEY (room_id, user_id)
        )
    """)
    await conn.execute("""
        CREATE TABLE community_member (
            space_id   TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            user_id    TEXT NOT NULL,
            joined_at  BIGINT NOT NULL,
            PRIMARY KEY (space_id, user_id)
        )
    """)
    await conn.execute(f"""
        CREATE TABLE audit_log (
            id        {serial},
            space_id  TEXT NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            target    TEXT NOT NULL DEFAULT '',
            detail    TEXT NOT NULL DEFAULT '',
            result    TEXT NOT NULL,
            ts        BIGINT NOT NULL
        )
    """)
    await conn.execute("CREATE INDEX audit_log_space ON audit_log (space_id, id)")
    await conn.execute("""
        CREATE TABLE handled_event (
            event_id  TEXT PRIMARY KEY,
            ts        BIGINT NOT NULL
        )
    """)
    await conn.execute(f"""
        CREATE TABLE inbox (
            seq       {serial},
            event_id  TEXT NOT NULL UNIQUE,
            room_id   TEXT NOT NULL,
            event     TEXT NOT NULL,
            received  BIGINT NOT NULL
        )
    """)
    await conn.execute("""
        CREATE TABLE handled_txn (
            txn_id  TEXT PRIMARY KEY,
            digest  TEXT NOT NULL,
            ts      BIGINT NOT NULL
        )
    """)
