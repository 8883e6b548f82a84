"""Revision 15: community events (a card in the announcement room, reminders) and answers."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from .table import upgrade_table


# mautrix types `register` for direct use only; as a decorator factory mypy cannot follow it.
@upgrade_table.register(description="Events and RSVPs")  # type: ignore[untyped-decorator,call-arg,arg-type]
async def upgrade_v15(conn: Connection, scheme: Scheme) -> None:
    serial = (
        "INTEGER PRIMARY KEY AUTOINCREMENT" if scheme == Scheme.SQLITE else "BIGSERIAL PRIMARY KEY"
    )
    # Times are UTC ms, `zone` the community's when the event was made; `reminders` a JSON
    # list of offsets before the start (seconds); the card and its `.ics` once posted.
    await conn.execute(f"""
        CREATE TABLE community_event (
            id          {serial},
            space_id    TEXT NOT NULL REFERENCES community(space_id) ON DELETE CASCADE,
            author      TEXT NOT NULL,
            title       TEXT NOT NULL,
            place       TEXT NOT NULL DEFAULT '',
            starts_at   BIGINT NOT NULL,
            ends_at     BIGINT NOT NULL,
            zone        TEXT NOT NULL,
            reminders   TEXT NOT NULL DEFAULT '[]',
            state       TEXT NOT NULL DEFAULT 'upcoming',
            room_id     TEXT NOT NULL DEFAULT '',
            card_id     TEXT NOT NULL DEFAULT '',
            created_at  BIGINT NOT NULL
        )
    """)
    # One answer per member and event, the latest; `reaction` is the reaction event that
    # gave it (its redaction withdraws the answer), '' for an answer by command.
    await conn.execute("""
        CREATE TABLE event_rsvp (
            event_id    BIGINT NOT NULL REFERENCES community_event(id) ON DELETE CASCADE,
            user_id     TEXT NOT NULL,
            answer      TEXT NOT NULL,
            ts          BIGINT NOT NULL,
            reaction    TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (event_id, user_id)
        )
    """)
    await conn.execute("CREATE INDEX event_rsvp_reaction ON event_rsvp (reaction)")
    await conn.execute("CREATE INDEX community_event_card ON community_event (room_id, card_id)")
