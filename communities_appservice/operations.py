"""Multi-step work that survives a crash: recorded before it starts, finished after a restart.

An operation (create a community, adopt a group, promote an admin across every room, remove a
member from every room) is a plain async function of a `Run`, registered under a kind with
`@operation`. It is written to the database with its parameters before its first step, and
re-executed from the top whenever it is resumed: `run.step(key, fn)` calls `fn` only when the
step has no saved result, and saves the result the moment `fn` returns. So a resumed run gets
the same answers back (the same room ids) and does only what is left.

Creating a room is the one step a plain retry would repeat (a crash between the homeserver's
answer and our save would leave an orphan room). `Run.create_room` therefore tags each new
room with an alias named after the operation and the step, in the service's exclusive alias
namespace; a resumed step finds the room through the alias instead of making a second one.
The aliases are removed when the operation is over.

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
import html
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from mautrix.errors import MatrixConnectionError

from .db import now_ms
from .db.community import Community
from .db.operation import Operation
from .errors import Conflict, UserError
from .matrix.gateway import MatrixError

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("communities.operations")
T = TypeVar("T")

UNFINISHED = ("running", "undoing")
# How long to wait for a room an interrupted `createRoom` is still making (about 10 s).
SETTLE_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.5, 3.0, 4.0)
KEEP_FINISHED_DAYS = 30
RETRY_FIRST = 2.0  # seconds before the first retry of an operation the homeserver stalled
RETRY_MAX = 60.0
TAG_PREFIX = "op"  # temporary room aliases: #<alias_prefix>op<id>_<step>:<domain>


class Origin(NamedTuple):
    """Where an operation was asked for: the answer goes there."""

    room_id: str = ""
    event_id: str = ""
    thread_root: str = ""


NOWHERE = Origin()


class Pending(UserError):
    """The homeserver is not answering; the operation will be finished later."""


class Undone(UserError):
    """A step was refused; what the operation had made is removed again."""


class RoomInTheMaking(Exception):
    """A room the homeserver has not finished creating yet (try again later)."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"{room_id} is still being created")


