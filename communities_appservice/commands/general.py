"""help, create, info, rename, describe, invite."""

from __future__ import annotations

from ..building import Building
from ..errors import Invalid
from ..rules import AdminRole, JoinMode
from .framework import REGISTRY, Need, Reply, Request, command, join_replies, say

JOIN_WORDS = {
    JoinMode.INVITE: "invite only",
    JoinMode.APPROVAL: "approval by an admin",
    JoinMode.OPEN: "open to anyone with the link",
}


@command(
    "help",
    "[command]",
    "list the commands, or show one command's usage",
    Need.ANYONE,
    max_args=3,
    community=False,
)
async def help_(req: Request) -> Reply:
    prefix = req.service.config.communities.command_prefix
    if req.args:
        name = " ".join(req.args).lower()
        spec = REGISTRY.get(name)
        if spec is None:
            raise Invalid(f"There is no command {name!r}.")
        return say("<code>{} {}</code> — {}", prefix, spec.usage_line, spec.summary)
    lines = [say("<b>Commands</b> (type them after <code>{}</code>):", prefix)]
    lines += [
        say("<code>{}</code> — {}", spec.usage_line, spec.summary)
        for spec in sorted(REGISTRY.values(), key=lambda s: s.name)
    ]
    return join_replies(*lines)


@command(
    "create",
    "<name> [--description TEXT] [--join invite|approval|open] [--groups NAME,NAME,…]",
    "create a community: space, announcements, admins room and groups; you become its owner",
    Need.CREATOR,
    flags={"description": str, "join": str, "groups": str},
    min_args=1,
    community=False,
)
async def create(req: Request) -> Reply:
    mode = _join_mode(req.flags.get("join", req.service.config.communities.default_join_mode))
    groups = [g for g in req.flags.get("groups", "").split(",") if g.strip()]
    community = await Building(req.service).create_community(
        req.sender, req.rest(), req.flags.get("description", ""), mode, groups, req.origin
    )
    return say(
        "Created community <b>{}</b> ({}) with {} groups. You are its owner: accept the "
        "invitations to the space, the announcement room and the admins room.",
        community.name,
        JOIN_WORDS[mode],
        len(groups) or "no",
    )


@command(
    "info", "", "name, description, join mode, groups, admins and members", Need.MEMBER, max_args=0
)
async def info(req: Request) -> Reply:
    view = await req.service.view(req.space)
    c = view.community
    owner = next((u for u, r in view.admins.items() if r is AdminRole.OWNER), c.owner)
    groups = ", ".join(g.name for g in view.groups) or "none yet"
    problems = await req.service.db.problems.of(c.space_id)
    health = [say("⚠️ <b>Degraded</b>: {} problem(s) need an admin:", len(problems))]
    health += [say("• {}", text) for text in problems.values()]
    return join_replies(
        *(health if problems else []),
        say(
            "<b>{}</b><br>{}<br>Join: {}<br>Groups ({}/{}): {}<br>Admins: {}/{} (owner {})<br>"
            "Members: {}",
            c.name,
            c.description or "(no description)",
            JOIN_WORDS[JoinMode(c.join_mode)],
            len(view.groups),
            req.service.config.communities.max_groups,
            groups,
            len(view.admins),
            req.service.config.communities.max_admins,
            owner,
            view.members,
        ),
    )


@command(
    "join",
    "<invite|approval|open>",
    "how people join: by invitation, by asking an admin (knock), or with the link",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def join_mode(req: Request) -> Reply:
    mode = _join_mode(req.args[0])
    await req.service.set_join_mode(req.space, req.sender, mode)
    return say("<b>{}</b> is now {}.", req.space.name, JOIN_WORDS[mode])


def _join_mode(word: str) -> JoinMode:
    try:
        return JoinMode(word.lower())
    except ValueError:
        raise Invalid(f"The join mode is invite, approval or open, not {word!r}.") from None


@command("rename", "<name>", "change the community's name", Need.ADMIN, min_args=1)
async def rename(req: Request) -> Reply:
    await req.service.rename(req.space, req.sender, req.rest())
    return say("Renamed the community to <b>{}</b>.", req.rest().strip())


@command("describe", "<text>", "change the community's description", Need.ADMIN, min_args=1)
async def describe(req: Request) -> Reply:
    await req.service.describe(req.space, req.sender, req.rest())
    return say("Updated the description of <b>{}</b>.", req.space.name)


@command("invite", "<user>", "invite someone to the community", Need.ADMIN, min_args=1, max_args=1)
async def invite(req: Request) -> Reply:
    user = req.args[0]
    await req.service.invite(req.space, req.sender, user)
    return say("Invited {} to <b>{}</b>.", user, req.space.name)
