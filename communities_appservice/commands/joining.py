"""requests, approve, deny: answering knocks on the community or its approval groups."""

from __future__ import annotations

import time

from ..joining import JoinRequests
from ..rules import Role, check_text
from .framework import Need, Reply, Request, command, join_replies, say


@command("requests", "", "pending join requests", Need.ADMIN, max_args=0)
async def requests(req: Request) -> Reply:
    pending = await JoinRequests(req.service).pending(req.space)
    if not pending:
        return say("No one is waiting to join <b>{}</b>.", req.space.name)
    rooms = {r.room_id: r for r in await req.service.db.rooms.of_community(req.space.space_id)}
    lines = [say("<b>{}</b>: {} waiting", req.space.name, len(pending))]
    for p in pending:
        room = rooms.get(p.room_id)
        where = "the community" if room is None or room.role == Role.SPACE else room.name
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(p.requested_at / 1000))
        said = f" — “{p.reason}”" if p.reason else ""
        lines.append(say("• {} for {} since {}{}", p.user_id, where, when, said))
    return join_replies(*lines)


@command(
    "approve",
    "<user> [--group NAME]",
    "let someone in who asked to join",
    Need.MEMBER,
    flags={"group": str},
    min_args=1,
    max_args=1,
)
async def approve(req: Request) -> Reply:
    user = req.args[0]
    room = await JoinRequests(req.service).approve(
        req.space, req.sender, user, req.flags.get("group")
    )
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
async def deny(req: Request) -> Reply:
    user, reason = req.args[0], " ".join(req.args[1:])
    reason = check_text(reason, "reason", 500)
    room = await JoinRequests(req.service).deny(
        req.space, req.sender, user, req.flags.get("group"), reason
    )
    where = req.space.name if room.role == Role.SPACE else room.name
    return say("Denied {}'s request to join <b>{}</b>.", user, where)