class AlreadyOver(Exception):
    """Another attempt finished the operation first, or is at it now."""

    def __init__(self, op_id: int) -> None:
        super().__init__(f"operation {op_id} is already over")


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed (an outage of the homeserver or the database),
    as opposed to a refusal."""
    if isinstance(error, MatrixError):
        return error.status >= 500 or error.status in (0, 429)
    return isinstance(
        error,
        (
            aiohttp.ClientError,
            MatrixConnectionError,
            OSError,
            asyncio.TimeoutError,
            RoomInTheMaking,
            sqlite3.OperationalError,  # "database is locked"
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
        ),
    )


Perform = Callable[["Run"], Awaitable[str]]
Undo = Callable[["Run", str], Awaitable[str]]


@dataclass(frozen=True)
class Kind:
    name: str
    perform: Perform
    undo: Undo | None


KINDS: dict[str, Kind] = {}


def operation(name: str, *, undo: Undo | None = None) -> Callable[[Perform], Perform]:
    """Register `perform` as the operation kind `name`; `undo` removes what it made."""

    def register(perform: Perform) -> Perform:
        if name in KINDS:
            raise ValueError(f"operation kind {name!r} registered twice")
        KINDS[name] = Kind(name, perform, undo)
        return perform

    return register


class Run:
    """One execution of an operation: its parameters, and the results of the steps done."""

    def __init__(self, ops: Operations, op: Operation, steps: dict[str, Any]) -> None:
        self.ops = ops
        self.svc = ops.svc
        self.op = op
        self.params = op.params
        self._steps = steps

    async def step(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()` once: its saved result if it already ran, else call it and save the result.

        `fn` must be safe to call again if the process dies before the save (idempotent on
        the homeserver and in the database); `create_room` covers the one case that is not."""
        if key in self._steps:
            return self._steps[key]  # type: ignore[no-any-return]
        result = await fn()
        await self.svc.db.operations.save_step(self.op.id, key, result, now_ms())
        self._steps[key] = result
        return result

    async def keep(self, key: str, value: T) -> T:
        """`value` the first time, and the value kept then on every resumed run."""

        async def first() -> T:
            return value

        return await self.step(key, first)

    def result(self, key: str) -> Any:
        return self._steps.get(key)

    def results(self, prefix: str) -> dict[str, Any]:
        return {k: v for k, v in self._steps.items() if k.startswith(prefix)}

    def tag(self, key: str) -> str:
        prefix = self.svc.config.alias_prefix
        safe = "".join(c if c.isalnum() else "-" for c in key.lower())
        return f"#{prefix}{TAG_PREFIX}{self.op.id}_{safe}:{self.svc.server_name}"

    async def create_room(self, key: str, request: dict[str, Any]) -> str:
        """Create a room for step `key` exactly once, even across a crash mid-request."""

        async def create() -> str:
            alias = self.tag(key)
            # Only an earlier attempt can have made the room (`attempts` counts those).
            existing = await self.svc.gw.resolve_alias(alias) if self.op.attempts else None
            if existing:
                log.info("operation %d: found room %s made before a restart", self.op.id, key)
                return await self._finished(existing, request)
            localpart = alias[1:].split(":", 1)[0]
            # The tag stays out of the room's canonical alias (an appservice deleting an
            # alias does not update that event, so a stale address would remain).
            no_canonical = {"type": "m.room.canonical_alias", "state_key": "", "content": {}}
            state = [*request.get("initial_state", []), no_canonical]
            try:
                return await self.svc.gw.create_room(
                    {**request, "room_alias_name": localpart, "initial_state": state}
                )
            except MatrixError as e:
                # The HTTP client retried a request the homeserver had carried out.
                if e.errcode != "M_ROOM_IN_USE":
                    raise
                found = await self.svc.gw.resolve_alias(alias)
                if found is None:
                    raise
                return await self._finished(found, request)

        return await self.step(f"room:{key}", create)

    async def _finished(self, room_id: str, request: dict[str, Any]) -> str:
        """A room found by its tag may still be in the making: the homeserver carries on
        with a `createRoom` whose caller died, and it creates the alias before the room's
        first events and sends the invitations last. Wait until the bot is in the room and
        everyone invited has a membership, so that what follows (a link, an encrypted
        notice) reaches them; a room still unfinished then is tried again later."""
        invited = list(request.get("invite", []))
        for delay in SETTLE_DELAYS:
            try:
                members = await self.svc.gw.members(room_id)
            except MatrixError as e:
                if is_transient(e) or e.status not in (403, 404):
                    raise
                members = {}  # the bot is not in it yet
            if members.get(self.svc.bot) == "join" and all(u in members for u in invited):
                return room_id
            await asyncio.sleep(delay)
        raise RoomInTheMaking(room_id)

    def rooms(self) -> dict[str, str]:
        """The rooms this operation has made so far, by step key."""
        return {k.removeprefix("room:"): str(v) for k, v in self.results("room:").items()}

    async def find_rooms(self, keys: list[str]) -> dict[str, str]:
        """The rooms made for these step keys, including any whose creation a failure or a
        crash interrupted after the homeserver had carried it out (found by their tag)."""
        found = self.rooms()
        for key in keys:
            if key not in found:
                room_id = await self.svc.gw.resolve_alias(self.tag(key))
                if room_id:
                    found[key] = room_id
        return found

    async def release_tags(self, keys: list[str] | None = None) -> None:
        """Remove the temporary aliases of the rooms this operation made (or of `keys`)."""
        from .service import bounded  # service builds on this module

        async def release(key: str) -> None:
            try:
                await self.svc.gw.delete_alias(self.tag(key))
            except MatrixError as e:
                if is_transient(e):
                    raise

        await bounded(release(key) for key in (keys or list(self.rooms())))

    async def community(self) -> Community:
        """The operation's community, which must still exist for it to go on."""
        community = await self.svc.db.communities.get(self.op.space_id)
        if community is None:
            raise Conflict("The community no longer exists.")
        return community

    async def set_space(self, space_id: str) -> None:
        if self.op.space_id != space_id:
            await self.svc.db.operations.set_space(self.op.id, space_id)
            self.op.space_id = space_id


