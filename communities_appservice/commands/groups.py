"""group create, group add, group remove, group list."""

from __future__ import annotations

from ..building import Building
from ..errors import Invalid
from ..rules import GroupAccess
from .framework import Need, Reply, Request, command, join_replies, say

ACCESS_WORDS = {
    GroupAccess.OPEN: "open to members",
    GroupAccess.APPROVAL: "needs approval",
    GroupAccess.PRIVATE: "private",
}


@command(
    "group create",
    "<name> [--topic TEXT] [--approval|--private]",
    "create a topic group in this community",
    Need.ADMIN,
    flags={"topic": str, "approval": bool, "private": bool},
    min_args=1,
)
async def group_create(req: Request) -> Reply:
    if req.flags.get("approval") and req.flags.get("private"):
        raise Invalid("Choose either --approval or --private, not both.")
    access = GroupAccess.OPEN
    if req.flags.get("approval"):
        access = GroupAccess.APPROVAL
    elif req.flags.get("private"):
        access = GroupAccess.PRIVATE
    group = await Building(req.service).create_group(
        req.space, req.sender, req.rest(), req.flags.get("topic", ""), access, req.origin
    )
    return say("Created group <b>{}</b> ({}).", group.name, ACCESS_WORDS[access])


@command(
    "group add",
    "<room id or alias>",
    "adopt an existing room as a group (invite the bot there with power 100 first)",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def group_add(req: Request) -> Reply:
    group = await Building(req.service).adopt_group(req.space, req.sender, req.args[0], req.origin)
    return say("Added <b>{}</b> to <b>{}</b> as a group.", group.name, req.space.name)


@command(
    "group remove",
    "<group>",
    "unlink a group from the community (the room lives on)",
    Need.ADMIN,
    min_args=1,
)
async def group_remove(req: Request) -> Reply:
    group = await Building(req.service).remove_group(req.space, req.sender, req.rest(), req.origin)
    return say(
        "Removed <b>{}</b> from <b>{}</b>; the room itself still exists.",
        group.name,
        req.space.name,
    )


@command("group list", "", "list the community's groups", Need.MEMBER, max_args=0)
async def group_list(req: Request) -> Reply:
    view = await req.service.view(req.space)
    if not view.groups:
        return say("<b>{}</b> has no groups yet.", req.space.name)
    lines = [say("<b>{}</b> groups ({}):", req.space.name, len(view.groups))]
    lines += [say("• {} — {}", g.name, ACCESS_WORDS[GroupAccess(g.access)]) for g in view.groups]
    return join_replies(*lines)
