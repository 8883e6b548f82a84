"""Revision 14: polls, the rooms each was posted in, and the votes they received."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Polls")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v14(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    # `options` is a JSON list; `announcements` is 1 for a poll posted in the announcement
    # room (members may vote there while it is open); `ended_at` is 0 while the poll is
    # open, then the instant after which votes no longer count (MSC3381: the end's time).
    await conn.execute(f"""
        CREATE TABLE poll (
            id              {serial},
            space_id        TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            author          TEXT NOT NULL,
            question        TEXT NOT NULL,
            options         TEXT NOT NULL,
            max_selections  INTEGER NOT NULL,
            announcements   INTEGER NOT NULL DEFAULT 0,
            state           TEXT NOT NULL DEFAULT 'open',
            created_at      BIGINT NOT NULL,
            ended_at        BIGINT NOT NULL DEFAULT 0,
            ended_by        TEXT NOT NULL DEFAULT ''
        )
    """)
    # The poll's start event in each room it was posted in (votes refer to it).
    await conn.execute("""
        CREATE TABLE poll_post (
            poll_id     BIGINT NOT NULL REFERENCES poll(id) ON DELETE CASCADE,
            room_id     TEXT NOT NULL,
            event_id    TEXT NOT NULL,
            PRIMARY KEY (poll_id, room_id)
        )
    """)
    await conn.execute("CREATE UNIQUE INDEX poll_post_event ON poll_post (room_id, event_id)")
    # Every response, as the tally needs them (each voter's latest by timestamp); `answers`
    # is a JSON list, or NULL for a response that carried none (spoiled).
    await conn.execute("""
        CREATE TABLE poll_vote (
            poll_id     BIGINT NOT NULL REFERENCES poll(id) ON DELETE CASCADE,
            event_id    TEXT NOT NULL,
            room_id     TEXT NOT NULL,
            sender      TEXT NOT NULL,
            ts          BIGINT NOT NULL,
            answers     TEXT,
            PRIMARY KEY (poll_id, event_id)
        )
    """)
