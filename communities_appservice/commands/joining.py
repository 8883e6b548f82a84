"""join, invite; requests, approve, deny: how people get into the community."""

from __future__ import annotations

import time

from ..core.notices import Text, page, say
from ..features.joining import Joining
from ..language import N_
from ..rules.limits import check_text
from ..rules.model import Role
from . import args
from .args import join_words
from .framework import Need, Request, command


@command(
    "requests",
    "[--page N]",
    "pending join requests",
    Need.ADMIN,
    flags={"page": str},
    max_args=0,
)
async def requests(req: Request) -> Text:
    number = args.page(req.flags.get("page"))
    pending = await Joining(req.service).pending(req.space)
    if not pending:
        return say("No one is waiting to join <b>{}</b>.", req.space.name)
    rooms = {r.room_id: r for r in await req.service.db.rooms.of_community(req.space.space_id)}
    parts = []
    for p in pending:
        room = rooms.get(p.room_id)
        where = "the community" if room is None or room.role == Role.SPACE else room.name
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(p.requested_at / 1000))
        said = f" — “{p.reason}”" if p.reason else ""
        parts.append(say("• {} for {} since {}{}", p.user_id, where, when, said))
    header = say("<b>{}</b>: {} waiting", req.space.name, len(pending))
    return page(header, parts, number, "Ask for another with <code>requests --page N</code>.")


@command(
    "approve",
    "<user> [--group NAME]",
    "let someone in who asked to join",
    Need.MEMBER,
    flags={"group": str},
    min_args=1,
    max_args=1,
)
async def approve(req: Request) -> Text:
    user = args.user(req.args[0])
    room = await Joining(req.service).approve(req.space, req.sender, user, req.flags.get("group"))
    where = req.space.name if room.role == Role.SPACE else room.name
    return say("Approved {}: invited to <b>{}</b>.", user, where)


@command(
    "deny",
    "<user> [reason] [--group NAME]",
    "turn down a request to join (not a ban)",
    Need.MEMBER,
    flags={"group": str},
    min_args=1,
)
async def deny(req: Request) -> Text:
    user, reason = args.user(req.args[0]), " ".join(req.args[1:])
    reason = check_text(reason, N_("reason"), 500)
    room = await Joining(req.service).deny(
        req.space, req.sender, user, req.flags.get("group"), reason
    )
    where = req.space.name if room.role == Role.SPACE else room.name
    return say("Denied {}'s request to join <b>{}</b>.", user, where)


@command(
    "join",
    "<invite|approval|open>",
    "how people join: by invitation, by asking an admin (knock), or with the link",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def join_mode(req: Request) -> Text:
    mode = args.join_mode(req.args[0])
    await Joining(req.service).set_join_mode(req.space, req.sender, mode)
    return say("<b>{}</b> is now {}.", req.space.name, join_words(mode))


@command("invite", "<user>", "invite someone to the community", Need.ADMIN, min_args=1, max_args=1)
async def invite(req: Request) -> Text:
    user = args.user(req.args[0])
    await Joining(req.service).invite(req.space, req.sender, user)
    return say("Invited {} to <b>{}</b>.", user, req.space.name)
