"""Members' device keys fetched as they join or are invited, before the bot speaks to them.

When someone joins (or is invited to) an encrypted room the bot is in, their devices are
queried in the background, a burst of joins in a few requests, one at a time: the bot's
next message there (the room's first, or the first after a rotation) then finds them stored
instead of asking the homeserver while everyone waits for it. Element does the same as
members come. The send stays the guarantee: users still waiting are taken over by a send
that needs them, and a query that failed leaves its users to the next send's own.

One user is never queried twice at once (two first-seen writes of one user would collide):
whoever needs a user whose query is under way waits for that query's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from mautrix.types import DeviceID, DeviceIdentity, UserID

from ..tasks import Tasks

log = logging.getLogger("communities.crypto.tracker")

# Joins arriving within this many seconds of the first are queried together.
GATHER_SECONDS = 0.2
# Users per background request (one request at a time: the background never crowds out
# what the bot is doing meanwhile).
BATCH_USERS = 100

Found = dict[UserID, dict[DeviceID, DeviceIdentity]]
Query = Callable[[list[UserID]], Awaitable[Found]]
Known = Callable[[list[UserID]], Awaitable[list[UserID]]]


class Tracker:
    """`query` asks the homeserver for users never seen and stores what it answers; `known`
    picks, of some users, those whose devices are stored."""

    def __init__(self, query: Query, known: Known) -> None:
        self._query = query
        self._known = known
        self._waiting: dict[UserID, None] = {}  # in order of arrival
        self._flights: dict[UserID, asyncio.Future[Found | None]] = {}
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._tasks = Tasks()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._tasks.spawn("device keys ahead", self._run())

    async def stop(self) -> None:
        await self._tasks.stop()

    def want(self, users: Iterable[UserID]) -> None:
        """Query these users' devices soon, unless they are stored by then."""
        for user in users:
            self._waiting[user] = None
        if self._waiting:
            self._settled.clear()
            self._wake.set()

    async def settled(self) -> None:
        """Until no user waits and no background query is under way."""
        await self._settled.wait()

    async def fetch(self, users: Sequence[UserID]) -> Found:
        """The devices of `users` (none of them stored), asked of the homeserver now; a
        user whose query is under way is waited for, and asked again if it failed."""
        others = {u: self._flights[u] for u in users if u in self._flights}
        mine = [u for u in dict.fromkeys(users) if u not in others]
        found: Found = {}
        if mine:
            flight: asyncio.Future[Found | None] = asyncio.get_running_loop().create_future()
            for user in mine:
                self._waiting.pop(user, None)
                self._flights[user] = flight
            answer: Found | None = None
            try:
                answer = await self._query(mine)
                found.update(answer)
            finally:
                for user in mine:
                    del self._flights[user]
                flight.set_result(answer)
        again: list[UserID] = []
        for user, other in others.items():
            answered = await asyncio.shield(other)
            if answered is None:
                again.append(user)
            elif user in answered:
                found[user] = answered[user]
        if again:
            found.update(await self.fetch(again))
        return found

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()
            while self._waiting:
                batch = list(self._waiting)[:BATCH_USERS]
                for user in batch:
                    del self._waiting[user]
                try:
                    stored = set(await self._known(batch))
                    wanted = [u for u in batch if u not in stored and u not in self._flights]
                    if wanted:
                        await self.fetch(wanted)
                except Exception as e:  # the next send to these users asks itself
                    log.info("devices of %d members not fetched ahead: %s", len(batch), e)
            if not self._wake.is_set():
                self._settled.set()
