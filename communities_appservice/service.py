"""Use cases: load from the database, decide with `rules`, act through the gateway, save.

This is the only module where I/O meets the rules. Commands call it with already-parsed
arguments; every refusal is a `UserError` raised before anything changes.
"""

from __future__ import annotations

import asyncio
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
from .errors import Conflict, Forbidden, Invalid, NotFound
from .matrix.gateway import Gateway, MatrixError
from .rules import AdminRole, GroupAccess, JoinMode, Levels, Permission, Role

log = logging.getLogger("communities.service")
T = TypeVar("T")
# Bulk Matrix calls (one per room, one per member) run at most this many at a time.
CONCURRENCY = 8


async def bounded(calls: Iterable[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """Await every call, at most `limit` at once, in order; the first failure propagates."""
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(run(c) for c in calls)))


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

    def _room_request(
        self,
        name: str,
        *,
        topic: str = "",
        invite: Iterable[str],
        power: dict[str, Any],
        state: list[dict[str, Any]],
        space: bool = False,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "name": name,
            "preset": "private_chat",
            "room_version": self.config.communities.room_version,
            "invite": sorted(set(invite) - {self.bot}),
            "power_level_content_override": power,
            "initial_state": state,
        }
        if topic:
            request["topic"] = topic
        if space:
            request["creation_content"] = {"type": "m.space"}
        return request

    def _child_state(self, space_id: str, role: Role, join_rule: str) -> list[dict[str, Any]]:
        state = [
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": rules.join_rule_content(join_rule, space_id),
            },
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "shared"},
            },
            {
                "type": rules.MARKER_EVENT,
                "state_key": "",
                "content": rules.marker_content(space_id, role),
            },
        ]
        if self.config.encryption.enabled:
            state.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": rules.MEGOLM},
                }
            )
        if role is not Role.ADMINS:
            state.append(
                {
                    "type": "m.space.parent",
                    "state_key": space_id,
                    "content": rules.parent_content(self.server_name),
                }
            )
        return state

    def _new_power(self, role: Role, admins: Iterable[str]) -> dict[str, Any]:
        levels = Levels.for_room(self.config.communities.room_version, bot_is_creator=True)
        return rules.power_levels(role, levels, bot=self.bot, admins=admins)

    # --- creating ------------------------------------------------------------------------

    async def create_community(
        self, sender: str, name: str, description: str, join_mode: JoinMode
    ) -> Community:
        if self.permission(sender) < Permission.CREATOR:
            raise Forbidden("You are not allowed to create communities on this server.")
        name = rules.check_name(name)
        description = rules.check_text(description, "description")
        admins = [sender]
        space_id = await self.gw.create_room(
            self._room_request(
                name,
                topic=description,
                invite=admins,
                space=True,
                power=self._new_power(Role.SPACE, admins),
                state=[
                    {
                        "type": "m.room.join_rules",
                        "state_key": "",
                        "content": rules.join_rule_content(rules.space_join_rule(join_mode)),
                    },
                    {
                        "type": "m.room.history_visibility",
                        "state_key": "",
                        "content": {"history_visibility": "shared"},
                    },
                ],
            )
        )
        community = Community(
            space_id=space_id,
            name=name,
            description=description,
            join_mode=str(join_mode),
            owner=sender,
            state="creating",
            room_version=self.config.communities.room_version,
            created_at=now_ms(),
        )
        await self.db.communities.insert(community)
        await self.db.admins.put(space_id, sender, AdminRole.OWNER, now_ms())
        await self._record_room(space_id, space_id, Role.SPACE, name)
        await self.gw.send_state(
            space_id, rules.MARKER_EVENT, rules.marker_content(space_id, Role.SPACE)
        )
        announcements = await self._create_child(
            community,
            f"{name} · Announcements",
            Role.ANNOUNCEMENTS,
            "restricted",
            admins,
            topic=f"Announcements of {name}",
        )
        await self._link_child(space_id, announcements, order="0", suggested=True)
        await self._create_child(
            community,
            f"{name} · Admins",
            Role.ADMINS,
            "invite",
            admins,
            topic=f"Admins of {name}: join requests, alerts and audit notes",
        )
        await self.db.communities.set_state(space_id, "active")
        community.state = "active"
        await self.audit(space_id, sender, "create", space_id, name)
        return community

    async def _record_room(
        self,
        space_id: str,
        room_id: str,
        role: Role,
        name: str,
        access: GroupAccess = GroupAccess.OPEN,
        adopted: bool = False,
    ) -> CommunityRoom:
        room = CommunityRoom(
            room_id=room_id,
            space_id=space_id,
            role=str(role),
            name=name,
            access=str(access),
            adopted=adopted,
            position=await self.db.rooms.next_position(space_id),
            created_at=now_ms(),
        )
        await self.db.rooms.insert(room)
        return room

    async def _create_child(
        self,
        community: Community,
        name: str,
        role: Role,
        join_rule: str,
        admins: Iterable[str],
        *,
        topic: str = "",
        access: GroupAccess = GroupAccess.OPEN,
    ) -> str:
        admins = list(admins)
        room_id = await self.gw.create_room(
            self._room_request(
                name,
                topic=topic,
                invite=admins,
                power=self._new_power(role, admins),
                state=self._child_state(community.space_id, role, join_rule),
            )
        )
        await self._record_room(community.space_id, room_id, role, name, access)
        return room_id

    async def _link_child(self, space_id: str, room_id: str, order: str, suggested: bool) -> None:
        await self.gw.send_state(
            space_id,
            "m.space.child",
            rules.child_content(self.server_name, order=order, suggested=suggested),
            room_id,
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
        content = rules.join_rule_content(rules.space_join_rule(mode))
        await self.gw.send_state(community.space_id, "m.room.join_rules", content)
        await self.db.communities.set_join_mode(community.space_id, str(mode))
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

    # --- admins ----------------------------------------------------------------------------

    async def _require_joined(self, community: Community, user: str) -> None:
        rules.check_user_id(user)
        if await self.gw.membership(community.space_id, user) != "join":
            raise Conflict(f"{user} has not joined this community.")

    async def add_admin(self, community: Community, sender: str, user: str) -> None:
        await self._require_joined(community, user)
        roles = await self.db.admins.roles(community.space_id)
        rules.check_can_add_admin(roles, user, self.config.communities.max_admins)
        await self.db.admins.put(community.space_id, user, AdminRole.ADMIN, now_ms())
        await self.apply_power(community)
        await self._invite_to_admins_room(community, user)
        await self.audit(community.space_id, sender, "admin add", user)

    async def remove_admin(self, community: Community, sender: str, user: str) -> None:
        rules.check_user_id(user)
        roles = await self.db.admins.roles(community.space_id)
        rules.check_can_remove_admin(roles, user)
        await self.db.admins.delete(community.space_id, user)
        await self.apply_power(community)
        admins_room = await self.room_of_role(community, Role.ADMINS)
        if admins_room and await self.gw.membership(admins_room.room_id, user) in (
            "join",
            "invite",
        ):
            await self.gw.kick(admins_room.room_id, user, "No longer an admin")
        await self.audit(community.space_id, sender, "admin remove", user)

    async def transfer_owner(self, community: Community, sender: str, user: str) -> None:
        """Hand the community to another admin; the old owner stays an admin.

        Both hold the admin level everywhere before and after, so no room changes: only the
        records do, in one transaction that also checks that nobody handed the community on
        meanwhile, so that there is never zero or two owners."""
        await self._require_joined(community, user)
        roles = await self.db.admins.roles(community.space_id)
        rules.check_can_transfer_owner(roles, user)
        old = community.owner
        async with self.db.transaction():
            if not await self.db.communities.replace_owner(community.space_id, old, user):
                raise Conflict("The owner changed meanwhile; nothing was done.")
            await self.db.admins.put(community.space_id, old, AdminRole.ADMIN, now_ms())
            await self.db.admins.put(community.space_id, user, AdminRole.OWNER, now_ms())
        community.owner = user
        await self.audit(community.space_id, sender, "owner transfer", user, f"from {old}")

    async def add_group_admin(
        self, community: Community, group: CommunityRoom, sender: str, user: str
    ) -> None:
        rules.check_user_id(user)
        if await self.gw.membership(group.room_id, user) != "join":
            raise Conflict(f"{user} has not joined {group.name}.")
        admins = await self.db.admins.roles(community.space_id)
        group_admins = await self.db.group_admins.of_room(group.room_id)
        rules.check_can_add_group_admin(admins, group_admins, user, group.name)
        await self.db.group_admins.add(group.room_id, user, now_ms())
        await self.apply_room_power(community, group)
        await self.audit(community.space_id, sender, "group admin add", user, group.name)

    async def remove_group_admin(
        self, community: Community, group: CommunityRoom, sender: str, user: str
    ) -> None:
        rules.check_user_id(user)
        group_admins = await self.db.group_admins.of_room(group.room_id)
        rules.check_can_remove_group_admin(group_admins, user, group.name)
        await self.db.group_admins.remove(group.room_id, user)
        await self.apply_room_power(community, group)
        await self.audit(community.space_id, sender, "group admin remove", user, group.name)

    async def _invite_to_admins_room(self, community: Community, user: str) -> None:
        room = await self.room_of_role(community, Role.ADMINS)
        if room and await self.gw.membership(room.room_id, user) not in ("join", "invite"):
            await self.gw.invite(room.room_id, user, reason="You are now an admin")

    async def room_of_role(self, community: Community, role: Role) -> CommunityRoom | None:
        rooms = await self.db.rooms.of_community(community.space_id, str(role))
        return rooms[0] if rooms else None

    # --- groups ----------------------------------------------------------------------------

    async def _check_group_room(self, community: Community) -> None:
        groups = await self.db.rooms.of_community(community.space_id, str(Role.GROUP))
        rules.check_can_add_group(len(groups), self.config.communities.max_groups)

    async def create_group(
        self, community: Community, sender: str, name: str, topic: str, access: GroupAccess
    ) -> CommunityRoom:
        name = rules.check_name(name, "group name")
        topic = rules.check_text(topic, "topic")
        await self._check_group_room(community)
        admins = await self.db.admins.roles(community.space_id)
        room_id = await self._create_child(
            community,
            name,
            Role.GROUP,
            rules.group_join_rule(access),
            admins,
            topic=topic,
            access=access,
        )
        room = await self.db.rooms.get(room_id)
        assert room is not None
        await self._link_child(
            community.space_id, room_id, rules.group_order(room.position), suggested=False
        )
        await self.audit(community.space_id, sender, "group create", room_id, name)
        return room

    async def resolve_room(self, ref: str) -> str:
        if rules.is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref)
            if room_id is None:
                raise NotFound(f"No room with the alias {ref}.")
            return room_id
        if rules.is_room_id(ref):
            return ref
        raise Invalid(f"{ref!r} is not a room ID (!…) or alias (#…:server).")

    async def adopt_group(self, community: Community, sender: str, ref: str) -> CommunityRoom:
        room_id = await self.resolve_room(ref)
        existing = await self.db.rooms.get(room_id)
        if existing is not None:
            raise Conflict("That room already belongs to a community.")
        await self._check_group_room(community)
        try:
            await self.gw.join(room_id, reason=f"Adopting into {community.name}")
        except MatrixError as e:
            raise Forbidden(
                f"The bot cannot join that room ({e.errcode}); invite {self.bot} first."
            ) from None
        await self._check_adoptable(room_id)
        name = (await self.gw.get_state(room_id, "m.room.name") or {}).get("name") or room_id
        join_rule = (await self.gw.get_state(room_id, "m.room.join_rules") or {}).get(
            "join_rule", "invite"
        )
        access = rules.group_access_from_join_rule(str(join_rule))
        room = await self._record_room(
            community.space_id,
            room_id,
            Role.GROUP,
            str(name)[: rules.MAX_NAME],
            access,
            adopted=True,
        )
        await self._take_over(community, room)
        await self.audit(community.space_id, sender, "group add", room_id, room.name)
        return room

    async def _check_adoptable(self, room_id: str) -> None:
        create = await self.gw.get_create(room_id)
        problems = []
        problem = rules.creator_problem(create, self.bot)
        if problem:
            problems.append(problem)
        power = await self.gw.get_state(room_id, "m.room.power_levels") or {}
        problems.extend(rules.adoption_problems(power, self.bot))
        if int(str(create.get("room_version", "1")).split(".")[0] or 1) < 8:
            problems.append("upgrade the room to version 8 or newer (restricted joins)")
        if problems:
            await self.gw.leave(room_id, reason="Cannot adopt this room")
            raise Forbidden("The bot cannot take charge of that room: " + "; ".join(problems) + ".")

    async def _take_over(self, community: Community, room: CommunityRoom) -> None:
        space_id = community.space_id
        await self.gw.send_state(
            room.room_id, "m.room.power_levels", await self.power_for(community, room)
        )
        for event_type, content, key in (
            (rules.MARKER_EVENT, rules.marker_content(space_id, Role.GROUP), ""),
            ("m.space.parent", rules.parent_content(self.server_name), space_id),
        ):
            await self.gw.send_state(room.room_id, event_type, content, key)
        if room.access == GroupAccess.OPEN:
            await self.gw.send_state(
                room.room_id,
                "m.room.join_rules",
                rules.join_rule_content("restricted", space_id),
            )
        if self.config.encryption.enabled and not await self.gw.get_state(
            room.room_id, "m.room.encryption"
        ):
            await self.gw.send_state(room.room_id, "m.room.encryption", {"algorithm": rules.MEGOLM})
        await self._link_child(space_id, room.room_id, rules.group_order(room.position), False)

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

    async def remove_group(self, community: Community, sender: str, ref: str) -> CommunityRoom:
        group = await self.find_group(community, ref)
        space_id = community.space_id
        await self.gw.send_state(space_id, "m.space.child", {}, group.room_id)
        await self.gw.send_state(group.room_id, "m.space.parent", {}, space_id)
        await self.gw.send_state(group.room_id, rules.MARKER_EVENT, {})
        if group.access == GroupAccess.OPEN:
            # Without the space there is nothing left to be restricted to.
            await self.gw.send_state(group.room_id, "m.room.join_rules", {"join_rule": "invite"})
        await self.db.rooms.delete(group.room_id)
        await self.audit(space_id, sender, "group remove", group.room_id, group.name)
        return group
