"""Tables `community_event` and `event_rsvp`: events with their card, and members' answers."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from mautrix.types import EventID, RoomID, UserID
from mautrix.util.async_db import Database

from .member import _rowcount

_COLUMNS = (
    "id, space_id, author, title, place, starts_at, ends_at, zone, reminders, state, room_id,"
    " card_id, created_at"
)


class EventState(enum.StrEnum):
    UPCOMING = "upcoming"
    CANCELLED = "cancelled"
    OVER = "over"


@dataclass
class CommunityEvent:
    id: int
    space_id: RoomID
    author: UserID
    title: str
    place: str
    starts_at: int
    ends_at: int
    zone: str
    reminders: list[int]  # seconds before the start
    state: str
    room_id: str  # where the card is ('' until posted)
    card_id: str
    created_at: int

    @classmethod
    def from_row(cls, row: Any) -> CommunityEvent:
        values = dict(row)
        values["reminders"] = json.loads(values["reminders"])
        return cls(**values)

    @property
    def upcoming(self) -> bool:
        return self.state == EventState.UPCOMING


class EventTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, e: CommunityEvent) -> int:
        event_id = await self.db.fetchval(
            "INSERT INTO community_event (space_id, author, title, place, starts_at, ends_at,"
            " zone, reminders, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " RETURNING id",
            e.space_id,
            e.author,
            e.title,
            e.place,
            e.starts_at,
            e.ends_at,
            e.zone,
            json.dumps(e.reminders),
            e.created_at,
        )
        return int(event_id)

    async def get(self, event_id: int) -> CommunityEvent | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM community_event WHERE id=$1", event_id
        )
        return CommunityEvent.from_row(row) if row else None

    async def upcoming(self, space_id: RoomID) -> list[CommunityEvent]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM community_event WHERE space_id=$1 AND state='upcoming'"
            " ORDER BY starts_at, id",
            space_id,
        )
        return [CommunityEvent.from_row(r) for r in rows]

    async def by_card(self, room_id: RoomID, card_id: str) -> CommunityEvent | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM community_event WHERE room_id=$1 AND card_id=$2",
            room_id,
            card_id,
        )
        return CommunityEvent.from_row(row) if row else None

    async def set_card(self, event_id: int, room_id: RoomID, card_id: EventID) -> None:
        await self.db.execute(
            "UPDATE community_event SET room_id=$2, card_id=$3 WHERE id=$1",
            event_id,
            room_id,
            card_id,
        )

    async def finish(self, event_id: int, state: EventState) -> bool:
        """An upcoming event becomes cancelled or over; False when it was not upcoming."""
        status = await self.db.execute(
            "UPDATE community_event SET state=$2 WHERE id=$1 AND state='upcoming'",
            event_id,
            state,
        )
        return _rowcount(status) > 0

    # --- answers --------------------------------------------------------------------------

    async def answer(
        self, event_id: int, user: UserID, answer: str, ts: int, reaction: str = ""
    ) -> None:
        await self.db.execute(
            "INSERT INTO event_rsvp (event_id, user_id, answer, ts, reaction)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id, user_id)"
            " DO UPDATE SET answer=excluded.answer, ts=excluded.ts, reaction=excluded.reaction",
            event_id,
            user,
            answer,
            ts,
            reaction,
        )

    async def withdraw_reaction(self, reaction: str) -> int | None:
        """The answer a reaction gave is withdrawn (the reaction was taken back); the event
        it was for, or None when that reaction is no longer anyone's answer."""
        event_id = await self.db.fetchval(
            "SELECT event_id FROM event_rsvp WHERE reaction=$1", reaction
        )
        if event_id is None:
            return None
        await self.db.execute("DELETE FROM event_rsvp WHERE reaction=$1", reaction)
        return int(event_id)

    async def answers(self, event_id: int) -> dict[UserID, str]:
        rows = await self.db.fetch(
            "SELECT user_id, answer FROM event_rsvp WHERE event_id=$1 ORDER BY user_id", event_id
        )
        return {UserID(r["user_id"]): str(r["answer"]) for r in rows}
