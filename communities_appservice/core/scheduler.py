"""Timed jobs: one timer for all of them, armed at the earliest due time.

A job (`db.schedule`) belongs to a kind declared with `@job(kind)` (`core.hooks`): when it is
due the scheduler asks the kind's runner what to do, as an operation's parameters (a post,
a reminder's DM); then, in ONE database transaction, it records that operation and moves
the job to its next occurrence (or ends it); then it runs the operation. Hence exactly once:
- a crash before the commit leaves the job due: the next start fires it (late);
- a crash after it leaves the operation recorded and unfinished: the next start resumes it
  (`Operations.resume`), and a resumed post skips the rooms that have it and sends the others
  under transaction ids fixed per room and occurrence;
- two firings of one occurrence cannot both commit (the claim names the due time it moves).

No loop per job and no polling: the one timer sleeps until the earliest due time (at most
an hour, in case the clock jumps) and is woken when a job is added or cancelled. Jobs that
fell due while the service was down fire at start-up, once each; a recurring job's next
occurrence is the first one after now (missed occurrences are not all sent late).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import language
from ..db import now_ms
from ..db.schedule import Job
from ..errors import isolated
from ..matrix.errors import brief, is_transient
from ..rules.when import Every, next_occurrence, zone
from .hooks import HOOKS
from .operations import kind_of

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("communities.scheduler")
LATE_AFTER_MS = 10 * 60 * 1000  # a firing later than this is marked late
LONGEST_SLEEP = 3600.0  # seconds: the timer looks again at least this often
RETRY_AFTER = 5.0  # seconds before a job whose firing failed for a transient reason


def next_due(job: Job, now: int) -> int | None:
    """The next occurrence of a recurring job after `now` (UTC ms), in its wall-clock rule;
    None for a one-off job."""
    if not job.every:
        return None
    tz = zone(job.zone)
    anchor = datetime.fromisoformat(job.anchor).replace(tzinfo=tz)
    after = datetime.fromtimestamp(max(now, job.due_at) / 1000, UTC)
    return int(next_occurrence(anchor, Every(job.every), after).timestamp() * 1000)


class Scheduler:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._wake = asyncio.Event()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.svc.tasks.spawn("scheduler", self._timer())

    def wake(self) -> None:
        """Look at the jobs again now (one was added or cancelled)."""
        self._wake.set()

    async def _timer(self) -> None:
        while True:
            self._wake.clear()
            delay = RETRY_AFTER  # unless the tick says otherwise: a bug does not stop the timer
            with isolated(log, "the scheduler's tick failed"):
                delay = await self._tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _tick(self) -> float:
        """Fire what is due; how long to sleep until the next job."""
        failed = await self.fire_due()
        upcoming = await self._next_due()
        delay = LONGEST_SLEEP if upcoming is None else (upcoming - now_ms()) / 1000
        delay = max(0.0, min(delay, LONGEST_SLEEP))
        return max(delay, RETRY_AFTER) if failed else delay

    async def _next_due(self) -> int | None:
        try:
            return await self.svc.db.schedule.next_due()
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("scheduler: the database is not answering (%s)", brief(e))
            return now_ms() + int(RETRY_AFTER * 1000)

    async def fire_due(self) -> bool:
        """Fire every job that is due; whether one failed (and waits for a retry)."""
        failed = False
        try:
            due = await self.svc.db.schedule.due(now_ms())
        except Exception as e:
            if not is_transient(e):
                raise
            return True
        for job in due:
            with isolated(log, "scheduled job %d failed", job.id) as failure:
                try:
                    await self.fire(job)
                except Exception as e:
                    if not is_transient(e):
                        raise
                    log.warning("scheduled job %d: %s; trying again soon", job.id, brief(e))
                    failed = True
            if failure.ref:
                await self._give_up(job)
        return failed

    async def fire(self, job: Job) -> None:
        """One occurrence of `job`: claim it and record what it does in one transaction,
        then do it."""
        svc, now = self.svc, now_ms()
        runner = HOOKS.jobs.get(job.kind)
        if runner is None:
            log.error("scheduled job %d: unknown kind %r; ended", job.id, job.kind)
            await svc.db.schedule.advance(job, None)
            return
        late = now - job.due_at > LATE_AFTER_MS
        with language.speaking(await svc.language_of(job.space_id)):
            params = await runner(svc, job, late)
        following = next_due(job, now)
        async with svc.db.transaction():
            if not await svc.db.schedule.advance(job, following):
                return  # cancelled meanwhile, or fired by another attempt
            op = None
            if params is not None:
                kind = kind_of(params).name
                op = await svc.db.operations.add(
                    kind, job.space_id, job.author, params.to_json(), ("", "", ""), now
                )
        log.info("scheduled job %d fired%s", job.id, " late" if late else "")
        if op is not None:
            await svc.ops.start_recorded(op)

    async def _give_up(self, job: Job) -> None:
        """A job whose firing fails for a reason other than an outage is not tried again
        (it would fail at every tick): this occurrence is skipped."""
        with isolated(log, "scheduled job %d: could not skip it", job.id):
            await self.svc.db.schedule.advance(job, next_due(job, now_ms()))
