"""A room's membership events in flight together, one per user.

Membership events of different users in one room are independent of one another: a burst of
joins to a space need not wait, join after join, for each one's invitations. A room's worker
starts each in a lane of its own, at most `most` at once; a user's next change waits for
their previous one, and any other event waits until every lane is free (`settle`), so it
sees what came before it and holds back what comes after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ..tasks import soon

log = logging.getLogger("communities.router")


def member_of(event: dict[str, Any]) -> str | None:
    """The user a membership event is about; None for every other event."""
    key = event.get("state_key")
    if event.get("type") != "m.room.member" or not isinstance(key, str) or not key:
        return None
    return key


class Lanes:
    def __init__(self, most: int) -> None:
        self.most = most
        self._flying: dict[str, asyncio.Future[None]] = {}

    def __bool__(self) -> bool:
        return bool(self._flying)

    async def start(self, user: str, work: Coroutine[Any, Any, None]) -> None:
        """Start `work` (a change of `user`'s) once their previous change has ended and a lane
        is free; a lane's failure is raised here, or by `settle`."""
        try:
            if user in self._flying:
                await asyncio.wait([self._flying[user]])
            self._ended()
            while len(self._flying) >= self.most:
                await asyncio.wait(self._flying.values(), return_when=asyncio.FIRST_COMPLETED)
                self._ended()
        except BaseException:
            work.close()
            raise
        self._flying[user] = soon(work)

    async def settle(self) -> None:
        """Wait until every lane is free."""
        if self._flying:
            await asyncio.wait(self._flying.values())
        self._ended()

    async def one_or(self, signal: asyncio.Event) -> None:
        """Wait until a lane is free or `signal` is set."""
        waiting: asyncio.Future[Any] = soon(signal.wait())
        try:
            await asyncio.wait(
                [*self._flying.values(), waiting], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiting.cancel()
        self._ended()

    async def cancel(self) -> None:
        """Cancel every lane and wait for them (at once, never yielding, when none is left)."""
        if not self._flying:
            return
        for lane in self._flying.values():
            lane.cancel()
        await asyncio.gather(*self._flying.values(), return_exceptions=True)
        self._flying.clear()

    def _ended(self) -> None:
        """Forget the lanes that ended; the first failure among them is raised, the others
        logged."""
        ended = {user: lane for user, lane in self._flying.items() if lane.done()}
        for user in ended:
            del self._flying[user]
        failures = [
            failure
            for lane in ended.values()
            if not lane.cancelled() and (failure := lane.exception()) is not None
        ]
        for failure in failures[1:]:
            log.error("another membership event failed too", exc_info=failure)
        if failures:
            raise failures[0]
