"""group suggest, group pending, group accept, group reject."""

from __future__ import annotations

from ..core.notices import Text, page, say
from ..features.suggestions import Suggestions
from . import args
from .framework import Need, Request, command


@command(
    "group suggest", "<room or name>", "propose a group to the admins", Need.MEMBER, min_args=1
)
async def suggest(req: Request) -> Text:
    s = await Suggestions(req.service).suggest(req.space, req.sender, req.rest())
    return say("Suggested <b>{}</b> (#{}); the admins will decide.", s.name, s.id)


@command(
    "group pending",
    "[--page N]",
    "suggested groups waiting for an answer",
    Need.ADMIN,
    flags={"page": str},
    max_args=0,
)
async def pending(req: Request) -> Text:
    number = args.page(req.flags.get("page"))
    waiting = await Suggestions(req.service).pending(req.space)
    if not waiting:
        return say("No suggested groups are waiting in <b>{}</b>.", req.space.name)
    parts = []
    for s in waiting:
        what = s.room_id or "new group"
        parts.append(say("• #{} {} ({}) by {}", s.id, s.name, what, s.sender))
    header = say("<b>{}</b>: {} suggested", req.space.name, len(waiting))
    return page(header, parts, number, "Ask for another with <code>group pending --page N</code>.")


@command(
    "group accept",
    "<#id>",
    "accept a suggestion: create the group or adopt the room",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def accept(req: Request) -> Text:
    group = await Suggestions(req.service).accept(req.space, req.sender, req.args[0], req.origin)
    return say("Accepted: <b>{}</b> is now a group of <b>{}</b>.", group.name, req.space.name)


@command("group reject", "<#id>", "turn a suggestion down", Need.ADMIN, min_args=1, max_args=1)
async def reject(req: Request) -> Text:
    s = await Suggestions(req.service).reject(req.space, req.sender, req.args[0])
    return say("Rejected the suggestion #{} ({}).", s.id, s.name)
