"""Tables `poll`, `poll_post`, `poll_vote`: the bot's polls, where each was posted, and the
responses it received (every one: the tally takes each voter's latest, MSC3381)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from mautrix.types import EventID, RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount

_COLUMNS = (
    "id, space_id, author, question, options, max_selections, announcements, state,"
    " created_at, ended_at, ended_by"
)


class PollState(enum.StrEnum):
    OPEN = "open"
    ENDED = "ended"


@dataclass
class Poll:
    id: int
    space_id: RoomID
    author: UserID
    question: str
    options: list[str]
    max_selections: int
    announcements: bool  # posted in the announcement room (members vote there)
    state: str
    created_at: int
    ended_at: int  # 0 while open
    ended_by: str

    @classmethod
    def from_row(cls, row: Any) -> Poll:
        values = dict(row)
        values["options"] = json.loads(values["options"])
        values["announcements"] = bool(values["announcements"])
        return cls(**values)

    @property
    def is_open(self) -> bool:
        return self.state == PollState.OPEN


@dataclass(frozen=True)
class StoredVote:
    sender: UserID
    ts: int
    event_id: EventID
    answers: list[str] | None


class PollTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        space_id: RoomID,
        author: UserID,
        question: str,
        options: list[str],
        max_selections: int,
        announcements: bool,
        ts: int,
    ) -> int:
        poll_id = await self.db.fetchval(
            "INSERT INTO poll (space_id, author, question, options, max_selections,"
            " announcements, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            space_id,
            author,
            question,
            json.dumps(options, ensure_ascii=False),
            max_selections,
            int(announcements),
            ts,
        )
        return int(poll_id)

    async def get(self, poll_id: int) -> Poll | None:
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM poll WHERE id=$1", poll_id)
        return Poll.from_row(row) if row else None

    async def end(self, poll_id: int, ts: int, by: UserID) -> bool:
        """Close an open poll at `ts`; False when it was closed already (the first end counts)."""
        status = await self.db.execute(
            "UPDATE poll SET state='ended', ended_at=$2, ended_by=$3 WHERE id=$1 AND state='open'",
            poll_id,
            ts,
            by,
        )
        return _rowcount(status) > 0

    async def open_in_announcements(self, space_id: RoomID) -> int:
        """How many open polls the community has in its announcement room."""
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM poll WHERE space_id=$1 AND announcements=1 AND state='open'",
            space_id,
        )
        return int(value or 0)

    async def open_polls(self, space_id: RoomID) -> list[Poll]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM poll WHERE space_id=$1 AND state='open' ORDER BY id",
            space_id,
        )
        return [Poll.from_row(r) for r in rows]

    async def posted(self, poll_id: int, room_id: RoomID, event_id: EventID) -> None:
        """Where the poll went (safe to repeat: a resumed post records the same event)."""
        await self.db.execute(
            "INSERT INTO poll_post (poll_id, room_id, event_id) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            poll_id,
            room_id,
            event_id,
        )

    async def posts(self, poll_id: int) -> dict[RoomID, EventID]:
        rows = await self.db.fetch(
            "SELECT room_id, event_id FROM poll_post WHERE poll_id=$1 ORDER BY room_id", poll_id
        )
        return {RoomID(r["room_id"]): EventID(r["event_id"]) for r in rows}

    async def by_event(self, room_id: RoomID, event_id: str) -> Poll | None:
        """The poll whose start event in `room_id` is `event_id`."""
        row = await self.db.fetchrow(
            f"SELECT {', '.join('poll.' + c.strip() for c in _COLUMNS.split(','))} FROM poll"
            " JOIN poll_post ON poll.id = poll_post.poll_id"
            " WHERE poll_post.room_id=$1 AND poll_post.event_id=$2",
            room_id,
            event_id,
        )
        return Poll.from_row(row) if row else None

    async def vote(
        self,
        poll_id: int,
        event_id: EventID,
        room_id: RoomID,
        sender: UserID,
        ts: int,
        answers: list[str] | None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO poll_vote (poll_id, event_id, room_id, sender, ts, answers)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            poll_id,
            event_id,
            room_id,
            sender,
            ts,
            None if answers is None else json.dumps(answers, ensure_ascii=False),
        )

    async def votes(self, poll_id: int) -> list[StoredVote]:
        rows = await self.db.fetch(
            "SELECT sender, ts, event_id, answers FROM poll_vote WHERE poll_id=$1", poll_id
        )
        return [
            StoredVote(
                UserID(r["sender"]),
                int(r["ts"]),
                EventID(r["event_id"]),
                None if r["answers"] is None else json.loads(r["answers"]),
            )
            for r in rows
        ]
