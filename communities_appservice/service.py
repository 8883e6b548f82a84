"""Use cases: load from the database, decide with `rules`, act through the gateway, save.

This is the only module where I/O meets the rules. Commands call it with already-parsed
arguments; every refusal is a `UserError` raised before anything changes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import rules
from .config import Config
from .db import Tables, now_ms
from .db.audit import AuditEntry
from .db.community import Community
from .db.room import CommunityRoom
from .errors import Conflict, Invalid, NotFound
from .matrix.gateway import Gateway, MatrixError
from .operations import Operations
from .rules import AdminRole, JoinMode, Levels, Permission, Role

log = logging.getLogger("communities.service")
T = TypeVar("T")
# Bulk Matrix calls (one per room, one per member) run at most this many at a time.
CONCURRENCY = 8


async def bounded(calls: Iterable[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """Await every call, at most `limit` at once; the results in order.

    The first failure propagates, once every other call has been cancelled and has ended: an
    operation that fails (and may be undone) leaves nothing running behind its back."""
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    pending = list(calls)
    tasks = [asyncio.ensure_future(run(c)) for c in pending]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for call in pending:  # calls whose turn never came
            if inspect.iscoroutine(call) and inspect.getcoroutinestate(call) == "CORO_CREATED":
                call.close()
        raise


@dataclass
class CommunityView:
    """What `info` shows."""

    community: Community
    groups: list[CommunityRoom]
    admins: dict[str, AdminRole]
    members: int


class Service:
    def __init__(self, config: Config, tables: Tables, gateway: Gateway) -> None:
        self.config = config
        self.db = tables
        self.gw = gateway
        self.bot = config.bot_mxid
        self.server_name = config.homeserver.domain
        self.ops = Operations(self)

    # --- who may do what -----------------------------------------------------------------

    def permission(self, user_id: str) -> Permission:
        return rules.permission_for(user_id, self.config.permissions)

    async def admin_roles(self, space_id: str) -> dict[str, AdminRole]:
        return await self.db.admins.roles(space_id)

    async def is_admin(self, space_id: str, user_id: str) -> bool:
        if self.permission(user_id) is Permission.ADMIN:
            return True
        return user_id in await self.db.admins.roles(space_id)

    async def is_group_admin(self, room_id: str, user_id: str) -> bool:
        return await self.db.group_admins.is_admin(room_id, user_id)

    async def is_member(self, space_id: str, user_id: str) -> bool:
        return await self.db.members.is_member(space_id, user_id) or await self.is_admin(
            space_id, user_id
        )

    async def community_of_room(self, room_id: str) -> Community | None:
        room = await self.db.rooms.get(room_id)
        if room is None:
            return None
        community = await self.db.communities.get(room.space_id)
        return community if community and community.state == "active" else None

    async def is_dm(self, room_id: str, user_id: str) -> bool:
        """A room outside every community where only the bot and this user are joined."""
        if await self.db.rooms.get(room_id) is not None:
            return False
        try:
            return await self.gw.joined_members(room_id) == {self.bot, user_id}
        except MatrixError:
            return False

    async def find_community(self, ref: str) -> Community:
        """A community by space id, alias of one of its rooms, or exact name."""
        room_id = ref
        if rules.is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref) or ""
        if rules.is_room_id(room_id):
            community = await self.community_of_room(room_id)
            if community:
                return community
        matches = await self.db.communities.find_by_name(ref)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Conflict(f"Several communities are called {ref!r}; use the space ID.")
        raise NotFound(f"No community {ref!r} here.")

    async def group_of_room(self, community: Community, room_id: str) -> CommunityRoom | None:
        """The group of this community that `room_id` is, if it is one."""
        room = await self.db.rooms.get(room_id)
        if room is None or room.space_id != community.space_id or room.role != Role.GROUP:
            return None
        return room

    async def communities_of(self, user_id: str, *, admin: bool) -> list[Community]:
        ids = set(await self.db.admins.communities_of(user_id))
        if not admin:
            ids.update(await self.db.members.communities_of(user_id))
        found = [await self.db.communities.get(i) for i in sorted(ids)]
        return [c for c in found if c is not None and c.state == "active"]

    # --- audit -------------------------------------------------------------------------

    async def audit(
        self,
        space_id: str,
        actor: str,
        action: str,
        target: str = "",
        detail: str = "",
        result: str = "ok",
    ) -> None:
        await self.db.audit.add(space_id, actor, action, target, detail, result, now_ms())
        log.info("audit %s: %s %s %s (%s)", space_id, actor, action, target, result)

    async def audit_log(self, community: Community, limit: int) -> list[AuditEntry]:
        """The community's latest audit entries, newest first."""
        return await self.db.audit.recent(community.space_id, limit)

    # --- room state from the records ------------------------------------------------------

    def levels(self, community: Community, room: CommunityRoom) -> Levels:
        return Levels.for_room(community.room_version, bot_is_creator=not room.adopted)

    async def power_for(self, community: Community, room: CommunityRoom) -> dict[str, Any]:
        admins = await self.db.admins.roles(community.space_id)
        group_admins: list[str] = []
        if room.role == Role.GROUP:
            group_admins = await self.db.group_admins.of_room(room.room_id)
        return rules.power_levels(
            Role(room.role),
            self.levels(community, room),
            bot=self.bot,
            admins=admins,
            group_admins=group_admins,
        )

    async def apply_room_power(self, community: Community, room: CommunityRoom) -> None:
        """Write the power levels the records demand into one room of the community."""
        content = await self.power_for(community, room)
        await self.gw.send_state(room.room_id, "m.room.power_levels", content)

    async def apply_power(self, community: Community) -> None:
        """Write the power levels the records demand into every room of the community."""
        rooms = await self.db.rooms.of_community(community.space_id)
        contents = [await self.power_for(community, room) for room in rooms]
        await bounded(
            self.gw.send_state(room.room_id, "m.room.power_levels", content)
            for room, content in zip(rooms, contents, strict=True)
        )

    # --- simple edits ----------------------------------------------------------------------

    async def rename(self, community: Community, sender: str, name: str) -> None:
        name = rules.check_name(name)
        await self.gw.send_state(community.space_id, "m.room.name", {"name": name})
        await self.db.communities.set_name(community.space_id, name)
        await self.db.rooms.set_name(community.space_id, name)
        await self.audit(community.space_id, sender, "rename", community.space_id, name)

    async def describe(self, community: Community, sender: str, text: str) -> None:
        text = rules.check_text(text, "description")
        await self.gw.send_state(community.space_id, "m.room.topic", {"topic": text})
        await self.db.communities.set_description(community.space_id, text)
        await self.audit(community.space_id, sender, "describe", community.space_id)

    async def set_join_mode(self, community: Community, sender: str, mode: JoinMode) -> None:
        """Invite only, approval (knock) or open (public): the space's join rule."""
        if community.join_mode == mode:
            raise Conflict(f"{community.name} is already in {mode} mode.")
        # The records first: reconciliation, which may look at the space meanwhile, then
        # repairs towards the new mode, never back to the old one.
        content = rules.join_rule_content(rules.space_join_rule(mode))
        await self.db.communities.set_join_mode(community.space_id, str(mode))
        try:
            await self.gw.send_state(community.space_id, "m.room.join_rules", content)
        except MatrixError:
            await self.db.communities.set_join_mode(community.space_id, community.join_mode)
            raise
        community.join_mode = str(mode)
        await self.audit(community.space_id, sender, "join mode", str(mode))

    async def view(self, community: Community) -> CommunityView:
        return CommunityView(
            community=community,
            groups=await self.db.rooms.of_community(community.space_id, str(Role.GROUP)),
            admins=await self.db.admins.roles(community.space_id),
            members=await self.db.members.count(community.space_id),
        )

    async def invite(self, community: Community, sender: str, user: str) -> None:
        rules.check_user_id(user)
        membership = await self.gw.membership(community.space_id, user)
        if membership == "join":
            raise Conflict(f"{user} is already a member.")
        if membership == "ban":
            raise Conflict(f"{user} is banned from this community.")
        await self.gw.invite(community.space_id, user, reason=f"Invited by {sender}")
        await self.audit(community.space_id, sender, "invite", user)

    async def room_of_role(self, community: Community, role: Role) -> CommunityRoom | None:
        rooms = await self.db.rooms.of_community(community.space_id, str(role))
        return rooms[0] if rooms else None

    async def admins_room_of(self, space_id: str) -> str | None:
        rooms = await self.db.rooms.of_community(space_id, str(Role.ADMINS))
        return rooms[0].room_id if rooms else None

    # --- groups ----------------------------------------------------------------------------

    async def resolve_room(self, ref: str) -> str:
        if rules.is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref)
            if room_id is None:
                raise NotFound(f"No room with the alias {ref}.")
            return room_id
        if rules.is_room_id(ref):
            return ref
        raise Invalid(f"{ref!r} is not a room ID (!…) or alias (#…:server).")

    async def find_group(self, community: Community, ref: str) -> CommunityRoom:
        groups = await self.db.rooms.of_community(community.space_id, str(Role.GROUP))
        for group in groups:
            if ref in (group.room_id,) or group.name.lower() == ref.lower():
                return group
        if rules.is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref)
            for group in groups:
                if group.room_id == room_id:
                    return group
        raise NotFound(f"{ref!r} is not a group of this community.")
