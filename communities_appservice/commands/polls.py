"""poll, poll results, poll end, polls."""

from __future__ import annotations

from ..core.notices import Text, lines, say
from ..features.polls import Polls, check_options, shown
from ..language import N_
from ..rules.model import Role
from . import args
from .framework import Need, Request, command


@command(
    "poll",
    '"<question>" "<option>" "<option>" … [--multiple] [--groups all|NAME,…]',
    "a poll members answer in their client (2 to 20 options); typed in a group, in that group",
    Need.ADMIN,
    flags={"multiple": bool, "groups": str},
    min_args=1,
)
async def poll(req: Request) -> Text:
    question, options = check_options(req.args)
    posted = await Polls(req.service).create(
        req.space,
        req.sender,
        question,
        options,
        multiple=bool(req.flags.get("multiple")),
        groups=req.flags.get("groups"),
        here=req.room_id,
        origin=req.origin,
    )
    names = ", ".join(
        "the announcement room" if r.role == Role.ANNOUNCEMENTS else r.name
        for r in posted.rooms
        if r.room_id in posted.done.sent
    )
    said = say("Poll #{} is open in {}.", posted.poll_id, names)
    failed = [r.name for r in posted.rooms if r.room_id in posted.done.failed]
    if failed:
        said = lines(said, say("⚠️ Not posted in: {}.", ", ".join(failed)))
    return said


@command(
    "poll results",
    "<#id>",
    "a poll's votes so far, across every room it is in",
    Need.MEMBER,
    min_args=1,
    max_args=1,
)
async def results(req: Request) -> Text:
    polls = Polls(req.service)
    found = await polls.find(req.space, args.number(req.args[0], N_("poll")))
    return shown(found, await polls.results(found))


@command(
    "poll end",
    "<#id>",
    "close a poll in every room it is in, with its results",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def end(req: Request) -> Text:
    ended, tally = await Polls(req.service).end(
        req.space, req.sender, args.number(req.args[0], N_("poll")), req.origin
    )
    ended.state = "ended"
    return lines(say("Poll #{} has ended.", ended.id), shown(ended, tally))


@command("polls", "", "the community's open polls", Need.MEMBER, max_args=0)
async def open_polls(req: Request) -> Text:
    found = await Polls(req.service).open_polls(req.space)
    if not found:
        return say("No open polls in <b>{}</b>.", req.space.name)
    return lines(
        say("<b>{}</b>: {} open polls", req.space.name, len(found)),
        *(say("• #{} {}", p.id, p.question) for p in found),
    )
