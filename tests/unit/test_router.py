"""The router reads the inbox a room at a time and a page at a time: a backlog stays in the
database, rooms keep their order, and rows that land while a room is drained are not missed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from communities_appservice.db import Tables
from communities_appservice.db.inbox import content_digest
from communities_appservice.matrix import router as router_module
from communities_appservice.matrix.lanes import Lanes
from communities_appservice.matrix.router import Router


def message(room: str, n: int) -> dict[str, Any]:
    return {"type": "m.room.message", "room_id": room, "event_id": f"${room}-{n}", "content": {}}


async def test_a_backlog_is_read_a_page_at_a_time_in_each_rooms_order(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(router_module, "PAGE", 10)
    for room in ("!a", "!b"):
        for n in range(35):
            await tables.inbox.accept(f"{room}-{n}", [message(room, n)], 1)
    pages: list[int] = []
    of_room = tables.inbox.of_room

    async def reading(room_id: str, limit: int, after: int = 0) -> list[Any]:
        page = await of_room(room_id, limit, after)
        pages.append(len(page))
        return page

    monkeypatch.setattr(tables.inbox, "of_room", reading)
    handled: dict[str, list[str]] = {"!a": [], "!b": []}

    async def handle(event: dict[str, Any]) -> None:
        handled[event["room_id"]].append(event["event_id"])

    router = Router(tables, handle)
    await router.resume()
    await router.wait_idle()
    await router.stop()
    for room in ("!a", "!b"):
        assert handled[room] == [f"${room}-{n}" for n in range(35)]
    assert max(pages) == 10  # never more than a page of the backlog in memory
    assert await tables.inbox.pending() == []


async def test_rows_that_land_while_a_room_is_drained_are_handled(tables: Tables) -> None:
    handled: list[str] = []
    release = asyncio.Event()

    async def handle(event: dict[str, Any]) -> None:
        handled.append(event["event_id"])
        if event["event_id"] == "$!a-0":
            await release.wait()  # the room's worker is busy while more arrives

    router = Router(tables, handle)
    await router.resume()
    first = [message("!a", 0)]
    await router.accept("t0", first, content_digest(first))
    more = [message("!a", 1), message("!a", 2)]
    await router.accept("t1", more, content_digest(more))
    release.set()
    await router.wait_idle()
    await router.stop()
    assert handled == ["$!a-0", "$!a-1", "$!a-2"]
    assert await tables.inbox.pending() == []


async def test_a_failing_count_is_undone_and_the_transaction_is_still_stored(
    tables: Tables,
) -> None:
    """On PostgreSQL a failed statement aborts its transaction: the count runs in a savepoint,
    so the events are stored (and a retry of the transaction recognised) all the same."""
    events = [message("!a", 0), message("!a", 1)]

    async def count(items: list[Any]) -> None:
        await tables.db.execute("INSERT INTO stat_key (id, secret) VALUES (1, $1)", "k" * 32)
        await tables.db.execute("SELECT no_such_column FROM inbox")

    items = await tables.inbox.accept("t1", events, 1, content_digest(events), also=count)
    assert [i.event["event_id"] for i in items] == ["$!a-0", "$!a-1"]
    assert [i.event["event_id"] for i in await tables.inbox.pending()] == ["$!a-0", "$!a-1"]
    assert await tables.inbox.seen("t1", content_digest(events))
    assert await tables.db.fetchval("SELECT COUNT(*) FROM stat_key") == 0  # undone
    assert await tables.inbox.accept("t1", events, 1, content_digest(events)) == []


def member(room: str, user: str, n: int, membership: str = "join") -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "room_id": room,
        "event_id": f"${room}-{n}",
        "state_key": user,
        "content": {"membership": membership},
    }


async def test_joins_of_different_users_in_one_room_are_handled_together(tables: Tables) -> None:
    """A burst of joins to a space: the first join's listeners are still running (waiting
    for the fourth) when the next three are handled; the room's order holds otherwise."""
    events = [member("!s", f"@u{n}:x", n) for n in range(4)]
    await tables.inbox.accept("t0", events, 1)
    started: list[str] = []
    fourth = asyncio.Event()

    async def handle(event: dict[str, Any]) -> None:
        started.append(event["event_id"])
        if event["event_id"] == "$!s-3":
            fourth.set()
        if event["event_id"] == "$!s-0":
            await fourth.wait()  # would never end were the joins handled one at a time

    router = Router(tables, handle)
    await router.resume()
    async with asyncio.timeout(10):  # a guard only
        await router.wait_idle()
    await router.stop()
    assert sorted(started) == [f"$!s-{n}" for n in range(4)]
    assert await tables.inbox.pending() == []


async def test_an_event_after_joins_waits_for_them_and_holds_back_the_next(
    tables: Tables,
) -> None:
    events = [member("!s", "@a:x", 0), member("!s", "@b:x", 1), message("!s", 2)]
    events += [member("!s", "@c:x", 3), member("!s", "@d:x", 4)]
    await tables.inbox.accept("t0", events, 1)
    steps: list[tuple[str, int]] = []

    async def handle(event: dict[str, Any]) -> None:
        n = int(event["event_id"].rsplit("-", 1)[1])
        steps.append(("start", n))
        await asyncio.sleep(0)  # others may start meanwhile
        steps.append(("end", n))

    router = Router(tables, handle)
    await router.resume()
    await router.wait_idle()
    await router.stop()
    message_at = steps.index(("start", 2))
    assert {("end", 0), ("end", 1)} <= set(steps[:message_at])
    assert steps[message_at + 1] == ("end", 2)
    assert {step for step in steps[message_at + 2 :]} == {
        (s, n) for s in ("start", "end") for n in (3, 4)
    }


async def test_lanes_raise_the_first_failure_and_log_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = Lanes(4)

    async def fail(n: int) -> None:
        raise RuntimeError(f"lane {n} broke")

    for n in range(2):
        await lanes.start(f"@u{n}:x", fail(n))
    with pytest.raises(RuntimeError, match="lane 0 broke"):
        await lanes.settle()
    assert "another membership event failed too" in caplog.text
    assert "lane 1 broke" in caplog.text
    await lanes.settle()  # both were forgotten
