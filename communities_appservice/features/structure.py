"""The community's structure: create it (space, announcements, groups, admins room), name
and describe it, and unlink groups; what `info` shows.

Creating a community is an operation, so that a crash in the middle is finished after the
restart, or undone when it cannot be: no orphan room, no half-built community. Making one
group, new or adopted, lives in `core.groups` (suggestions make groups too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from mautrix.types import RoomID, UserID

from ..core.checks import RoomCheck, check
from ..core.groups import Groups
from ..core.notices import say
from ..core.operations import NOWHERE, Origin, operation
from ..core.rooms import (
    link_child,
    quietly,
    record_room,
    show_bot_as,
    site,
    undo_rooms,
    unlink_group,
)
from ..core.run import Params, Run
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Forbidden
from ..language import N_
from ..rules.blueprints import child_state, new_power, room_request, state_event
from ..rules.joins import join_rule_content, marker_content, space_join_rule
from ..rules.limits import check_group_names, check_name, check_text
from ..rules.model import (
    MARKER_EVENT,
    AdminRole,
    AuditAction,
    CommunityState,
    GroupAccess,
    JoinMode,
    Permission,
    Role,
)
from ..tasks import bounded

log = logging.getLogger("communities.structure")

# Rooms of a new community, in `position` order: the space, announcements, groups, admins.
SPACE_POSITION = 0
ANNOUNCEMENTS_POSITION = 1
FIRST_GROUP_POSITION = 2


@dataclass(frozen=True)
class Create(Params):
    owner: UserID
    name: str
    description: str
    join_mode: JoinMode
    groups: list[str]


@dataclass(frozen=True)
class GroupRemove(Params):
    room_id: RoomID
    name: str
    access: GroupAccess


@dataclass
class CommunityView:
    """What `info` shows."""

    community: Community
    groups: list[CommunityRoom]
    admins: dict[UserID, AdminRole]
    members: int
    problems: dict[str, str]


class Structure:
    def __init__(self, service: Service) -> None:
        self.svc = service
        self.groups = Groups(service)

    async def create_community(
        self,
        sender: UserID,
        name: str,
        description: str,
        join_mode: JoinMode,
        groups: Iterable[str] = (),
        origin: Origin = NOWHERE,
    ) -> Community:
        svc = self.svc
        if svc.permission(sender) < Permission.CREATOR:
            raise Forbidden("You are not allowed to create communities on this server.")
        name = check_name(name)
        description = check_text(description, N_("description"))
        group_names = check_group_names(groups, svc.config.communities.max_groups)
        params = Create(sender, name, description, join_mode, group_names)
        run = await svc.ops.run(params, sender, origin)
        community = await svc.db.communities.get(run.op.space_id)
        assert community is not None
        return community

    async def remove_group(
        self, community: Community, sender: UserID, ref: str, origin: Origin = NOWHERE
    ) -> CommunityRoom:
        group = await self.svc.find_group(community, ref)
        params = GroupRemove(group.room_id, group.name, GroupAccess(group.access))
        await self.svc.ops.run(params, sender, origin, community.space_id)
        return group

    async def rename(self, community: Community, sender: UserID, name: str) -> None:
        svc = self.svc
        name = check_name(name)
        # Under the community's lock: reconciliation, which takes it too, sees the records
        # and the rooms (the bot's name in each) agree, never half of the change.
        async with svc.ops.lock(community.space_id):
            await svc.gw.send_state(community.space_id, "m.room.name", {"name": name})
            await svc.db.communities.set_name(community.space_id, name)
            await svc.db.rooms.set_name(community.space_id, name)
            rooms = await svc.db.rooms.of_community(community.space_id)
            await bounded(quietly(show_bot_as(svc, room.room_id, name)) for room in rooms)
        await svc.audit(community.space_id, sender, AuditAction.RENAME, community.space_id, name)

    async def describe(self, community: Community, sender: UserID, text: str) -> None:
        svc = self.svc
        text = check_text(text, N_("description"))
        await svc.gw.send_state(community.space_id, "m.room.topic", {"topic": text})
        await svc.db.communities.set_description(community.space_id, text)
        await svc.audit(community.space_id, sender, AuditAction.DESCRIBE, community.space_id)

    async def view(self, community: Community) -> CommunityView:
        db = self.svc.db
        return CommunityView(
            community=community,
            groups=await self.svc.groups(community.space_id),
            admins=await db.admins.roles(community.space_id),
            members=await db.members.count(community.space_id),
            problems=await db.problems.of(community.space_id),
        )


# --- operations ---------------------------------------------------------------------------


def _create_keys(params: Create) -> list[str]:
    """The step keys of every room `create` makes, in order."""
    groups = [f"group {i}" for i in range(len(params.groups))]
    return ["space", "announcements", *groups, "admins"]


async def _undo_create(svc: Service, run: Run[Create], reason: str) -> str:
    count = await undo_rooms(svc, run, reason, _create_keys(run.params))
    if run.op.space_id:
        await svc.db.communities.delete(run.op.space_id)
    return say(
        "Could not create the community {}: {}. Removed the {} rooms made so far; nothing "
        "is left of it.",
        run.params.name,
        reason,
        count,
    ).plain


@operation("create", Create, undo=_undo_create)
async def _create(svc: Service, run: Run[Create]) -> str:
    p, where = run.params, site(svc)
    name, owner = p.name, p.owner
    admins = [owner]
    space_id = await run.create_room(
        "space",
        room_request(
            where,
            name,
            topic=p.description,
            invite=admins,
            space=True,
            power=new_power(where, Role.SPACE, admins),
            state=[
                state_event("m.room.join_rules", join_rule_content(space_join_rule(p.join_mode))),
                state_event("m.room.history_visibility", {"history_visibility": "shared"}),
            ],
        ),
    )
    await run.set_space(space_id)

    async def record_community() -> None:
        if await svc.db.communities.get(space_id) is None:
            community = Community(
                space_id=space_id,
                name=name,
                description=p.description,
                join_mode=p.join_mode,
                owner=owner,
                state=CommunityState.CREATING,
                room_version=svc.config.communities.room_version,
                created_at=now_ms(),
            )
            async with svc.db.transaction():
                await svc.db.communities.insert(community)
                await svc.db.admins.put(space_id, owner, AdminRole.OWNER, now_ms())
        await record_room(svc, space_id, space_id, Role.SPACE, name, SPACE_POSITION)
        await svc.gw.send_state(space_id, MARKER_EVENT, marker_content(space_id, Role.SPACE))
        await show_bot_as(svc, space_id, name)

    await run.step("record space", record_community)

    async def child(key: str, title: str, role: Role, rule: str, topic: str, position: int) -> None:
        # The space's rooms invite the owner once they have joined the space (a client
        # shows a room invitation inside a space it knows); the admins room, outside the
        # space, at once.
        room_id = await run.create_room(
            key,
            room_request(
                where,
                title,
                topic=topic,
                invite=admins if role is Role.ADMINS else [],
                power=new_power(where, role, admins),
                state=child_state(where, space_id, role, rule),
            ),
        )

        async def record() -> None:
            await record_room(svc, space_id, room_id, role, title, position)
            await show_bot_as(svc, room_id, name)
            if role is not Role.ADMINS:
                await link_child(svc, space_id, room_id, role, position)

        await run.step(f"record {key}", record)

    # The rooms' names and topics in the language spoken to the creator, kept as first
    # made so that a resumed creation names the rest the same way.
    titles = await run.keep(
        "titles",
        {
            "announcements": say("📢 {} · Announcements", name).plain,
            "announcements topic": say("Announcements of {}", name).plain,
            "admins": say("🛡️ {} · Admins", name).plain,
            "admins topic": say("Admins of {}: join requests, alerts and audit notes", name).plain,
        },
    )
    await child(
        "announcements",
        titles["announcements"],
        Role.ANNOUNCEMENTS,
        "restricted",
        titles["announcements topic"],
        ANNOUNCEMENTS_POSITION,
    )
    groups = list(p.groups)
    await bounded(
        child(f"group {i}", group, Role.GROUP, "restricted", "", FIRST_GROUP_POSITION + i)
        for i, group in enumerate(groups)
    )
    await child(
        "admins",
        titles["admins"],
        Role.ADMINS,
        "invite",
        titles["admins topic"],
        FIRST_GROUP_POSITION + len(groups),
    )

    async def activate() -> None:
        await svc.db.communities.set_state(space_id, CommunityState.ACTIVE)
        detail = name if not groups else f"{name}, groups: {', '.join(groups)}"
        await svc.audit(space_id, owner, AuditAction.CREATE, space_id, detail)

    await run.step("activate", activate)
    await run.release_tags()
    made = f" with {len(groups)} groups" if groups else ""
    return say("Created the community {}{}.", name, made).plain


@operation("group remove", GroupRemove)
async def _group_remove(svc: Service, run: Run[GroupRemove]) -> str:
    p, space_id = run.params, run.op.space_id
    is_open = p.access is GroupAccess.OPEN
    await run.step("unlink", lambda: unlink_group(svc, space_id, p.room_id, is_open))
    await run.step("forget", lambda: svc.db.rooms.delete(p.room_id))
    await run.step(
        "audit",
        lambda: svc.audit(space_id, run.op.actor, AuditAction.GROUP_REMOVE, p.room_id, p.name),
    )
    return say("Removed {} from the community.", p.name).plain


@check(Role.SPACE, Role.ANNOUNCEMENTS, Role.GROUP, Role.ADMINS)
async def _bot_shows_as_the_community(check: RoomCheck) -> None:
    """In every room the bot goes by the community's name (rooms made before it did, or
    renamed since)."""
    if await show_bot_as(check.svc, check.room.room_id, check.community.name):
        await check.repaired(say("the bot now shows as {}", check.community.name).plain)
