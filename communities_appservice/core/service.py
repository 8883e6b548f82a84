"""What every feature needs: the records, the gateway, lookups, the audit log, and the power
levels the records demand.

Features build on `Service`; it knows no feature. Refusals are `UserError`s raised before
anything changes.
"""

from __future__ import annotations

import logging
from typing import Any

from mautrix.types import RoomID, UserID

from ..config import Config
from ..db import Tables, now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Conflict, Invalid, NotFound
from ..matrix.errors import MatrixError
from ..matrix.gateway import Gateway
from ..rules.ids import is_room_alias, is_room_id
from ..rules.model import AdminRole, AuditAction, CommunityState, Permission, Role, permission_for
from ..rules.power import Levels, power_levels
from ..tasks import Tasks
from .operations import Operations
from .run import Naming
from .scheduler import Scheduler

log = logging.getLogger("communities.service")


class Service:
    def __init__(
        self, config: Config, tables: Tables, gateway: Gateway, tasks: Tasks | None = None
    ) -> None:
        self.config = config
        self.db = tables
        self.gw = gateway
        self.bot = UserID(config.bot_mxid)
        self.server_name = config.homeserver.domain
        self.tasks = tasks if tasks is not None else Tasks()
        naming = Naming(config.alias_prefix, self.server_name, self.bot)
        self.ops = Operations(tables, gateway, self.tasks, naming)
        self.ops.context = self
        self.scheduler = Scheduler(self)
        self._space_of: dict[str, RoomID] = {}  # room → its community (rooms never move)
        self._languages: dict[str, str] = {}  # community → its language ('' = default)

    # --- who may do what -----------------------------------------------------------------

    def permission(self, user_id: str) -> Permission:
        return permission_for(user_id, self.config.permissions)

    async def admin_roles(self, space_id: RoomID) -> dict[UserID, AdminRole]:
        return await self.db.admins.roles(space_id)

    async def is_admin(self, space_id: RoomID, user_id: UserID) -> bool:
        if self.permission(user_id) is Permission.ADMIN:
            return True
        return user_id in await self.db.admins.roles(space_id)

    async def is_group_admin(self, room_id: RoomID, user_id: UserID) -> bool:
        return await self.db.group_admins.is_admin(room_id, user_id)

    async def is_member(self, space_id: RoomID, user_id: UserID) -> bool:
        return await self.db.members.is_member(space_id, user_id) or await self.is_admin(
            space_id, user_id
        )

    # --- the language spoken ------------------------------------------------------------

    @property
    def default_language(self) -> str:
        """The operator's (`communities.default_language`), where no community has chosen."""
        return self.config.communities.default_language

    def language_for(self, community: Community) -> str:
        return community.language or self.default_language

    async def language_of(self, space_id: str) -> str:
        """A community's language (the operator's default when it has not chosen one)."""
        if space_id not in self._languages:
            community = await self.db.communities.get(RoomID(space_id))
            self._languages[space_id] = community.language if community else ""
        return self._languages[space_id] or self.default_language

    async def language_in(self, room_id: str, sender: str = "") -> str:
        """The language for what happens in `room_id`: its community's; in a room of no
        community (a DM), that of the sender's community (the first, if several); else the
        operator's default."""
        space = self._space_of.get(room_id)
        if space is None and (room := await self.db.rooms.get(RoomID(room_id))) is not None:
            space = self._space_of[room_id] = room.space_id
        if space is not None:
            return await self.language_of(space)
        if sender and sender != self.bot:
            mine = await self.communities_of(UserID(sender), admin=False)
            if mine:
                return self.language_for(mine[0])
        return self.default_language

    async def set_language(self, space_id: RoomID, code: str) -> None:
        await self.db.communities.set_language(space_id, code)
        self._languages[space_id] = code

    # --- lookups ---------------------------------------------------------------------------

    async def community_of_room(
        self, room_id: RoomID, *, deactivated: bool = False
    ) -> Community | None:
        """The active community `room_id` belongs to (or a deactivated one, if asked)."""
        room = await self.db.rooms.get(room_id)
        if room is None:
            return None
        community = await self.db.communities.get(room.space_id)
        wanted = (CommunityState.ACTIVE, CommunityState.DEACTIVATED) if deactivated else ()
        if community and (community.state == CommunityState.ACTIVE or community.state in wanted):
            return community
        return None

    async def is_dm(self, room_id: RoomID, user_id: UserID) -> bool:
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
        if is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref) or ""
        if is_room_id(room_id):
            community = await self.community_of_room(RoomID(room_id))
            if community:
                return community
        matches = await self.db.communities.find_by_name(ref)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Conflict("Several communities are called {!r}; use the space ID.", ref)
        raise NotFound("No community {!r} here.", ref)

    async def communities_of(
        self, user_id: UserID, *, admin: bool, state: CommunityState = CommunityState.ACTIVE
    ) -> list[Community]:
        ids = set(await self.db.admins.communities_of(user_id))
        if not admin:
            ids.update(await self.db.members.communities_of(user_id))
        found = [await self.db.communities.get(i) for i in sorted(ids)]
        return [c for c in found if c is not None and c.state == state]

    async def room_of_role(self, space_id: RoomID, role: Role) -> CommunityRoom | None:
        """The community's one room of this role (announcements, admins)."""
        rooms = await self.db.rooms.of_community(space_id, role)
        return rooms[0] if rooms else None

    async def groups(self, space_id: RoomID) -> list[CommunityRoom]:
        return await self.db.rooms.of_community(space_id, Role.GROUP)

    async def group_of_room(self, community: Community, room_id: RoomID) -> CommunityRoom | None:
        """The group of this community that `room_id` is, if it is one."""
        room = await self.db.rooms.get(room_id)
        if room is None or room.space_id != community.space_id or room.role != Role.GROUP:
            return None
        return room

    async def resolve_room(self, ref: str) -> RoomID:
        if is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref)
            if room_id is None:
                raise NotFound("No room with the alias {}.", ref)
            return room_id
        if is_room_id(ref):
            return RoomID(ref)
        raise Invalid("{!r} is not a room ID (!…) or alias (#…:server).", ref)

    async def find_group(self, community: Community, ref: str) -> CommunityRoom:
        groups = await self.groups(community.space_id)
        for group in groups:
            if ref == group.room_id or group.name.lower() == ref.lower():
                return group
        if is_room_alias(ref):
            room_id = await self.gw.resolve_alias(ref)
            for group in groups:
                if group.room_id == room_id:
                    return group
        raise NotFound("{!r} is not a group of this community.", ref)

    # --- audit -------------------------------------------------------------------------

    async def audit(
        self,
        space_id: RoomID,
        actor: UserID,
        action: AuditAction,
        target: str = "",
        detail: str = "",
        result: str = "ok",
    ) -> None:
        await self.db.audit.add(space_id, actor, action, target, detail, result, now_ms())
        log.info("audit %s: %s %s %s (%s)", space_id, actor, action, target, result)

    # --- room state from the records ------------------------------------------------------

    def levels(self, community: Community, room: CommunityRoom) -> Levels:
        return Levels.for_room(community.room_version, bot_is_creator=not room.adopted)

    async def power_for(self, community: Community, room: CommunityRoom) -> dict[str, Any]:
        admins = await self.db.admins.roles(community.space_id)
        group_admins: list[UserID] = []
        if room.role == Role.GROUP:
            group_admins = await self.db.group_admins.of_room(room.room_id)
        return power_levels(
            Role(room.role),
            self.levels(community, room),
            bot=self.bot,
            admins=admins,
            group_admins=group_admins,
            replies=self.replies_mode(community) == "threads",
            votes=room.role == Role.ANNOUNCEMENTS
            and await self.db.polls.open_in_announcements(community.space_id) > 0,
            closed=community.state == CommunityState.DEACTIVATED,
        )

    async def shares_history(self, room_id: RoomID) -> bool:
        """Whether newcomers get the room's encrypted history (MSC4268): an announcement
        room, unless the operator turned it off. The bot's keys there are marked
        `shared_history` (`matrix/history.py`, `features/history.py`)."""
        if not self.config.encryption.share_announcement_history:
            return False
        room = await self.db.rooms.get(room_id)
        return room is not None and room.role == Role.ANNOUNCEMENTS

    def replies_mode(self, community: Community) -> str:
        """`threads` or `off`: the community's own choice, else the service's default."""
        if community.replies:
            return community.replies
        return "threads" if self.config.communities.announcement_replies == "threads" else "off"

    async def apply_room_power(self, community: Community, room: CommunityRoom) -> None:
        """Write the power levels the records demand into one room of the community."""
        content = await self.power_for(community, room)
        await self.gw.send_state(room.room_id, "m.room.power_levels", content)
