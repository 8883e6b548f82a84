"""Multi-step work that survives a crash: recorded before it starts, finished after a restart.

An operation (create a community, adopt a group, promote an admin across every room, remove a
member from every room) is a plain async function of the service and a `Run`, registered
under a kind with `@operation(name, ParamsClass)`: its parameters are a frozen dataclass
(`Params`), read back typed after a restart. It is written to the database with its
parameters before its first step, and re-executed from the top whenever it is resumed:
`run.step(key, fn)` calls `fn` only when the step has no saved result, and saves the result
the moment `fn` returns. So a resumed run gets the same answers back (the same room ids) and
does only what is left.

A step that creates a room is made safe against a crash by a tag alias (`core.run`).

What happens when a step fails:
- the homeserver is unreachable or answers 5xx / 429 (after the gateway's own retries): the
  operation stays `running`, and is tried again with backoff until it completes; the person
  who asked gets a notice now and another when it is done;
- the homeserver refuses (4xx) or a rule refuses: the operation's `undo` removes what it made,
  the operation ends `undone`, and the refusal is the answer.

An operation resumed after a restart or an outage reports its end where it was asked for and
in the community's admins room. Operations of one community run one at a time (`lock`), and
reconciliation leaves a community alone while one of its operations is unfinished.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from mautrix.types import EventID, RoomID, UserID

from .. import language
from ..db import Tables, now_ms
from ..db.operation import Operation
from ..errors import Conflict, Pending, Undone, UserError
from ..matrix.errors import brief, is_transient
from ..matrix.gateway import Gateway
from ..rules.model import Role
from ..tasks import Tasks
from .notices import notice, say, txn_key, verbatim
from .run import Naming, P, Params, Run

log = logging.getLogger("communities.operations")
T = TypeVar("T")


class OpState(enum.StrEnum):
    RUNNING = "running"
    UNDOING = "undoing"  # refused; its undo is under way (or will be, after a restart)
    DONE = "done"
    UNDONE = "undone"
    FAILED = "failed"  # could neither finish nor be undone


UNFINISHED = (OpState.RUNNING, OpState.UNDOING)
KEEP_FINISHED_DAYS = 30
RETRY_FIRST = 2.0  # seconds before the first retry of an operation the homeserver stalled
RETRY_MAX = 60.0
STALLED_AFTER = 3600.0  # seconds of failures before a stalled operation is a problem


def stalled_key(op_id: int) -> str:
    """The community problem of a stalled operation."""
    return f"operation {op_id}"


class Origin(NamedTuple):
    """Where an operation was asked for: the answer goes there."""

    room_id: RoomID | str = ""
    event_id: EventID | str = ""
    thread_root: EventID | str = ""


NOWHERE = Origin()


class AlreadyOver(Exception):
    """Another attempt finished the operation first, or is at it now."""

    def __init__(self, op_id: int) -> None:
        super().__init__(f"operation {op_id} is already over")


# An operation kind: `perform(context, run)` returns what to tell whoever asked;
# `undo(context, run, reason)` removes what it made. The context is the `Service`.
Perform = Callable[[Any, "Run[Any]"], Awaitable[str]]
Undo = Callable[[Any, "Run[Any]", str], Awaitable[str]]


@dataclass(frozen=True)
class Kind:
    name: str
    params: type[Params]
    perform: Perform
    undo: Undo | None


KINDS: dict[str, Kind] = {}


def operation(
    name: str, params: type[Params], *, undo: Undo | None = None
) -> Callable[[Perform], Perform]:
    """Register `perform` as the operation kind `name` taking `params`; `undo` removes what
    it made. Declared at import: `index.py` imports every feature before anything resumes."""

    def register(perform: Perform) -> Perform:
        if name in KINDS:
            raise ValueError(f"operation kind {name!r} registered twice")
        KINDS[name] = Kind(name, params, perform, undo)
        return perform

    return register


def kind_of(params: Params) -> Kind:
    """The one kind registered for this type of parameters."""
    found = [k for k in KINDS.values() if k.params is type(params)]
    if len(found) != 1:
        raise ValueError(f"{type(params).__name__}: {len(found)} operation kinds take it")
    return found[0]


class Operations:
    """Starts, resumes and retries operations; one at a time per community."""

    def __init__(self, tables: Tables, gateway: Gateway, tasks: Tasks, naming: Naming) -> None:
        self.db = tables
        self.gw = gateway
        self.tasks = tasks
        self.naming = naming
        # What operation kinds get as their first argument (the `Service`, set by it).
        self.context: Any = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._retrying: dict[int, asyncio.Task[None]] = {}
        self._attempting: set[int] = set()
        self._stopped = False

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def busy(self, space_id: RoomID) -> bool:
        return await self.db.operations.running_in(space_id) > 0

    async def run(
        self,
        params: P,
        actor: UserID,
        origin: Origin = NOWHERE,
        space_id: RoomID | str = "",
    ) -> Run[P]:
        """Record the operation of the kind that takes `params`, then execute it; see the
        module docstring for failures."""
        kind = kind_of(params).name
        op = await self.db.operations.add(kind, space_id, actor, params.to_json(), origin, now_ms())
        log.info("operation %d (%s) by %s started", op.id, kind, actor)
        try:
            return await self._attempt(op, resumed=False)
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("operation %d (%s) stalled: %s; will retry", op.id, kind, brief(e))
            self._retry_later(op.id)
            raise Pending(
                "The homeserver is not answering right now. I will finish this as soon as it "
                "is back and tell you here."
            ) from None

    async def start_recorded(self, op: Operation) -> None:
        """Execute an operation that was recorded elsewhere (the scheduler records it with
        its claim, in one transaction); an outage leaves it to the retries."""
        try:
            await self._attempt(op, resumed=False)
        except AlreadyOver:
            pass
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("operation %d (%s) stalled: %s; will retry", op.id, op.kind, brief(e))
            self._retry_later(op.id)

    async def resume(self) -> None:
        """After a start: carry on with every operation a previous run left unfinished, and
        forget finished ones older than `KEEP_FINISHED_DAYS`."""
        cutoff = now_ms() - KEEP_FINISHED_DAYS * 24 * 3600 * 1000
        pruned = await self.db.operations.prune(cutoff)
        if pruned:
            log.info("forgot %d finished operations", pruned)
        for op in await self.db.operations.running():
            log.info("operation %d (%s) was interrupted; resuming", op.id, op.kind)
            self._retry_later(op.id, delay=0)

    def _retry_later(self, op_id: int, delay: float | None = None) -> None:
        if op_id in self._retrying or self._stopped:
            return
        first = RETRY_FIRST if delay is None else delay
        task = self.tasks.spawn(f"operation {op_id}", self._keep_trying(op_id, first))
        if task is not None:
            self._retrying[op_id] = task

    async def _keep_trying(self, op_id: int, delay: float) -> None:
        """Attempt the operation until it is over (done, undone or failed): whatever else
        goes wrong, an operation is never left `running` with nobody trying it. One still
        stalled after `STALLED_AFTER` seconds becomes a problem of its community (`info`,
        the admins room), until it is over or an admin cancels it."""
        since = time.monotonic()
        op: Operation | None = None
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    op = await self.db.operations.get(op_id)
                    if op is None or op.state not in UNFINISHED:
                        break
                    spoken = ""  # the operator's language, or the operation's community's
                    if (context := self.context) is not None:
                        spoken = context.default_language
                        if op.space_id:
                            spoken = await context.language_of(op.space_id)
                    with language.speaking(spoken):
                        await self._attempt(op, resumed=True)
                except AlreadyOver:
                    break
                except Exception as e:
                    if is_transient(e):
                        log.warning("operation %d still stalled: %s", op_id, brief(e))
                        if op is not None and time.monotonic() - since > STALLED_AFTER:
                            await self._stalled(op)
                    elif not isinstance(e, UserError):
                        log.exception("operation %d: attempt failed", op_id)
                delay = min(max(delay, RETRY_FIRST) * 2, RETRY_MAX)
            if op is not None and op.space_id:  # over: no longer a problem
                await self.db.problems.delete(op.space_id, stalled_key(op.id))
        finally:
            if self._retrying.get(op_id) is asyncio.current_task():
                del self._retrying[op_id]

    async def _stalled(self, op: Operation) -> None:
        """Tell the admins, once, that an operation cannot finish (the homeserver keeps
        failing) and how to cancel it."""
        if not op.space_id:
            return
        known = await self.db.problems.of(op.space_id)
        if stalled_key(op.id) in known:
            return
        text = say(
            "The {} started by {} has not been able to finish for a while (the homeserver "
            "keeps failing); it is still being tried. `operations cancel #{}` undoes it.",
            op.kind,
            op.actor,
            op.id,
        ).plain
        await self.db.problems.put(op.space_id, stalled_key(op.id), text, now_ms())
        log.error("operation %d (%s) stalled for good; reported", op.id, op.kind)
        await self._report(op, text)

    async def cancel(self, op_id: int, actor: UserID) -> str:
        """Stop an unfinished operation: undone when its kind can undo (what it made is
        removed), else given up (reconciliation then brings the rooms in line with the
        records). What to tell the admin."""
        op = await self.db.operations.get(op_id)
        if op is None or op.state not in UNFINISHED:
            raise Conflict("Operation #{} is not running.", op_id)
        kind = KINDS.get(op.kind)
        reason = say("cancelled by {}", actor).plain
        task = self._retrying.pop(op.id, None)
        if task is not None:  # stopped first: it could record the problem again
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if op.space_id:
            await self.db.problems.delete(op.space_id, stalled_key(op.id))
        if kind is None or kind.undo is None:
            await self.db.operations.finish(op.id, OpState.FAILED, reason, now_ms())
            log.info("operation %d (%s) %s", op.id, op.kind, reason)
            return say(
                "Stopped operation #{} ({}); it will not be tried again.", op.id, op.kind
            ).plain
        if op.state == OpState.RUNNING:
            await self.db.operations.finish(op.id, OpState.UNDOING, reason, now_ms())
        self._retry_later(op.id, delay=0)
        return say("Undoing operation #{} ({}).", op.id, op.kind).plain

    async def _attempt(self, op: Operation, *, resumed: bool) -> Run[Any]:
        table = self.db.operations
        kind = KINDS.get(op.kind)
        if kind is None:  # recorded by a version of the service that knew this kind
            await table.finish(op.id, OpState.FAILED, f"unknown kind {op.kind}", now_ms())
            raise ValueError(f"operation {op.id}: unknown kind {op.kind!r}")
        # One operation of a community at a time; what earlier attempts did is read once
        # the lock is held.
        if op.id in self._attempting:  # one attempt of an operation at a time
            raise AlreadyOver(op.id)
        self._attempting.add(op.id)
        # A community that does not exist yet has nobody else to wait for.
        key = op.space_id or f"new community {op.id}"
        try:
            return await self._locked_attempt(kind, op, key, resumed)
        finally:
            self._attempting.discard(op.id)
            if not op.space_id:
                self._locks.pop(key, None)

    async def _locked_attempt(self, kind: Kind, op: Operation, key: str, resumed: bool) -> Run[Any]:
        table = self.db.operations
        async with self.lock(key):
            fresh = await table.get(op.id)
            if fresh is None or fresh.state not in UNFINISHED:
                raise AlreadyOver(op.id)
            op = fresh
            await table.attempt(op.id, now_ms())
            params = kind.params.from_json(op.params)
            run: Run[Any] = Run(self.db, self.gw, self.naming, op, params, await table.steps(op.id))
            if op.state == OpState.UNDOING:
                reason = op.outcome or "it was refused"
            else:
                try:
                    outcome = await kind.perform(self.context, run)
                except Exception as e:
                    if is_transient(e):
                        raise
                    reason = (e.message if isinstance(e, UserError) else brief(e)).rstrip(".")
                    if kind.undo is None:
                        await self._fail(
                            op, reason, resumed, say("Could not finish: {}.", reason).plain
                        )
                        raise
                    log.warning("operation %d (%s) refused: %s; undoing", op.id, op.kind, reason)
                    await table.finish(op.id, OpState.UNDOING, reason, now_ms())
                else:
                    await table.finish(op.id, OpState.DONE, outcome, now_ms())
                    log.info("operation %d (%s) done", op.id, op.kind)
                    if resumed:
                        await self._report(op, f"Finished after an interruption: {outcome}")
                    return run
            assert kind.undo is not None
            try:
                text = await kind.undo(self.context, run, reason)
            except Exception as e:
                if not is_transient(e):
                    await self._fail(
                        op,
                        f"{reason}; undoing it failed too ({brief(e)})",
                        True,
                        say(
                            "Could not finish, nor undo all of it: {}. An admin should check "
                            "the community (`info`).",
                            reason,
                        ).plain,
                    )
                raise
            await table.finish(op.id, OpState.UNDONE, text, now_ms())
            log.info("operation %d (%s) undone", op.id, op.kind)
            if resumed:
                await self._report(op, text)
            raise Undone(text)

    async def _fail(self, op: Operation, reason: str, report: bool, text: str) -> None:
        """An operation that can neither finish nor be undone: over, logged, reported."""
        log.error("operation %d (%s) failed: %s", op.id, op.kind, reason)
        await self.db.operations.finish(op.id, OpState.FAILED, reason, now_ms())
        if report:
            await self._report(op, text)

    async def _report(self, op: Operation, text: str) -> None:
        """Tell the person who asked (where they asked) and the community's admins room."""
        said = verbatim(text)
        targets: list[tuple[RoomID, dict[str, Any]]] = []
        if op.room_id:
            asked = notice(said, reply_to=op.event_id, thread_root=op.thread_root or None)
            targets.append((op.room_id, asked))
        admins = await self.db.rooms.of_community(op.space_id, Role.ADMINS) if op.space_id else []
        if admins and admins[0].room_id != op.room_id:
            targets.append((admins[0].room_id, notice(said)))
        for room_id, content in targets:
            try:
                txn_id = txn_key("report", str(op.id), room_id)  # once, even if resent
                await self.gw.send_message(room_id, "m.room.message", content, txn_id)
            except Exception as e:  # a report that cannot be sent must not undo the work
                log.warning("operation %d: could not report in %s: %s", op.id, room_id, brief(e))

    async def stop(self) -> None:
        self._stopped = True
        tasks = list(self._retrying.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
