"""Who a room's new Megolm session goes to: its joined and invited members.

A room's first new session in this process asks the homeserver (`GET /members`: also the
members who joined before the bot) and records the answer in the state store; the member
events keep it from then on, so later sessions (a new one after every departure, in a room
of thousands) go to the stored list without asking again. A list is not kept if a member
event came while it was fetched and recorded (the copy may be older than that event), nor
once the bot itself is out of the room (what comes meanwhile does not reach it).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import cast

import asyncpg  # type: ignore[import-untyped]
from mautrix.client.state_store.asyncpg import PgStateStore
from mautrix.types import (
    Member,
    Membership,
    MemberStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)

log = logging.getLogger("communities.crypto.members")

WRITE_ATTEMPTS = 5


class MemberLists:
    def __init__(self, state: PgStateStore, bot: UserID) -> None:
        self.state = state
        self.bot = bot
        self._kept: set[RoomID] = set()
        self._events: Counter[RoomID] = Counter()

    def seen(self, event: StateEvent) -> None:
        """A member event, recorded in the state store."""
        self._events[event.room_id] += 1
        now = cast(MemberStateEventContent, event.content).membership
        if event.state_key == self.bot and now != Membership.JOIN:
            self._kept.discard(event.room_id)

    async def of(
        self, room: RoomID, fetch: Callable[[], Awaitable[dict[UserID, str]]]
    ) -> list[UserID]:
        """The room's joined and invited members; `fetch` asks the homeserver (user id →
        membership)."""
        if room in self._kept:
            return await self.state.get_members(room, (Membership.JOIN, Membership.INVITE))
        before = self._events[room]
        targets = await fetch()
        await self.record(room, {u: Member(membership=Membership(m)) for u, m in targets.items()})
        if self._events[room] == before:
            self._kept.add(room)
        return list(targets)

    async def record(self, room: RoomID, members: dict[UserID, Member]) -> None:
        """The state store's member list of the room replaced by `members`. The store
        deletes and then copies the rows; a member event recorded in between (the router's
        `track_state`, at the same moment) makes the copy collide with it: tried again."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await self.state.set_members(room, dict(members))
                return
            except (asyncpg.UniqueViolationError, sqlite3.IntegrityError):
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                log.info("member list of %s written meanwhile; writing it again", room)
                await asyncio.sleep(0.05 * (attempt + 1))
