"""The one owner of background tasks, and bounded concurrency for bulk calls.

Each background task is kept until it ends, isolated, and cancelled (and awaited) when the
service stops.

A task that raises is logged with a reference number (the error boundary, `errors.isolated`)
and never takes anything else down. Nothing in the package calls `asyncio.create_task`
outside this module.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

from .errors import isolated

log = logging.getLogger("communities.tasks")
T = TypeVar("T")
# Bulk Matrix calls (one per room, one per member) run at most this many at a time.
CONCURRENCY = 8


class Tasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped = False

    def spawn(self, name: str, work: Coroutine[Any, Any, object]) -> asyncio.Task[None] | None:
        """Run `work` in the background; `name` says what it is in the log. Once the service
        is stopping, nothing new starts (`work` is dropped; None)."""
        if self.stopped:
            work.close()
            log.debug("not starting %s: stopping", name)
            return None

        async def guarded() -> None:
            with isolated(log, "background task %s failed", name):
                await work

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            work.close()  # a task cancelled before it started never ran `work`: close it

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(done)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        """Cancel every task and wait until all have ended."""
        self.stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def in_turn(run: Coroutine[Any, Any, T], call: Awaitable[object]) -> asyncio.Future[T]:
    """`run`, which awaits `call` once its turn comes, as a task. However the task ends
    (cancelled while `call` waited for its turn, or before its first step), `call` is closed
    with it: a coroutine never started would otherwise be reported as never awaited."""
    task = asyncio.ensure_future(run)
    if inspect.iscoroutine(call):
        task.add_done_callback(lambda _: call.close())  # a no-op once it has ended
    return task


def soon(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """`work` as a task of its own, for its caller to await (or cancel): closed with it."""
    return in_turn(work, work)


async def bounded(calls: Iterable[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """Await every call, at most `limit` at once; the results in order.

    The first failure propagates, once every other call has been cancelled and has ended: an
    operation that fails (and may be undone) leaves nothing running behind its back."""
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    tasks = [in_turn(run(c), c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
