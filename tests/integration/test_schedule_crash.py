"""Scheduled posts are sent exactly once across a SIGKILL, against the real homeserver.

The service runs as a process of its own (`Stack.spawn_app`) and is killed with SIGKILL
just before a post's due time, just after it (the post recorded, or its first room sent),
or is down across the due time; it is then started again (in the test's process, so that
the test reads its tables). Each time, every room of the post has it exactly once, and a
post sent more than ten minutes late says so.

A room's posts are read on the homeserver (Synapse's admin API, as the rooms are
encrypted: the bot's message events, whatever their content), from a point taken before
the post was scheduled, and compared with the event the post's operation recorded for
that room. "Exactly once" is counted only after the post arrived and the service is idle
(the job is over, the post's operation is done, nothing of the community is running).
"""

from __future__ import annotations

import re
import secrets
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import pytest
from mautrix.types import RoomID

from communities_appservice.db import Tables, create_database, now_ms
from communities_appservice.db.operation import Operation

from .e2ee import E2EEUser
from .harness import Stack, User, eventually
from .test_groups_and_admins import joined_community

MOMENT = 0.002  # how often a test that kills at a precise point looks (seconds)
MESSAGES = ("m.room.message", "m.room.encrypted")
LATE_AFTER_MS = 10 * 60 * 1000  # the scheduler's threshold (core/scheduler.py)


async def community(stack: Stack, name: str, groups: list[str]) -> tuple[User, dict[str, Any]]:
    """A community (plain owner, unencrypted DM) with `groups`: the rooms by role, the
    groups' rooms under "groups"."""
    owner, rooms = await joined_community(stack, f"{name} {secrets.token_hex(2)}")
    for group in groups:
        reply = await owner.command(rooms["dm"], f"group create {group}")
        assert "Created group" in reply["body"], reply
    assert stack.app is not None
    records = await stack.app.tables.rooms.of_community(RoomID(rooms["space"]), "group")
    assert sorted(r.name for r in records) == sorted(groups)
    return owner, {**rooms, "groups": [r.room_id for r in records]}


@asynccontextmanager
async def observing(stack: Stack) -> AsyncIterator[Tables]:
    """The service's tables, opened from the test while the service runs as a process."""
    observer = create_database(stack.database)
    await observer.start()
    try:
        yield Tables(observer)
    finally:
        await observer.stop()


async def position(stack: Stack, room_id: str) -> str:
    """A pagination token at the end of `room_id` now."""
    found = await stack.synapse_admin("GET", f"v1/rooms/{room_id}/messages?dir=b&limit=1")
    return str(found["start"])


async def bot_messages_since(stack: Stack, room_id: str, token: str) -> list[str]:
    """The bot's message events (encrypted or not) in `room_id` after `token`, oldest first."""
    events: list[str] = []
    while True:
        page = await stack.synapse_admin(
            "GET", f"v1/rooms/{room_id}/messages?dir=f&limit=100&from={quote(token)}"
        )
        events += [
            e["event_id"]
            for e in page["chunk"]
            if e["sender"] == stack.bot and e["type"] in MESSAGES
        ]
        if not page["chunk"] or "end" not in page or page["end"] == token:
            return events
        token = str(page["end"])


async def schedule(stack: Stack, owner: User, dm: str, text: str) -> int:
    """`schedule TEXT` in the owner's DM; the job's id, from the reply."""
    event_id = await owner.send(dm, f"!community schedule {text}")
    reply = await stack.reply_to(owner, dm, event_id)
    found = re.match(r"Scheduled post #(\d+) for", str(reply["body"]))
    assert found, reply
    return int(found.group(1))


async def post_ops(tables: Tables, job_id: int) -> list[Operation]:
    """Every post operation a firing of job `job_id` recorded (one per occurrence)."""
    rows = await tables.db.fetch(
        "SELECT id FROM operation WHERE kind='post' AND params LIKE $1 ORDER BY id",
        f'%"key": "schedule {job_id} at %',
    )
    ops = [await tables.operations.get(int(r["id"])) for r in rows]
    return [op for op in ops if op is not None]


async def kill(process: Any) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def restarted(stack: Stack, process: Any) -> None:
    """Whatever happened, the test leaves the suite's in-process service running."""
    if process.returncode is None:
        await kill(process)
    if stack.app is None:
        await stack.start_app()


async def sent_once(
    stack: Stack, space: str, job_id: int, marks: dict[str, str]
) -> tuple[Operation, dict[str, Any]]:
    """Once the restarted service posted job `job_id` and is idle again: the one post
    operation, each room holding exactly the event that operation recorded for it."""
    assert stack.app is not None
    tables = stack.app.tables

    async def arrived() -> bool:
        return all([await bot_messages_since(stack, r, t) for r, t in marks.items()])

    await eventually(arrived, "the post in every room", timeout=60)

    async def idle() -> bool:
        job = await tables.schedule.get(job_id)
        ops = await post_ops(tables, job_id)
        return (
            job is not None
            and job.state == "done"
            and bool(ops)
            and all(op.state == "done" for op in ops)
            and await tables.operations.running_in(RoomID(space)) == 0
        )

    await eventually(idle, "the job and its post to be over", timeout=60)
    job = await tables.schedule.get(job_id)
    assert job is not None and job.fired == 1, job
    [op] = await post_ops(tables, job_id)  # one firing, one post
    assert sorted(op.params["rooms"]) == sorted(marks), op.params
    steps = await tables.operations.steps(op.id)
    for room, token in marks.items():
        recorded = steps[f"sent:{room}"]
        assert await bot_messages_since(stack, room, token) == [recorded["event_id"]], room
    return op, steps


