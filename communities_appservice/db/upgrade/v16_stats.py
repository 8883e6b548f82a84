"""Revision 16: engagement stats, counts only (never content, never who said what)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Engagement stats")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v16(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    # Events of a kind (rules.stats.Kind) per community, room and UTC day.
    await conn.execute("""
        CREATE TABLE stat_day (
            space_id    TEXT NOT NULL,
            room_id     TEXT NOT NULL,
            day         INTEGER NOT NULL,
            kind        TEXT NOT NULL,
            n           BIGINT NOT NULL,
            PRIMARY KEY (space_id, day, room_id, kind)
        )
    """)
    # Members active on a day, each as a keyed hash (never the user id): counted, not named.
    await conn.execute("""
        CREATE TABLE stat_active (
            space_id    TEXT NOT NULL,
            day         INTEGER NOT NULL,
            who         TEXT NOT NULL,
            PRIMARY KEY (space_id, day, who)
        )
    """)
    # Posts of announcement rooms and how many members read them (from read receipts);
    # `seq` is their order of arrival (times in ms can be equal).
    await conn.execute(f"""
        CREATE TABLE stat_post (
            seq         {serial},
            event_id    TEXT NOT NULL UNIQUE,
            room_id     TEXT NOT NULL,
            space_id    TEXT NOT NULL,
            ts          BIGINT NOT NULL,
            readers     BIGINT NOT NULL DEFAULT 0
        )
    """)
    await conn.execute("CREATE INDEX stat_post_room ON stat_post (room_id, seq)")
    await conn.execute("CREATE INDEX stat_post_space ON stat_post (space_id, ts)")
    # How far each reader (a keyed hash) has read an announcement room (a post's `seq`): a
    # receipt counts its reader once for every post up to the one it is on.
    await conn.execute("""
        CREATE TABLE stat_reader (
            room_id     TEXT NOT NULL,
            who         TEXT NOT NULL,
            upto        BIGINT NOT NULL,
            PRIMARY KEY (room_id, who)
        )
    """)
    # The key of the hashes, made once per installation.
    await conn.execute("CREATE TABLE stat_key (id INTEGER PRIMARY KEY, secret TEXT NOT NULL)")
