"""Moderation: remove, ban and unban across the community; common groups with someone."""

from __future__ import annotations

from ..core.notices import Text, lines, say
from ..features.moderation import OUTCOMES, Moderation, Outcome
from ..rules.moderation import Action
from . import args
from .framework import Need, Request, command


def _acted(action: Action, user: str, outcome: Outcome, req: Request) -> Text:
    reply = say(OUTCOMES[action], user, outcome.done, req.space.name)
    if not outcome.failed:
        return reply
    if outcome.refused:
        where = ", ".join(outcome.refused)
        return lines(reply, say("⚠️ Not done in {}: the homeserver refused there.", where))
    return lines(reply, say("⚠️ The homeserver refused in {} room(s); see the log.", outcome.failed))


@command(
    "remove",
    "<user> [reason]",
    "remove someone from every room of the community (not an admin)",
    Need.ADMIN,
    min_args=1,
)
async def remove(req: Request) -> Text:
    user, reason = args.user(req.args[0]), " ".join(req.args[1:])
    outcome = await Moderation(req.service).remove(req.space, req.sender, user, reason, req.origin)
    return _acted(Action.REMOVE, user, outcome, req)


@command(
    "ban",
    "<user> [reason]",
    "ban someone from every room of the community, even before they join (not an admin)",
    Need.ADMIN,
    min_args=1,
)
async def ban(req: Request) -> Text:
    user, reason = args.user(req.args[0]), " ".join(req.args[1:])
    outcome = await Moderation(req.service).ban(req.space, req.sender, user, reason, req.origin)
    return _acted(Action.BAN, user, outcome, req)


@command(
    "unban",
    "<user>",
    "lift a ban in every room of the community",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def unban(req: Request) -> Text:
    user = args.user(req.args[0])
    outcome = await Moderation(req.service).unban(req.space, req.sender, user, req.origin)
    return _acted(Action.UNBAN, user, outcome, req)


@command(
    "common",
    "<user>",
    "the groups of this community that you share with someone",
    Need.MEMBER,
    min_args=1,
    max_args=1,
)
async def common(req: Request) -> Text:
    user = args.user(req.args[0])
    groups = await Moderation(req.service).common(req.space, req.sender, user)
    if not groups:
        return say("You share no group of <b>{}</b> with {}.", req.space.name, user)
    parts = [say("Groups of <b>{}</b> you share with {}:", req.space.name, user)]
    return lines(*parts, *(say("• {}", group.name) for group in groups))