class Operations:
    """Starts, resumes and retries operations; one at a time per community."""

    def __init__(self, service: Service) -> None:
        self.svc = service
        self._locks: dict[str, asyncio.Lock] = {}
        self._retrying: dict[int, asyncio.Task[None]] = {}
        self._attempting: set[int] = set()
        self._stopped = False

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def busy(self, space_id: str) -> bool:
        return await self.svc.db.operations.running_in(space_id) > 0

    async def run(
        self,
        kind: str,
        actor: str,
        params: dict[str, Any],
        origin: Origin = NOWHERE,
        space_id: str = "",
    ) -> Run:
        """Record the operation, then execute it; see the module docstring for failures."""
        if kind not in KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        op = await self.svc.db.operations.add(kind, space_id, actor, params, origin, now_ms())
        log.info("operation %d (%s) by %s started", op.id, kind, actor)
        try:
            return await self._attempt(op, resumed=False)
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("operation %d (%s) stalled: %s; will retry", op.id, kind, _brief(e))
            self._retry_later(op.id)
            raise Pending(
                "The homeserver is not answering right now. I will finish this as soon as it "
                "is back and tell you here."
            ) from None

    async def resume(self) -> None:
        """After a start: carry on with every operation a previous run left unfinished, and
        forget finished ones older than `KEEP_FINISHED_DAYS`."""
        cutoff = now_ms() - KEEP_FINISHED_DAYS * 24 * 3600 * 1000
        pruned = await self.svc.db.operations.prune(cutoff)
        if pruned:
            log.info("forgot %d finished operations", pruned)
        for op in await self.svc.db.operations.running():
            log.info("operation %d (%s) was interrupted; resuming", op.id, op.kind)
            self._retry_later(op.id, delay=0)

    def _retry_later(self, op_id: int, delay: float | None = None) -> None:
        if op_id in self._retrying or self._stopped:
            return
        first = RETRY_FIRST if delay is None else delay
        self._retrying[op_id] = asyncio.create_task(self._keep_trying(op_id, first))

    async def _keep_trying(self, op_id: int, delay: float) -> None:
        """Attempt the operation until it is over (done, undone or failed): whatever else
        goes wrong, an operation is never left `running` with nobody trying it."""
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    op = await self.svc.db.operations.get(op_id)
                    if op is None or op.state not in UNFINISHED:
                        return
                    await self._attempt(op, resumed=True)
                except AlreadyOver:
                    return
                except Exception as e:
                    if is_transient(e):
                        log.warning("operation %d still stalled: %s", op_id, _brief(e))
                    elif not isinstance(e, UserError):
                        log.exception("operation %d: attempt failed", op_id)
                delay = min(max(delay, RETRY_FIRST) * 2, RETRY_MAX)
        finally:
            self._retrying.pop(op_id, None)

    async def _attempt(self, op: Operation, *, resumed: bool) -> Run:
        table = self.svc.db.operations
        kind = KINDS.get(op.kind)
        if kind is None:  # recorded by a version of the service that knew this kind
            await table.finish(op.id, "failed", f"unknown kind {op.kind}", now_ms())
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

    async def _locked_attempt(self, kind: Kind, op: Operation, key: str, resumed: bool) -> Run:
        table = self.svc.db.operations
        async with self.lock(key):
            fresh = await table.get(op.id)
            if fresh is None or fresh.state not in UNFINISHED:
                raise AlreadyOver(op.id)
            op = fresh
            await table.attempt(op.id, now_ms())
            run = Run(self, op, await table.steps(op.id))
            if op.state == "undoing":
                reason = op.outcome or "it was refused"
            else:
                try:
                    outcome = await kind.perform(run)
                except Exception as e:
                    if is_transient(e):
                        raise
                    reason = (e.message if isinstance(e, UserError) else _brief(e)).rstrip(".")
                    if kind.undo is None:
                        await self._fail(op, reason, resumed, f"Could not finish: {reason}.")
                        raise
                    log.warning("operation %d (%s) refused: %s; undoing", op.id, op.kind, reason)
                    await table.finish(op.id, "undoing", reason, now_ms())
                else:
                    await table.finish(op.id, "done", outcome, now_ms())
                    log.info("operation %d (%s) done", op.id, op.kind)
                    if resumed:
                        await self._report(op, f"Finished after an interruption: {outcome}")
                    return run
            assert kind.undo is not None
            try:
                text = await kind.undo(run, reason)
            except Exception as e:
                if not is_transient(e):
                    await self._fail(
                        op,
                        f"{reason}; undoing it failed too ({_brief(e)})",
                        True,
                        f"Could not finish, nor undo all of it: {reason}. An admin should "
                        "check the community (`info`).",
                    )
                raise
            await table.finish(op.id, "undone", text, now_ms())
            log.info("operation %d (%s) undone", op.id, op.kind)
            if resumed:
                await self._report(op, text)
            raise Undone(text)

    async def _fail(self, op: Operation, reason: str, report: bool, text: str) -> None:
        """An operation that can neither finish nor be undone: over, logged, reported."""
        log.error("operation %d (%s) failed: %s", op.id, op.kind, reason)
        await self.svc.db.operations.finish(op.id, "failed", reason, now_ms())
        if report:
            await self._report(op, text)

    async def _report(self, op: Operation, text: str) -> None:
        """Tell the person who asked (where they asked) and the community's admins room."""
        targets: list[tuple[str, dict[str, Any]]] = []
        if op.room_id:
            relates: dict[str, Any] = {"m.in_reply_to": {"event_id": op.event_id}}
            if op.thread_root:
                relates.update(rel_type="m.thread", event_id=op.thread_root, is_falling_back=False)
            targets.append((op.room_id, relates))
        admins_room = await self.svc.admins_room_of(op.space_id) if op.space_id else None
        if admins_room and admins_room != op.room_id:
            targets.append((admins_room, {}))
        for room_id, relates in targets:
            content: dict[str, Any] = {
                "msgtype": "m.notice",
                "body": text,
                "format": "org.matrix.custom.html",
                "formatted_body": html.escape(text),
                "m.mentions": {},
            }
            if relates:
                content["m.relates_to"] = relates
            try:
                await self.svc.gw.send_message(room_id, "m.room.message", content)
            except Exception as e:  # a report that cannot be sent must not undo the work
                log.warning("operation %d: could not report in %s: %s", op.id, room_id, _brief(e))

    async def stop(self) -> None:
        self._stopped = True
        tasks = list(self._retrying.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _brief(error: BaseException) -> str:
    if isinstance(error, MatrixError):
        return f"{error.errcode} (HTTP {error.status})"
    return type(error).__name__
