"""Scheduled posts: the commands, and the scheduler's exactly-once firing (a claim and the
post it starts commit together; a crash on either side of that commit posts once)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core import scheduler as scheduler_module
from communities_appservice.core.operations import OpState
from communities_appservice.core.scheduler import next_due
from communities_appservice.core.service import Service
from communities_appservice.db import now_ms
from communities_appservice.db.operation import Operation
from communities_appservice.db.schedule import Job, JobState
from communities_appservice.features.schedule import POST, Schedule

from ...recording import RecordingGateway
from .conftest import OWNER, CommunityMaker, Made

_IDS = itertools.count(1)


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids", "Teens"])


async def ask(service: Service, gateway: RecordingGateway, room: RoomID, body: str) -> str:
    dispatcher = Dispatcher(service)
    event = {
        "type": "m.room.message",
        "sender": OWNER,
        "room_id": room,
        "event_id": f"$s{next(_IDS)}",
        "content": {"msgtype": "m.text", "body": body},
    }
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    await dispatcher.handle(incoming)
    return str(gateway.sent(room)[-1]["body"])


def posts(gateway: RecordingGateway, room: RoomID) -> list[dict[str, Any]]:
    return [m for m in gateway.sent(room) if m.get("msgtype") == "m.text"]


async def due_job(service: Service, made: Made, *, ago_ms: int = 1000, every: str = "") -> Job:
    """A post that fell due `ago_ms` ago, recorded as `schedule` records one."""
    when = datetime.now(UTC) + timedelta(hours=1)
    done = await Schedule(service).add(
        made.community, OWNER, when.astimezone(ZoneInfo("UTC")), None, "all", "Hello **all**"
    )
    job = await service.db.schedule.get(done.job_id)
    assert job is not None
    due = now_ms() - ago_ms
    await service.db.db.execute(
        "UPDATE scheduled_job SET due_at=$2, every=$3, anchor=$4 WHERE id=$1",
        job.id,
        due,
        every,
        datetime.fromtimestamp(due / 1000, UTC).replace(tzinfo=None).isoformat(),
    )
    job = await service.db.schedule.get(done.job_id)
    assert job is not None
    return job


async def test_schedule_list_and_unschedule(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    said = await ask(
        service,
        gateway,
        made.admins,
        "!community schedule 2099-05-01T18:00 --every week --groups Kids Parents' evening",
    )
    assert said == "Scheduled post #1 for Fri 1 May 2099 18:00 (UTC), then every week."
    said = await ask(service, gateway, made.admins, "!community scheduled")
    assert "#1 · Fri 1 May 2099 18:00 (UTC) · every week · also to groups: Kids" in said
    assert "Parents' evening" in said
    assert await ask(service, gateway, made.admins, "!community unschedule #1") == (
        "Cancelled scheduled post #1."
    )
    assert "No scheduled posts" in await ask(service, gateway, made.admins, "!community scheduled")
    said = await ask(service, gateway, made.admins, "!community unschedule 1")
    assert said.startswith("⚠️ Scheduled post #1 is no longer pending.")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("schedule 2001-01-01T10:00 Too late", "in the past"),
        ("schedule whenever you like", "⚠️"),
        ("schedule in 2h", "What should I post?"),
        ("schedule in 2h --every fortnight Hi", "--every takes day, week or month"),
        ("schedule in 2h --groups Nope Hi", "'Nope' is not a group"),
        ("timezone Mars/Olympus", "⚠️"),
        ("unschedule #99", "There is no scheduled post #99"),
    ],
)
async def test_refusals_are_one_line_and_change_nothing(
    service: Service, gateway: RecordingGateway, made: Made, command: str, error: str
) -> None:
    said = await ask(service, gateway, made.admins, f"!community {command}")
    assert said.startswith("⚠️") and error in said, said
    assert "\n" not in said.split("\nUsage:")[0]
    assert await service.db.schedule.pending(made.space) == []
    assert (await service.db.communities.get(made.space)).timezone == ""  # type: ignore[union-attr]


async def test_timezone_is_shown_set_and_used(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    assert "on UTC time" in await ask(service, gateway, made.admins, "!community timezone")
    said = await ask(service, gateway, made.admins, "!community timezone Europe/Paris")
    assert "now on Europe/Paris time" in said
    said = await ask(service, gateway, made.admins, "!community schedule 2099-05-01 18:00 Hi")
    assert said == "Scheduled post #1 for Fri 1 May 2099 18:00 (Europe/Paris)."
    [job] = await service.db.schedule.pending(made.space)
    assert job.due_at == int(datetime(2099, 5, 1, 16, 0, tzinfo=UTC).timestamp() * 1000)
    assert (job.zone, job.anchor) == ("Europe/Paris", "2099-05-01T18:00:00")


async def test_a_due_post_fires_once_into_every_room_it_names(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    job = await due_job(service, made)
    await service.scheduler.fire(job)
    await service.scheduler.fire(job)  # the same occurrence again: already claimed
    for room in (made.announcements, *made.groups.values()):
        [sent] = posts(gateway, room)
        assert sent["body"] == f"Hello **all**\n— {OWNER}"
        assert "<strong>all</strong>" in sent["formatted_body"]
    after = await service.db.schedule.get(job.id)
    assert after is not None and (after.state, after.fired) == (JobState.DONE, 1)


async def test_a_crash_after_the_claim_resumes_the_post_once(
    service: Service, gateway: RecordingGateway, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    await due_job(service, made)

    async def crash(op: Operation) -> None:  # the process dies right after the commit
        return None

    monkeypatch.setattr(service.ops, "start_recorded", crash)
    await service.scheduler.fire_due()
    assert posts(gateway, made.announcements) == []
    monkeypatch.undo()
    await service.scheduler.fire_due()  # nothing is due any more
    assert posts(gateway, made.announcements) == []
    [op] = await service.db.operations.running()
    await service.ops.start_recorded(op)  # what the next start's resume does
    assert len(posts(gateway, made.announcements)) == 1
    finished = await service.db.operations.get(op.id)
    assert finished is not None and finished.state == OpState.DONE


async def test_a_crash_before_the_claim_fires_it_again_once(
    service: Service, gateway: RecordingGateway, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await due_job(service, made)

    async def lost(*args: Any) -> Operation:
        raise OSError("the database went away mid-commit")

    monkeypatch.setattr(service.db.operations, "add", lost)
    assert await service.scheduler.fire_due()  # failed: will be tried again
    monkeypatch.undo()
    still = await service.db.schedule.get(job.id)
    assert still is not None and still.state == JobState.PENDING and still.fired == 0
    await service.scheduler.fire_due()
    assert len(posts(gateway, made.announcements)) == 1


async def test_a_late_post_says_so_and_a_recurring_one_moves_on(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    job = await due_job(service, made, ago_ms=3 * 24 * 3600 * 1000 + 60_000, every="day")
    await service.scheduler.fire_due()
    [sent] = posts(gateway, made.announcements)
    assert "⏰ Sent late: this was scheduled for" in sent["body"]
    after = await service.db.schedule.get(job.id)
    assert after is not None and after.state == JobState.PENDING and after.fired == 1
    # Missed days are not all sent: the next one is the first after now, a day after the last.
    assert 0 < after.due_at - now_ms() <= 24 * 3600 * 1000


def test_a_weekly_post_keeps_its_wall_clock_time_across_daylight_saving() -> None:
    paris = ZoneInfo("Europe/Paris")
    first = datetime(2027, 3, 22, 9, 0, tzinfo=paris)  # winter time, UTC+1
    job = Job(
        id=1,
        space_id=RoomID("!s:x"),
        kind=POST,
        author=UserID(OWNER),
        params={},
        due_at=int(first.timestamp() * 1000),
        anchor="2027-03-22T09:00:00",
        zone="Europe/Paris",
        every="week",
        fired=0,
        state=JobState.PENDING,
        created_at=0,
    )
    following = next_due(job, job.due_at + 1)
    assert following is not None
    moment = datetime.fromtimestamp(following / 1000, UTC)
    assert moment == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)  # summer time, UTC+2
    assert moment.astimezone(paris).hour == 9


def test_the_scheduler_marks_late_after_ten_minutes() -> None:
    assert scheduler_module.LATE_AFTER_MS == 10 * 60 * 1000
