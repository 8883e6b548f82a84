"""Work for many devices cut into chunks, and run a few chunks at a time.

Requests to the homeserver go out at most PARALLEL_REQUESTS at a time, each given at most
REQUEST_TIMEOUT seconds; a job in parts (`in_parts`, the parts of one room key's share)
counts the requests of all its parts together, so that it never has more in flight than one
batch of requests would. Reads of many rows go in `IN (...)` lists of at most SQL_CHUNK
values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from mautrix.types import DeviceID, UserID
from mautrix.util.async_db import Scheme

from ..tasks import in_turn

log = logging.getLogger("communities.crypto.batches")

PARALLEL_REQUESTS = 4
# A job in parts (a room key's share) runs SHARE_PARTS parts at a time with at most
# SHARE_REQUESTS of their requests in flight together: measured (bench/README.md), fewer
# requests at once let the homeserver answer the first part sooner, so the bot's work on
# one part overlaps the homeserver's on the next instead of all parts moving in step.
SHARE_PARTS = 3
SHARE_REQUESTS = 2
# Seconds one request may take, waits for other servers included.
REQUEST_TIMEOUT = 60
# Identifiers per `IN (...)` list on SQLite.
SQL_CHUNK = 500
T = TypeVar("T")
# The gate of the requests of the job in progress (`in_parts`), shared by its parts.
_REQUESTS: ContextVar[asyncio.Semaphore | None] = ContextVar("requests", default=None)


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def bounded(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await `calls` (homeserver requests), at most PARALLEL_REQUESTS at a time (counted
    with the other requests of the job they are part of, inside `in_parts`), each for at
    most REQUEST_TIMEOUT seconds (a timeout is logged, and transient: the caller's work is
    tried again); the first failure is raised once all have finished (none is left running)."""
    gate = _REQUESTS.get() or asyncio.Semaphore(PARALLEL_REQUESTS)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            try:
                return await asyncio.wait_for(call, REQUEST_TIMEOUT)
            except TimeoutError:
                log.warning("a homeserver request took over %d s: given up", REQUEST_TIMEOUT)
                raise

    return await _every(in_turn(one(c), c) for c in calls)


async def in_parts(parts: Iterable[Awaitable[None]]) -> None:
    """Await the parts of one job, at most SHARE_PARTS at a time, the requests they make
    through `bounded` at most SHARE_REQUESTS (and never more than PARALLEL_REQUESTS) in
    flight together; the first failure is raised once all have finished."""
    token = _REQUESTS.set(asyncio.Semaphore(min(SHARE_REQUESTS, PARALLEL_REQUESTS)))
    try:
        gate = asyncio.Semaphore(SHARE_PARTS)

        async def one(part: Awaitable[None]) -> None:
            async with gate:
                await part

        await _every(in_turn(one(p), p) for p in parts)
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
