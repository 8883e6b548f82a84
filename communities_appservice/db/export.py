"""What `export` reads: every record of one community, table by table, as plain values.

Records only, never message content: the community and its rooms, admins, group admins,
members, bans, join requests, the audit log, welcome and rules texts, the invite link,
scheduled posts, polls with their votes, events with their answers, and the daily stats
(counts only: the keyed hashes of active members and readers stay behind).
"""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection, Database

# Record kind -> the query of its rows ($1: the space id), in a stable order.
QUERIES: dict[str, str] = {
    "community": "SELECT * FROM community WHERE space_id=$1",
    "rooms": "SELECT * FROM community_room WHERE space_id=$1 ORDER BY position, room_id",
    "admins": "SELECT * FROM community_admin WHERE space_id=$1 ORDER BY user_id",
    "group_admins": (
        "SELECT g.* FROM group_admin g JOIN community_room r ON r.room_id = g.room_id"
        " WHERE r.space_id=$1 ORDER BY g.room_id, g.user_id"
    ),
    "members": "SELECT * FROM community_member WHERE space_id=$1 ORDER BY user_id",
    "bans": "SELECT * FROM community_ban WHERE space_id=$1 ORDER BY user_id",
    "join_requests": (
        "SELECT * FROM join_request WHERE space_id=$1 ORDER BY requested_at, user_id"
    ),
    "audit_log": "SELECT * FROM audit_log WHERE space_id=$1 ORDER BY id",
    "texts": "SELECT * FROM community_text WHERE space_id=$1 ORDER BY kind",
    "invite_link": "SELECT * FROM invite_link WHERE space_id=$1",
    "scheduled_posts": "SELECT * FROM scheduled_job WHERE space_id=$1 ORDER BY id",
    "polls": "SELECT * FROM poll WHERE space_id=$1 ORDER BY id",
    "poll_votes": (
        "SELECT v.* FROM poll_vote v JOIN poll p ON p.id = v.poll_id WHERE p.space_id=$1"
        " ORDER BY v.poll_id, v.ts, v.event_id"
    ),
    "events": "SELECT * FROM community_event WHERE space_id=$1 ORDER BY id",
    "event_answers": (
        "SELECT a.* FROM event_rsvp a JOIN community_event e ON e.id = a.event_id"
        " WHERE e.space_id=$1 ORDER BY a.event_id, a.user_id"
    ),
    "stats": "SELECT * FROM stat_day WHERE space_id=$1 ORDER BY day, room_id, kind",
}


# Yes/no columns: SQLite hands back 0 and 1, PostgreSQL true and false; the archive says
# true and false on both.
FLAGS = {"rooms": ("adopted",), "polls": ("announcements",)}


class ExportReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def records(self, space_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every record kind of `QUERIES`, its rows as dicts (read in one transaction, so
        the archive is one moment's picture)."""
        found: dict[str, list[dict[str, Any]]] = {}
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            for kind, query in QUERIES.items():
                flags = FLAGS.get(kind, ())
                found[kind] = [_plain(r, flags) for r in await conn.fetch(query, space_id)]
        return found


def _plain(row: Any, flags: tuple[str, ...]) -> dict[str, Any]:
    keys = row.keys()  # rows are not dicts
    return {k: bool(row[k]) if k in flags else _value(row[k]) for k in keys}


def _value(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
