"""Scheduled posts: `schedule`, `scheduled`, `unschedule`, and the community's time zone.

A scheduled post is a job of the scheduler (`core.scheduler`) of kind "post": when it is
due, it becomes a post (`core.posts`) into the announcement room and the groups named, in
the name of the admin who scheduled it; one more than ten minutes late says so. A recurring
post keeps its wall-clock time in its zone (the community's when it was scheduled), across
daylight-saving changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mautrix.types import UserID

from ..core.hooks import job
from ..core.notices import Text, lines, say
from ..core.posts import Post, check_fits, groups_named, markdown, message, signed
from ..core.run import Params
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.schedule import Job, JobState
from ..errors import Conflict, Invalid, NotFound
from ..language import N_
from ..rules.limits import MAX_LONG_TEXT, check_text
from ..rules.model import AuditAction, CommunityState, Role
from ..rules.when import Every, show, zone

log = logging.getLogger("communities.schedule")
POST = "post"
MAX_PENDING = 100  # scheduled posts waiting in one community


def community_zone(svc: Service, community: Community) -> ZoneInfo:
    return zone(community.timezone or svc.config.communities.timezone)


def every_of(word: str | None) -> Every | None:
    if word is None:
        return None
    try:
        return Every(word.strip().lower())
    except ValueError:
        raise Invalid("--every takes day, week or month, not {!r}.", word) from None


@dataclass(frozen=True)
class Scheduled:
    job_id: int
    due: datetime  # in the job's zone
    every: Every | None


class Schedule:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def add(
        self,
        community: Community,
        author: UserID,
        when: datetime,
        every: Every | None,
        groups: str | None,
        text: str,
    ) -> Scheduled:
        """Schedule `text` (Markdown) for `when` (aware, in the community's zone)."""
        if not text.strip():
            raise Invalid("What should I post? Add the text after the time.")
        check_text(text, N_("scheduled post"), MAX_LONG_TEXT)
        await groups_named(self.svc, community, groups)  # the names are checked now
        if len(await self.svc.db.schedule.pending(community.space_id)) >= MAX_PENDING:
            raise Conflict(
                "This community already has {} scheduled posts; unschedule some first.",
                MAX_PENDING,
            )
        tz = when.tzinfo
        assert isinstance(tz, ZoneInfo)
        content = message(signed(markdown(text), author))
        check_fits(content)
        record = Job(
            id=0,
            space_id=community.space_id,
            kind=POST,
            author=author,
            params={"content": content, "groups": groups, "text": text.strip()},
            due_at=int(when.timestamp() * 1000),
            anchor=when.replace(tzinfo=None).isoformat(),
            zone=tz.key,
            every=every.value if every else "",
            fired=0,
            state=JobState.PENDING,
            created_at=now_ms(),
        )
        job_id = await self.svc.db.schedule.add(record)
        self.svc.scheduler.wake()
        await self.svc.audit(
            community.space_id, author, AuditAction.SCHEDULE, f"#{job_id}", show(when, tz)
        )
        return Scheduled(job_id, when, every)

    async def pending(self, community: Community) -> list[Job]:
        return await self.svc.db.schedule.pending(community.space_id, POST)

    async def cancel(self, community: Community, actor: UserID, ref: int) -> Job:
        found = await self.svc.db.schedule.get(ref)
        if found is None or found.space_id != community.space_id or found.kind != POST:
            raise NotFound("There is no scheduled post #{} in this community.", ref)
        if not await self.svc.db.schedule.cancel(ref):
            raise Conflict("Scheduled post #{} is no longer pending.", ref)
        self.svc.scheduler.wake()
        await self.svc.audit(community.space_id, actor, AuditAction.UNSCHEDULE, f"#{ref}")
        return found

    async def set_zone(self, community: Community, actor: UserID, name: str) -> ZoneInfo:
        tz = zone(name)
        await self.svc.db.communities.set_timezone(community.space_id, tz.key)
        await self.svc.audit(community.space_id, actor, AuditAction.TIMEZONE, tz.key)
        return tz


REPEATS = {"day": N_("every day"), "week": N_("every week"), "month": N_("every month")}


def repeated(every: str) -> str:
    """How often a series repeats, in words ("every week")."""
    return say(REPEATS[every]).plain


def listed(job: Job) -> Text:
    """One line of `scheduled`: id, next time, repeat, first words."""
    tz = zone(job.zone)
    due = datetime.fromtimestamp(job.due_at / 1000, UTC).astimezone(tz)
    words = str(job.params.get("text", "")).split()
    first = " ".join(words[:8]) + (" …" if len(words) > 8 else "")
    parts = [say("#{}", job.id), say("{}", show(due, tz))]
    if job.every in REPEATS:
        parts.append(say("{}", repeated(job.every)))
    if job.params.get("groups"):
        parts.append(say("also to groups: {}", job.params["groups"]))
    parts.append(say("{}", first))
    return Text(" · ".join(p.plain for p in parts), " · ".join(p.html for p in parts))


@job(POST)
async def _fire(svc: Service, record: Job, late: bool) -> Params | None:
    """A scheduled post falls due: the post to make, into the rooms it names today."""
    community = await svc.db.communities.get(record.space_id)
    if community is None or community.state != CommunityState.ACTIVE:
        return None
    announcements = await svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS)
    rooms = [announcements] if announcements else []
    groups: str | None = record.params.get("groups")
    if groups:
        everyone = await svc.groups(community.space_id)
        wanted = {n.strip().lower() for n in groups.split(",")}
        rooms += [
            g for g in everyone if groups.strip().lower() == "all" or g.name.lower() in wanted
        ]
    content: dict[str, Any] = dict(record.params["content"])
    if late:
        tz = zone(record.zone)
        due = datetime.fromtimestamp(record.due_at / 1000, UTC).astimezone(tz)
        note = say("⏰ Sent late: this was scheduled for {}.", show(due, tz))
        text = lines(Text(content["body"], content["formatted_body"]), note)
        content.update(body=text.plain, formatted_body=text.html)
    return Post(
        key=f"schedule {record.id} at {record.due_at}",
        content=content,
        rooms=[r.room_id for r in rooms],
        space_id=community.space_id,
        names={r.room_id: r.name for r in rooms},
    )
