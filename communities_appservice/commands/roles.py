"""Roles: admin add, admin remove, admin list, owner transfer, group admin add/remove."""

from __future__ import annotations

from ..core.notices import Text, lines, say
from ..features.roles import Roles
from ..rules.model import AdminRole
from . import args
from .framework import Need, Request, command


@command(
    "admin add",
    "<user>",
    "make a member an admin (at most {max_admins} admins, owner included)",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def admin_add(req: Request) -> Text:
    user = args.user(req.args[0])
    refused = await Roles(req.service).add_admin(req.space, req.sender, user, req.origin)
    return _noting(refused, say("{} is now an admin of <b>{}</b>.", user, req.space.name))


@command(
    "admin remove",
    "<user>",
    "dismiss an admin (never the owner)",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def admin_remove(req: Request) -> Text:
    user = args.user(req.args[0])
    refused = await Roles(req.service).remove_admin(req.space, req.sender, user, req.origin)
    return _noting(refused, say("{} is no longer an admin of <b>{}</b>.", user, req.space.name))


def _noting(refused: list[str], done: Text) -> Text:
    """The acknowledgement, and the rooms where the homeserver refused the new levels."""
    if not refused:
        return done
    return lines(
        done,
        say(
            "⚠️ The homeserver refused the change in {}; <code>info</code> says what to do there.",
            ", ".join(refused),
        ),
    )


@command("admin list", "", "list the admins", Need.MEMBER, max_args=0)
async def admin_list(req: Request) -> Text:
    roles = await req.service.admin_roles(req.space.space_id)
    limit = req.service.config.communities.max_admins
    parts = [say("<b>{}</b> admins ({}/{}):", req.space.name, len(roles), limit)]
    parts += [
        say("• {}{}", user, " (owner)" if role is AdminRole.OWNER else "")
        for user, role in roles.items()
    ]
    return lines(*parts)


@command(
    "owner transfer",
    "<user>",
    "hand the community to another admin; you stay an admin",
    Need.OWNER,
    min_args=1,
    max_args=1,
)
async def owner_transfer(req: Request) -> Text:
    user = args.user(req.args[0])
    await Roles(req.service).transfer_owner(req.space, req.sender, user)
    return say("{} is now the owner of <b>{}</b>.", user, req.space.name)


@command(
    "group admin add",
    "<user> [--group NAME]",
    "make a member of a group its admin (in that group only)",
    Need.GROUP_ADMIN,
    min_args=1,
    max_args=1,
    group=True,
)
async def group_admin_add(req: Request) -> Text:
    user = args.user(req.args[0])
    await Roles(req.service).add_group_admin(req.space, req.group, req.sender, user)
    return say("{} is now an admin of the group <b>{}</b>.", user, req.group.name)


@command(
    "group admin remove",
    "<user> [--group NAME]",
    "dismiss a group admin",
    Need.GROUP_ADMIN,
    min_args=1,
    max_args=1,
    group=True,
)
async def group_admin_remove(req: Request) -> Text:
    user = args.user(req.args[0])
    await Roles(req.service).remove_group_admin(req.space, req.group, req.sender, user)
    return say("{} is no longer an admin of the group <b>{}</b>.", user, req.group.name)