async def test_kill_9_just_before_the_due_time_posts_once_after_the_restart(
    stack: Stack,
) -> None:
    owner, rooms = await community(stack, "Before due", ["One"])
    targets = [rooms["announcements"], *rooms["groups"]]
    marks = {room: await position(stack, room) for room in targets}
    mark = secrets.token_hex(3)
    process = await stack.spawn_app()
    try:
        async with observing(stack) as tables:
            job_id = await schedule(stack, owner, rooms["dm"], f"in 15s --groups all Soon {mark}")
            job = await tables.schedule.get(job_id)
            assert job is not None
            due = job.due_at
            assert now_ms() < due - 4000, "the reply came too late to kill before the due time"

            async def almost_due() -> bool:
                return now_ms() >= due - 3000  # room to spare on a busy machine

            await eventually(almost_due, "a few seconds before the due time", 20, MOMENT)
            await kill(process)
            job = await tables.schedule.get(job_id)
            assert job is not None and job.state == "pending", job
            assert await post_ops(tables, job_id) == []

            async def past_due() -> bool:
                return now_ms() > due

            await eventually(past_due, "the due time to pass while the service is down")
            for room, token in marks.items():  # nobody sent it while the service was dead
                assert await bot_messages_since(stack, room, token) == [], room
    finally:
        await restarted(stack, process)
    op, _ = await sent_once(stack, rooms["space"], job_id, marks)
    assert "Sent late" not in op.params["content"]["body"]  # seconds late, not ten minutes
    assert f"Soon {mark}" in op.params["content"]["body"]


KILL_POINTS = {
    "the post recorded": lambda op, steps: op is not None,
    "the first room sent": lambda op, steps: any(s.startswith("sent:") for s in steps),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
async def test_kill_9_just_after_the_due_time_posts_once_per_room(stack: Stack, point: str) -> None:
    owner, rooms = await community(stack, "After due", ["One", "Two"])
    targets = [rooms["announcements"], *rooms["groups"]]
    marks = {room: await position(stack, room) for room in targets}
    mark = secrets.token_hex(3)
    process = await stack.spawn_app()
    try:
        async with observing(stack) as tables:
            job_id = await schedule(stack, owner, rooms["dm"], f"in 3s --groups all Now {mark}")

            async def at_point() -> bool:
                ops = await post_ops(tables, job_id)
                steps = await tables.operations.steps(ops[0].id) if ops else {}
                return KILL_POINTS[point](ops[0] if ops else None, steps)

            await eventually(at_point, f"{point} (the moment of the kill)", 30, MOMENT)
            await kill(process)
            [op] = await post_ops(tables, job_id)
            steps_at_kill = set(await tables.operations.steps(op.id))
            op_at_kill = await tables.operations.get(op.id)
            assert op_at_kill is not None
            assert op_at_kill.state == "running", "killed too late to test anything"
            job = await tables.schedule.get(job_id)
            assert job is not None and job.state == "done"  # claimed with the post's record
            on_server = [r for r, t in marks.items() if await bot_messages_since(stack, r, t)]
    finally:
        await restarted(stack, process)
    saved = sum(s.startswith("sent:") for s in steps_at_kill)
    print(f"\n{point}: at the kill {saved} rooms saved, {len(on_server)} on the homeserver")
    _, steps = await sent_once(stack, rooms["space"], job_id, marks)
    assert {s for s in steps if s.startswith("sent:")} == {f"sent:{r}" for r in targets}


async def test_down_across_the_due_time_one_late_post_says_so(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, rooms = await community(stack, "Late", [])
    ann = rooms["announcements"]
    reader = await stack.e2ee_person("reader")  # type: ignore[attr-defined]
    await reader.client.join(rooms["space"])
    await reader.wait(lambda: ann in reader.client.invited_rooms, "the announcements invite")
    await reader.join(ann)
    marks = {ann: await position(stack, ann)}
    mark = secrets.token_hex(3)
    process = await stack.spawn_app()
    try:
        async with observing(stack) as tables:
            job_id = await schedule(stack, owner, rooms["dm"], f"in 1m Late {mark}")
            await kill(process)
            # A long outage, without waiting for it: while the service is down, the test
            # (which owns the database) moves the due time 11 minutes into the past, as if
            # the service had been down from before the due time until 11 minutes after it.
            due = now_ms() - LATE_AFTER_MS - 60_000
            await tables.db.execute(
                "UPDATE scheduled_job SET due_at=$2 WHERE id=$1 AND state='pending'", job_id, due
            )
            job = await tables.schedule.get(job_id)
            assert job is not None and job.due_at == due and job.state == "pending", job
            assert await post_ops(tables, job_id) == []
    finally:
        await restarted(stack, process)
    got = await reader.text_in(ann, f"Late {mark}", timeout=60)
    _, steps = await sent_once(stack, rooms["space"], job_id, marks)
    assert got.decrypted and got.event_id == steps[f"sent:{ann}"]["event_id"]
    assert "⏰ Sent late: this was scheduled for" in got.body, got.body
    assert sum(f"Late {mark}" in e.body for r, e in reader.texts if r == ann) == 1
