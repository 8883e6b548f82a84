"""create, info, rename, describe, avatar, deactivate; group create, group add, group remove,
group list."""

from __future__ import annotations

from ..core.notices import Text, lines, say, verbatim
from ..features.lifecycle import Lifecycle, explained
from ..features.structure import Structure
from ..matrix.gateway import matrix_to
from ..rules.model import AdminRole, CommunityState, GroupAccess, JoinMode, Role
from . import args
from .args import access_words, join_words
from .framework import Need, Request, command


@command(
    "create",
    "<name> [--description TEXT] [--join invite|approval|open] [--groups NAME,NAME,…]",
    "create a community: space, announcements, admins room and groups; you become its owner",
    Need.CREATOR,
    flags={"description": str, "join": str, "groups": str},
    min_args=1,
    community=False,
)
async def create(req: Request) -> Text:
    mode = args.join_mode(req.flags.get("join", req.service.config.communities.default_join_mode))
    groups = [g for g in req.flags.get("groups", "").split(",") if g.strip()]
    community = await Structure(req.service).create_community(
        req.sender, req.rest(), req.flags.get("description", ""), mode, groups, req.origin
    )
    return say(
        "Created community <b>{}</b> ({}) with {} groups. You are its owner: you are invited "
        "to the space and to the admins room; once you join the space, the bot invites you "
        "to the announcement room and to every group.",
        community.name,
        join_words(mode),
        len(groups),
    )


@command(
    "info", "", "name, description, join mode, groups, admins and members", Need.MEMBER, max_args=0
)
async def info(req: Request) -> Text:
    view = await Structure(req.service).view(req.space)
    c = view.community
    owner = next((u for u, r in view.admins.items() if r is AdminRole.OWNER), c.owner)
    groups = ", ".join(g.name for g in view.groups) or "none yet"
    health = [say("⚠️ <b>Degraded</b>: {} problem(s) need an admin:", len(view.problems))]
    health += [say("• {}", text) for text in view.problems.values()]
    extra: list[Text] = []
    admins_room = await req.service.room_of_role(c.space_id, Role.ADMINS)
    if admins_room is not None and await req.service.is_admin(c.space_id, req.sender):
        # Not a child of the space (by design), so admins find it here.
        link = matrix_to(admins_room.room_id)
        extra.append(say('Admins room: <a href="{}">{}</a>', link, admins_room.name))
    if c.state == CommunityState.DEACTIVATED:
        extra.insert(0, say("🚫 Deactivated: its groups are rooms of their own now."))
    return lines(
        *(health if view.problems else []),
        say(
            "<b>{}</b><br>{}<br>Join: {}<br>Groups ({}/{}): {}<br>Admins: {}/{} (owner {})<br>"
            "Members: {}",
            c.name,
            c.description or "(no description)",
            join_words(JoinMode(c.join_mode)),
            len(view.groups),
            req.service.config.communities.max_groups,
            groups,
            len(view.admins),
            req.service.config.communities.max_admins,
            owner,
            view.members,
        ),
        *extra,
    )


@command("rename", "<name>", "change the community's name", Need.ADMIN, min_args=1)
async def rename(req: Request) -> Text:
    await Structure(req.service).rename(req.space, req.sender, req.rest())
    return say("Renamed the community to <b>{}</b>.", req.rest().strip())


@command("describe", "<text>", "change the community's description", Need.ADMIN, min_args=1)
async def describe(req: Request) -> Text:
    await Structure(req.service).describe(req.space, req.sender, req.rest())
    return say("Updated the description of <b>{}</b>.", req.space.name)


@command(
    "group create",
    "<name> [--topic TEXT] [--approval|--private]",
    "create a topic group in this community",
    Need.ADMIN,
    flags={"topic": str, "approval": bool, "private": bool},
    min_args=1,
)
async def group_create(req: Request) -> Text:
    access = args.group_access(bool(req.flags.get("approval")), bool(req.flags.get("private")))
    group = await Structure(req.service).groups.create(
        req.space, req.sender, req.rest(), req.flags.get("topic", ""), access, req.origin
    )
    return say("Created group <b>{}</b> ({}).", group.name, access_words(access))


@command(
    "group add",
    "<room id or alias>",
    "adopt an existing room as a group (invite the bot there with power 100 first)",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def group_add(req: Request) -> Text:
    group = await Structure(req.service).groups.adopt(
        req.space, req.sender, req.args[0], req.origin
    )
    return say("Added <b>{}</b> to <b>{}</b> as a group.", group.name, req.space.name)


@command(
    "group remove",
    "<group>",
    "unlink a group from the community (the room lives on)",
    Need.ADMIN,
    min_args=1,
)
async def group_remove(req: Request) -> Text:
    group = await Structure(req.service).remove_group(req.space, req.sender, req.rest(), req.origin)
    return say(
        "Removed <b>{}</b> from <b>{}</b>; the room itself still exists.",
        group.name,
        req.space.name,
    )


@command("group list", "", "list the community's groups", Need.MEMBER, max_args=0)
async def group_list(req: Request) -> Text:
    groups = await req.service.groups(req.space.space_id)
    if not groups:
        return say("<b>{}</b> has no groups yet.", req.space.name)
    parts = [say("<b>{}</b> groups ({}):", req.space.name, len(groups))]
    parts += [say("• {} — {}", g.name, access_words(GroupAccess(g.access))) for g in groups]
    return lines(*parts)


@command(
    "deactivate",
    "--confirm",
    "end the community: groups unlinked (they live on), announcements closed",
    Need.OWNER,
    flags={"confirm": bool},
    max_args=0,
)
async def deactivate(req: Request) -> Text:
    if not req.flags.get("confirm"):
        groups = await req.service.groups(req.space.space_id)
        return verbatim(explained(req.space, len(groups)))
    await Lifecycle(req.service).deactivate(req.space, req.sender, req.origin)
    return say("Deactivated <b>{}</b>. Only <code>info</code> answers for it now.", req.space.name)


@command(
    "avatar",
    "",
    "as a reply to an image: make it the community's photo",
    Need.ADMIN,
    max_args=0,
)
async def avatar(req: Request) -> Text:
    await Lifecycle(req.service).set_avatar(req.space, req.sender, req.room_id, req.reply_to)
    return say("The community's photo is set.")
