"""The service's own records, one module per table, on SQLite or PostgreSQL (mautrix async_db).

`Tables` bundles one object per table around one `Database`; queries use `$1` placeholders,
which mautrix translates for SQLite. `Tables.transaction()` groups calls to several tables into
one database transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mautrix.util.async_db import Connection, Database

from .admin import AdminTable
from .audit import AuditTable
from .ban import BanTable
from .community import CommunityTable
from .dedupe import DedupeTable
from .event import EventTable
from .export import ExportReader
from .group_admin import GroupAdminTable
from .inbox import InboxTable
from .invite_link import InviteLinkTable
from .join_request import JoinRequestTable
from .member import MemberTable
from .operation import OperationTable
from .parked import ParkedTable
from .poll import PollTable
from .problem import ProblemTable
from .room import RoomTable
from .schedule import ScheduleTable
from .stats import StatsTable
from .suggestion import SuggestionTable
from .texts import BotDmTable, TextTable, ToldOnceTable, WelcomedTable
from .upgrade import upgrade_table


def now_ms() -> int:
    return int(time.time() * 1000)


class Tables:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.communities = CommunityTable(db)
        self.rooms = RoomTable(db)
        self.admins = AdminTable(db)
        self.group_admins = GroupAdminTable(db)
        self.members = MemberTable(db)
        self.audit = AuditTable(db)
        self.dedupe = DedupeTable(db)
        self.inbox = InboxTable(db)
        self.invite_links = InviteLinkTable(db)
        self.join_requests = JoinRequestTable(db)
        self.texts = TextTable(db)
        self.welcomed = WelcomedTable(db)
        self.bot_dms = BotDmTable(db)
        self.suggestions = SuggestionTable(db)
        self.operations = OperationTable(db)
        self.problems = ProblemTable(db)
        self.bans = BanTable(db)
        self.parked = ParkedTable(db)
        self.schedule = ScheduleTable(db)
        self.told_once = ToldOnceTable(db)
        self.polls = PollTable(db)
        self.events = EventTable(db)
        self.stats = StatsTable(db)
        self.export = ExportReader(db)

    async def backlog(self) -> dict[str, int]:
        """What waits, by kind: the metrics' gauges (one query)."""
        row = await self.db.fetchrow(
            "SELECT (SELECT COUNT(*) FROM inbox) AS inbox,"
            " (SELECT COUNT(*) FROM operation WHERE state IN ('running', 'undoing')) AS operations,"
            " (SELECT COUNT(*) FROM scheduled_job WHERE state='pending') AS jobs,"
            " (SELECT COUNT(*) FROM parked_event) AS parked"
        )
        assert row is not None
        return {k: int(row[k] or 0) for k in ("inbox", "operations", "jobs", "parked")}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """All or nothing: table calls inside share one connection (mautrix keeps it in a
        context variable) and commit together, or roll back together when anything raises."""
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            yield


# Every commit on SQLite reaches the disk before it returns (the WAL is synced), so what the
# homeserver was told it holds survives a power loss too, not only a crash of the process.
SQLITE_DURABLE = ["PRAGMA synchronous = FULL"]


def create_database(url: str, *, durable: bool = True) -> Database:
    """The service's database at `url` (SQLite or PostgreSQL); `durable=False` only for a
    benchmark's comparison (SQLite's `synchronous = NORMAL`)."""
    if url.startswith("postgresql://"):
        url = "postgres://" + url.removeprefix("postgresql://")
    db_args = (
        {"init_commands": list(SQLITE_DURABLE)} if url.startswith("sqlite") and durable else None
    )
    return Database.create(
        url,
        upgrade_table=upgrade_table,
        db_args=db_args,
        log=logging.getLogger("communities.db"),
        owner_name="communities",
    )


__all__ = ["Tables", "create_database", "now_ms"]
