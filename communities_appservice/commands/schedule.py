"""schedule, scheduled, unschedule, timezone."""

from __future__ import annotations

from datetime import UTC, datetime

from .. import language
from ..core.notices import Text, lines, say
from ..errors import Forbidden
from ..features.schedule import Schedule, community_zone, every_of, listed, repeated
from ..language import N_
from ..rules.when import show, split_when
from . import args
from .framework import REFUSALS, Need, Request, command

FLAGS: dict[str, type] = {"every": str, "groups": str}


@command(
    "schedule",
    "<when> [--every day|week|month] [--groups all|NAME,…] <text>",
    "post in the announcement room (and groups) at a time, once or repeatedly",
    Need.ADMIN,
    flags=FLAGS,
    min_args=1,
    text=True,
)
async def schedule(req: Request) -> Text:
    tz = community_zone(req.service, req.space)
    when, used = split_when(req.args, now=datetime.now(UTC), tz=tz, language=language.current())
    more, text = req.text_after(used, FLAGS)
    flags = {**req.flags, **more}
    every = every_of(flags.get("every"))
    done = await Schedule(req.service).add(
        req.space, req.sender, when, every, flags.get("groups"), text
    )
    if every is None:
        return say("Scheduled post #{} for {}.", done.job_id, show(when, tz))
    return say(
        "Scheduled post #{} for {}, then {}.", done.job_id, show(when, tz), repeated(every.value)
    )


@command("scheduled", "", "the posts waiting to be sent", Need.ADMIN, max_args=0)
async def scheduled(req: Request) -> Text:
    jobs = await Schedule(req.service).pending(req.space)
    if not jobs:
        return say("No scheduled posts in <b>{}</b>.", req.space.name)
    return lines(
        say("<b>{}</b>: {} scheduled posts", req.space.name, len(jobs)),
        *(say("• {}", listed(job).plain) for job in jobs),
    )


@command("unschedule", "<#id>", "cancel a scheduled post", Need.ADMIN, min_args=1, max_args=1)
async def unschedule(req: Request) -> Text:
    job_id = args.number(req.args[0], N_("scheduled post"))
    await Schedule(req.service).cancel(req.space, req.sender, job_id)
    return say("Cancelled scheduled post #{}.", job_id)


@command(
    "timezone",
    "[<Area/City>]",
    "the community's time zone (admins set it); times you type and see are in it",
    Need.MEMBER,
    max_args=1,
)
async def timezone(req: Request) -> Text:
    svc = req.service
    if not req.args:
        tz = community_zone(svc, req.space)
        return say(
            "<b>{}</b> is on {} time (now {}).", req.space.name, tz.key, show(datetime.now(UTC), tz)
        )
    if not await svc.is_admin(req.space.space_id, req.sender):
        raise Forbidden(REFUSALS[Need.ADMIN])
    tz = await Schedule(svc).set_zone(req.space, req.sender, req.args[0])
    return say(
        "<b>{}</b> is now on {} time (now {}). Posts already scheduled keep their own zone.",
        req.space.name,
        tz.key,
        show(datetime.now(UTC), tz),
    )
