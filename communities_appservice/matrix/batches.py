"""Work for many devices cut into chunks, and run a few chunks at a time.

Requests to the homeserver go out at most PARALLEL_REQUESTS at a time, each given at most
REQUEST_TIMEOUT seconds; a job in parts (`in_parts`, the parts of one room key's share)
counts the requests of all its parts together, so that it never has more in flight than one
batch of requests would, and a request waiting for its turn goes before those of later
parts: the homeserver answers the parts in order and is never left idle while the bot works
on a part. Reads of many rows go in `IN (...)` lists of at most SQL_CHUNK values.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from mautrix.types import DeviceID, UserID
from mautrix.util.async_db import Scheme

from ..tasks import in_turn

log = logging.getLogger("communities.crypto.batches")

PARALLEL_REQUESTS = 4
# A job in parts (a room key's share) runs SHARE_PARTS parts at a time with at most
# SHARE_REQUESTS of their requests in flight together, earlier parts' first (the ranked
# gate): parts move one after the other, not in step, and more parts under way keep a
# request ready whenever one is answered. Measured (bench/README.md): with members' devices
# fetched as they join (claims and to-device sends left in a share), 4 requests in flight
# beat 2; Synapse, which waits on its database, left idle less.
SHARE_PARTS = 6
SHARE_REQUESTS = 4
# Seconds one request may take, waits for other servers included.
REQUEST_TIMEOUT = 60
# Identifiers per `IN (...)` list on SQLite.
SQL_CHUNK = 500
T = TypeVar("T")


class Gate:
    """At most `limit` holders at once; of those waiting, the lowest rank goes first, and
    among equal ranks the first to come."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @asynccontextmanager
    async def held(self, rank: int = 0) -> AsyncIterator[None]:
        if self._free > 0:  # never while someone waits: a release hands its place on
            self._free -= 1
        else:
            turn = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (rank, next(self._arrivals), turn))
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():  # its turn came as it was cancelled
                    self._release()
                raise  # a cancelled waiter is skipped when its rank comes up
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            turn = heapq.heappop(self._waiting)[2]
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


# The gate of the requests of the job in progress (`in_parts`), shared by its parts, and
# the rank of the part a request belongs to (its place in the job).
_REQUESTS: ContextVar[Gate | None] = ContextVar("requests", default=None)
_RANK: ContextVar[int] = ContextVar("rank", default=0)


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def bounded(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await `calls` (homeserver requests), at most PARALLEL_REQUESTS at a time (counted
    with the other requests of the job they are part of, inside `in_parts`), each for at
    most REQUEST_TIMEOUT seconds (a timeout is logged, and transient: the caller's work is
    tried again); the first failure is raised once all have finished (none is left running)."""
    gate = _REQUESTS.get() or Gate(PARALLEL_REQUESTS)
    rank = _RANK.get()

    async def one(call: Awaitable[T]) -> T:
        async with gate.held(rank):
            try:
                return await asyncio.wait_for(call, REQUEST_TIMEOUT)
            except TimeoutError:
                log.warning("a homeserver request took over %d s: given up", REQUEST_TIMEOUT)
                raise

    return await _every(in_turn(one(c), c) for c in calls)


async def in_parts(parts: Iterable[Awaitable[None]]) -> None:
    """Await the parts of one job, at most SHARE_PARTS at a time, the requests they make
    through `bounded` at most SHARE_REQUESTS (and never more than PARALLEL_REQUESTS) in
    flight together, a waiting request of an earlier part before those of later ones; the
    first failure is raised once all have finished."""
    token = _REQUESTS.set(Gate(min(SHARE_REQUESTS, PARALLEL_REQUESTS)))
    try:
        gate = asyncio.Semaphore(SHARE_PARTS)

        async def one(rank: int, part: Awaitable[None]) -> None:
            async with gate:
                _RANK.set(rank)  # this part's task's own context
                await part

        await _every(in_turn(one(n, p), p) for n, p in enumerate(parts))
    finally:
        _REQUESTS.reset(token)


async def _every(calls: Iterable[Awaitable[T]]) -> list[T]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def split_messages(
    messages: dict[UserID, dict[DeviceID, Any]], size: int
) -> list[dict[UserID, dict[DeviceID, Any]]]:
    """To-device messages cut into requests of at most `size` messages each."""
    parts: list[dict[UserID, dict[DeviceID, Any]]] = []
    count = size
    for user_id, devices in messages.items():
        for device_id, content in devices.items():
            if count == size:
                parts.append({})
                count = 0
            parts[-1].setdefault(user_id, {})[device_id] = content
            count += 1
    return parts


def in_list(scheme: Scheme, values: Sequence[str], first: int) -> tuple[str, list[Any]]:
    """`IN (...)` for `values`, numbered from parameter `first`: an array on PostgreSQL."""
    if scheme in (Scheme.POSTGRES, Scheme.COCKROACH):
        return f"= ANY(${first})", [list(values)]
    marks = ",".join(f"${first + i}" for i in range(len(values)))
    return f"IN ({marks})", list(values)
