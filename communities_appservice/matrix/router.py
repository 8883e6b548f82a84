"""Transactions in, handlers out: each event handled once, in order per room, in isolation.

The HTTP server hands every transaction to `Router.accept`, which writes its events to the
inbox before the homeserver gets its 200. A worker per room then handles them in arrival
order; rooms proceed in parallel. Within a room, membership events of different users are
handled side by side, up to `LANES` at a time (`lanes.py`): a user's changes keep their
order, and any other event waits for those before it and holds back those after it. Before
an event's side effects run, its id is claimed in the database, so the same event delivered
again (in a new transaction, or after a restart) does nothing. One event that fails is
logged with a reference number and never blocks the rest.

An event still in the inbox at start-up whose id is already claimed was being handled when
the previous run died: it is not run again (its side effects may be half done), but handed
to `interrupted`, which tells the person who sent it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from ..db import Tables, now_ms
from ..db.inbox import InboxItem
from ..errors import isolated
from ..tasks import Tasks
from .errors import brief, is_transient
from .lanes import Lanes, member_of

log = logging.getLogger("communities.router")
T = TypeVar("T")
# Set while the router retries an event: listeners that already did their part are skipped.
RETRYING: ContextVar[bool] = ContextVar("communities_retrying", default=False)
RETRY_FIRST = 1.0  # seconds before the first retry of an event that failed transiently
RETRY_MAX = 60.0
RETRY_FOR = 3600.0  # an event still failing after an hour is logged and given up
# Events handled at the same time, in all rooms; the others wait their turn (in order).
ROOM_WORKERS = 64
PAGE = 100  # inbox rows a room's worker reads at once
# Membership events of different users in one room handled at the same time.
LANES = 8
KEEP_DELIVERIES_DAYS = 30
DAY_MS = 24 * 3600 * 1000
Handler = Callable[[dict[str, Any]], Awaitable[None]]
# Given a transaction's new events and its ephemeral events, inside the database transaction
# that stores them: what is only counted (stats), never anything with side effects.
Counter = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Awaitable[None]]


class Router:
    def __init__(
        self,
        tables: Tables,
        handler: Handler,
        interrupted: Handler | None = None,
        tasks: Tasks | None = None,
        gave_up: Callable[[dict[str, Any], str], Awaitable[None]] | None = None,
    ) -> None:
        self.db = tables
        self.tasks = tasks if tasks is not None else Tasks()
        self.handler = handler
        self.interrupted = interrupted
        self.gave_up = gave_up  # told of an event given up, with its log's reference
        self._resumed_upto = 0  # inbox rows up to this seq were left by a previous run
        self._more: set[str] = set()  # rooms whose worker must look at the inbox again
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._arrived: dict[str, asyncio.Event] = {}  # set when a busy room has new rows
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(ROOM_WORKERS)
        self.counter: Counter | None = None

    async def seen(self, txn_id: str, digest: str) -> bool:
        return await self.db.inbox.seen(txn_id, digest)

    async def accept(
        self,
        txn_id: str,
        events: list[dict[str, Any]],
        digest: str,
        ephemeral: list[dict[str, Any]] | None = None,
    ) -> None:
        counter = self.counter

        async def count(items: list[InboxItem]) -> None:
            assert counter is not None
            await counter([i.event for i in items if i.new], ephemeral or [])

        also = count if counter is not None else None
        items = await self.db.inbox.accept(txn_id, events, now_ms(), digest, also=also)
        log.debug("transaction %s: %d events, %d new", txn_id, len(events), len(items))
        self.wake(item.room_id for item in items)

    async def forget_old(self, now: int | None = None) -> tuple[int, int]:
        """Forget claimed events and transaction ids older than `KEEP_DELIVERIES_DAYS`: a
        homeserver retries for minutes or hours, never for a month."""
        cutoff = (now or now_ms()) - KEEP_DELIVERIES_DAYS * DAY_MS
        events = await self.db.dedupe.prune(cutoff)
        transactions = await self.db.inbox.prune_transactions(cutoff)
        if events or transactions:
            log.info("forgot %d handled events and %d transactions", events, transactions)
        return events, transactions

    async def _forget_daily(self) -> None:
        while True:
            await asyncio.sleep(DAY_MS / 1000)
            with isolated(log, "forgetting old deliveries failed"):
                await self.forget_old()

    async def resume(self) -> None:
        """Forget old deliveries (before anything is handled, so that no claim goes while an
        event it guards is on its way out of the inbox), handle what a previous run accepted
        but did not finish, and from now on forget old deliveries once a day."""
        with isolated(log, "forgetting old deliveries failed"):
            await self.forget_old()
        self.tasks.spawn("forgetting old deliveries", self._forget_daily())
        self._resumed_upto = await self.db.inbox.last_seq()
        rooms = await self.db.inbox.rooms()
        if rooms:
            log.info("resuming the inbox of %d rooms", len(rooms))
        self.wake(rooms)

    def wake(self, room_ids: Iterable[str]) -> None:
        """These rooms have new rows in the inbox: each gets its worker (one per room)."""
        for room_id in room_ids:
            if room_id in self._workers:
                self._more.add(room_id)
                self._arrived[room_id].set()
                continue
            self._idle.clear()
            self._arrived[room_id] = asyncio.Event()
            worker = self.tasks.spawn(f"events of {room_id}", self._drain(room_id))
            if worker is not None:  # else stopping: the rows stay in the inbox for next time
                self._workers[room_id] = worker
            else:
                del self._arrived[room_id]
        if not self._workers:
            self._idle.set()

    async def _drain(self, room_id: str) -> None:
        """The room's rows in order, a page at a time, until the inbox has none left. A
        handled row is deleted; rows still in flight in a lane are not read again (`after`)."""
        lanes = Lanes(LANES)
        arrived = self._arrived[room_id]
        after = 0
        try:
            while True:
                self._more.discard(room_id)
                page = await self._durably(
                    "reading the inbox",
                    functools.partial(self.db.inbox.of_room, room_id, PAGE, after),
                )
                if not page:
                    if room_id in self._more:
                        continue  # rows arrived while the page was read
                    if not lanes:
                        return
                    arrived.clear()
                    await lanes.one_or(arrived)
                    continue
                for item in page:
                    after = item.seq
                    user = member_of(item.event)
                    if user is not None:
                        await lanes.start(user, self._in_slot(item))
                    else:
                        await lanes.settle()
                        await self._in_slot(item)
        finally:
            await lanes.cancel()
            self._more.discard(room_id)
            del self._workers[room_id], self._arrived[room_id]
            if not self._workers:
                self._idle.set()

    async def _in_slot(self, item: InboxItem) -> None:
        async with self._slots:  # at most ROOM_WORKERS events at a time
            await self._handle(item)

    async def _handle(self, item: InboxItem) -> None:
        event_id = str(item.event.get("event_id"))
        left_by_a_crash = item.seq <= self._resumed_upto
        if item.retrying or await self._first(item, event_id, left_by_a_crash):
            await self._retry(item, event_id, first_delay=0 if item.retrying else RETRY_FIRST)
        await self._durably("forgetting a handled event", lambda: self.db.inbox.done(item.seq))

    async def _first(self, item: InboxItem, event_id: str, left_by_a_crash: bool) -> bool:
        """The first attempt; True when it failed for a transient reason (try again)."""
        claimed = await self._durably(
            "claiming an event", lambda: self.db.dedupe.claim_event(event_id, now_ms())
        )
        with isolated(log, "event %s in %s failed", event_id, item.room_id) as failure:
            try:
                if claimed:
                    log.debug(
                        "handling %s %s in %s", item.event.get("type"), event_id, item.room_id
                    )
                    await self.handler(item.event)
                elif left_by_a_crash and self.interrupted is not None:
                    log.info("%s was being handled when the service stopped", event_id)
                    await self.interrupted(item.event)
            except Exception as e:
                if not (claimed and is_transient(e)):
                    raise
                log.warning("event %s in %s: %s; will retry", event_id, item.room_id, brief(e))
                return True
        if failure.ref:
            await self._gave_up(item, failure.ref)
        return False

    async def _retry(self, item: InboxItem, event_id: str, first_delay: float) -> None:
        """Try the event again with backoff, in its place in the room's order, until it is
        handled, fails for good, or `RETRY_FOR` has passed (then it is logged with a
        reference). The inbox row says so, so a restart goes on retrying it."""
        await self._durably(
            "marking an event for retry", lambda: self.db.inbox.set_retrying(item.seq)
        )
        deadline = time.monotonic() + RETRY_FOR
        delay = first_delay
        token = RETRYING.set(True)
        try:
            while True:
                await asyncio.sleep(delay)
                with isolated(log, "event %s in %s failed", event_id, item.room_id) as failure:
                    try:
                        await self.handler(item.event)
                        return
                    except Exception as e:
                        if not is_transient(e) or time.monotonic() > deadline:
                            raise
                        log.warning("event %s still failing: %s", event_id, brief(e))
                if failure.ref:
                    await self._gave_up(item, failure.ref)
                    return
                delay = min(max(delay, RETRY_FIRST) * 2, RETRY_MAX)
        finally:
            RETRYING.reset(token)

    async def _gave_up(self, item: InboxItem, ref: str) -> None:
        if self.gave_up is not None:
            with isolated(log, "reporting event %s given up failed", item.event.get("event_id")):
                await self.gave_up(item.event, ref)

    async def _durably(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A call to the database that must not be dropped: retried while it fails for a
        transient reason (a locked or unreachable database), so a room's queue goes on."""
        delay = RETRY_FIRST
        while True:
            try:
                return await call()
            except Exception as e:
                if not is_transient(e):
                    raise
                log.warning("%s failed (%s); trying again", what, brief(e))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def stop(self) -> None:
        """Cancel the workers; what they had not finished stays in the inbox for next time."""
        await self.tasks.stop()
