"""The operation engine on a real database: steps run once, stalls retry, refusals undo.

The operations here are plain functions that touch neither the homeserver nor a community,
so no Matrix stand-in is needed: what is tested is the bookkeeping around the steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from mautrix.errors import MForbidden, MLimitExceeded, MUnknown
from mautrix.types import UserID

from communities_appservice.core import operations
from communities_appservice.core.operations import Operations, operation
from communities_appservice.core.run import Naming, Params, RoomInTheMaking, Run
from communities_appservice.db import Tables
from communities_appservice.errors import Conflict, Pending, Undone
from communities_appservice.matrix.errors import MatrixError, is_transient
from communities_appservice.tasks import Tasks, bounded

from ..recording import RecordingGateway

CALLS: list[str] = []
FAIL: dict[str, BaseException] = {}  # step → what it raises (once)


@dataclass(frozen=True)
class Three(Params):
    n: int = 0


@dataclass(frozen=True)
class Broken(Params):
    pass


async def _step(run: Run[Any], key: str) -> str:
    async def act() -> str:
        CALLS.append(key)
        if key in FAIL:
            raise FAIL.pop(key)
        return f"did {key}"

    return await run.step(key, act)


async def _undo(svc: object, run: Run[Three], reason: str) -> str:
    CALLS.append(f"undo after {sorted(run.results(''))}")
    return f"Undone: {reason}."


async def _broken_undo(svc: object, run: Run[Broken], reason: str) -> str:
    CALLS.append("undo")
    raise MatrixError("M_FORBIDDEN", "no", 403)


@operation("test broken undo", Broken, undo=_broken_undo)
async def _refused(svc: object, run: Run[Broken]) -> str:
    await _step(run, "one")
    raise MatrixError("M_FORBIDDEN", "no", 403)


@operation("test three steps", Three, undo=_undo)
async def _three(svc: object, run: Run[Three]) -> str:
    for key in ("one", "two", "three"):
        await _step(run, key)
    return "All three."


BOT = UserID("@bot:x")
ACTOR = UserID("@a:x")


class Standin:
    """The engine on its own: the database, a recording gateway, its tasks."""

    def __init__(self, tables: Tables) -> None:
        self.db = tables
        self.tasks = Tasks()
        gateway = RecordingGateway(BOT, "x")
        self.ops = Operations(tables, gateway, self.tasks, Naming("c_", "x", BOT))


@pytest.fixture
async def svc(tables: Tables) -> AsyncIterator[Standin]:
    CALLS.clear()
    FAIL.clear()
    standin = Standin(tables)
    try:
        yield standin
    finally:
        await standin.ops.stop()
        await standin.tasks.stop()


async def test_an_operation_runs_each_step_once(svc: Standin) -> None:
    run = await svc.ops.run(Three(1), ACTOR)
    assert CALLS == ["one", "two", "three"]
    op = await svc.db.operations.get(run.op.id)
    assert op is not None and (op.state, op.outcome, op.attempts) == ("done", "All three.", 1)
    assert await svc.db.operations.steps(op.id) == {
        "one": "did one",
        "two": "did two",
        "three": "did three",
    }


async def test_a_stalled_operation_is_retried_from_where_it_stopped(
    svc: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(operations, "RETRY_FIRST", 0.01)
    FAIL["two"] = aiohttp.ClientConnectionError("homeserver down")
    with pytest.raises(Pending) as caught:
        await svc.ops.run(Three(), ACTOR)
    assert "as soon as it is back" in caught.value.message
    [op] = await svc.db.operations.running()

    async def finished() -> None:
        while (got := await svc.db.operations.get(op.id)) is None or got.state != "done":
            await asyncio.sleep(0.01)

    await asyncio.wait_for(finished(), 5)
    assert CALLS == ["one", "two", "two", "three"]  # "one" was not done again


async def test_a_refused_step_undoes_the_operation(svc: Standin) -> None:
    FAIL["three"] = MatrixError("M_FORBIDDEN", "no", 403)
    with pytest.raises(Undone) as caught:
        await svc.ops.run(Three(), ACTOR)
    assert caught.value.message == "Undone: M_FORBIDDEN (HTTP 403)."
    assert CALLS == ["one", "two", "three", "undo after ['one', 'two']"]
    op = await svc.db.operations.get(1)
    assert op is not None and op.state == "undone"
    assert await svc.db.operations.running() == []


async def test_a_rule_refusing_mid_way_is_the_reason_given(svc: Standin) -> None:
    FAIL["two"] = Conflict("The community no longer exists.")
    with pytest.raises(Undone) as caught:
        await svc.ops.run(Three(), ACTOR)
    assert caught.value.message == "Undone: The community no longer exists."


async def test_resume_finishes_what_a_previous_run_left(svc: Standin) -> None:
    op = await svc.db.operations.add("test three steps", "", "@a:x", {}, ("", "", ""), 1)
    await svc.db.operations.save_step(op.id, "one", "did one", 2)  # done before the crash
    await svc.ops.resume()

    async def finished() -> None:
        while (got := await svc.db.operations.get(op.id)) is None or got.state != "done":
            await asyncio.sleep(0.01)

    await asyncio.wait_for(finished(), 5)
    assert CALLS == ["two", "three"]


async def test_an_operation_being_undone_is_undone_on_resume(svc: Standin) -> None:
    op = await svc.db.operations.add("test three steps", "", "@a:x", {}, ("", "", ""), 1)
    await svc.db.operations.save_step(op.id, "one", "did one", 2)
    await svc.db.operations.finish(op.id, "undoing", "it was refused", 3)
    await svc.ops.resume()

    async def undone() -> None:
        while (got := await svc.db.operations.get(op.id)) is None or got.state != "undone":
            await asyncio.sleep(0.01)

    await asyncio.wait_for(undone(), 5)
    assert CALLS == ["undo after ['one']"]


def test_a_kind_registered_twice_is_a_bug() -> None:
    with pytest.raises(ValueError):
        operation("test three steps", Three)(_three)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (MatrixError("M_UNKNOWN", "", 502), True),
        (MatrixError("M_LIMIT_EXCEEDED", "", 429), True),
        (MatrixError("M_FORBIDDEN", "", 403), False),
        (MatrixError("M_NOT_FOUND", "", 404), False),
        (MUnknown(502, "bad gateway"), True),  # raised by mautrix itself (key sharing)
        (MLimitExceeded(429, "slow down"), True),
        (MForbidden(403, "no"), False),
        (aiohttp.ClientConnectionError(), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (RoomInTheMaking("!r:x"), True),
        (Conflict("no"), False),
        (ValueError(), False),
    ],
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


async def test_steps_results_survive_as_json(svc: Standin) -> None:
    async def perform(run: Run[Three]) -> Any:
        return await run.keep("rooms", ["!a", "!b"])

    op = await svc.db.operations.add("test three steps", "", "@a:x", {}, ("", "", ""), 1)
    run = Run(svc.db, svc.ops.gw, svc.ops.naming, op, Three(), {})
    assert await perform(run) == ["!a", "!b"]
    again = Run(
        svc.db, svc.ops.gw, svc.ops.naming, op, Three(), await svc.db.operations.steps(op.id)
    )
    assert await again.keep("rooms", ["!other"]) == ["!a", "!b"]


async def test_an_undo_that_fails_ends_the_operation_as_failed(svc: Standin) -> None:
    with pytest.raises(MatrixError):
        await svc.ops.run(Broken(), ACTOR)
    op = await svc.db.operations.get(1)
    assert op is not None and op.state == "failed" and "undoing it failed too" in op.outcome
    assert await svc.db.operations.running() == []  # nothing left to block the community


async def test_an_operation_of_an_unknown_kind_is_failed_on_resume(svc: Standin) -> None:
    op = await svc.db.operations.add("test retired kind", "", "@a:x", {}, ("", "", ""), 1)
    await svc.ops.resume()

    async def failed() -> None:
        while (got := await svc.db.operations.get(op.id)) is None or got.state != "failed":
            await asyncio.sleep(0.01)

    await asyncio.wait_for(failed(), 5)


async def test_one_attempt_at_a_time_even_when_resumed_twice(svc: Standin) -> None:
    op = await svc.db.operations.add("test three steps", "", "@a:x", {}, ("", "", ""), 1)
    await asyncio.gather(svc.ops._attempt(op, resumed=True), svc.ops.resume())

    async def finished() -> None:
        while (got := await svc.db.operations.get(op.id)) is None or got.state != "done":
            await asyncio.sleep(0.01)

    await asyncio.wait_for(finished(), 5)
    await asyncio.sleep(0.05)
    assert CALLS == ["one", "two", "three"]


async def test_finished_operations_are_forgotten_after_a_while(svc: Standin) -> None:
    ops = svc.db.operations
    old = await ops.add("test three steps", "", "@a:x", {}, ("", "", ""), 1)
    await ops.finish(old.id, "done", "ok", 2)
    stuck = await ops.add("test three steps", "", "@a:x", {}, ("", "", ""), 1)
    assert await ops.prune(10) == 1  # only the finished one, however old the other
    assert await ops.get(old.id) is None and await ops.get(stuck.id) is not None


async def test_bounded_cancels_the_rest_when_one_call_fails() -> None:
    finished: list[int] = []

    async def call(i: int) -> int:
        if i == 0:
            await asyncio.sleep(0.01)
            raise Conflict("refused")
        await asyncio.sleep(0.2)
        finished.append(i)
        return i

    with pytest.raises(Conflict):
        await bounded((call(i) for i in range(20)), limit=4)
    await asyncio.sleep(0.3)
    assert finished == []  # nothing went on behind the failure's back
    assert await bounded(asyncio.sleep(0, result=i) for i in range(5)) == [0, 1, 2, 3, 4]
