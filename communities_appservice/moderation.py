"""Moderation across a whole community: remove, ban, unban, and the groups two people share.

Removing or banning someone acts on every room of the community (space, announcements, every
group, the admins room), as in WhatsApp. Admins and the owner are protected (`rules`). The
space is acted on last: leaving it sets off `Membership`'s own clean-up of the other rooms,
which then finds them done instead of racing with us (a kick racing a ban could undo the ban).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import rules
from .db.community import Community
from .db.room import CommunityRoom
from .errors import Conflict
from .matrix.gateway import MatrixError
from .rules import Role
from .service import Service, bounded

log = logging.getLogger("communities.moderation")
MembershipCall = Callable[[str, str, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """How many rooms were acted on, and in how many the homeserver refused."""

    done: int
    failed: int


class Moderation:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def remove(self, community: Community, sender: str, user: str, reason: str) -> Outcome:
        """Kick `user` from every room of the community they are joined, invited or knocking."""
        why = await self._check(community, user, reason, "remove")
        rooms = rules.rooms_to_remove(await self._memberships(community, user))
        if not rooms:
            raise Conflict(f"{user} is not in this community.")
        outcome = await self._act(
            self.svc.gw.kick, community, rooms, user, why or f"Removed from {community.name}"
        )
        await self.svc.db.members.remove(community.space_id, user)
        await self._audit(community, sender, "remove", user, outcome, why)
        return outcome

    async def ban(self, community: Community, sender: str, user: str, reason: str) -> Outcome:
        """Ban `user` in every room of the community, whether or not they ever joined."""
        why = await self._check(community, user, reason, "ban")
        rooms = rules.rooms_to_ban(await self._memberships(community, user))
        if not rooms:
            raise Conflict(f"{user} is already banned in every room of this community.")
        outcome = await self._act(
            self.svc.gw.ban, community, rooms, user, why or f"Banned from {community.name}"
        )
        await self.svc.db.members.remove(community.space_id, user)
        await self._audit(community, sender, "ban", user, outcome, why)
        return outcome

    async def unban(self, community: Community, sender: str, user: str) -> Outcome:
        """Lift the ban in every room of the community where `user` is banned."""
        rules.check_user_id(user)
        rooms = rules.rooms_to_unban(await self._memberships(community, user))
        if not rooms:
            raise Conflict(f"{user} is not banned in this community.")
        outcome = await self._act(
            self.svc.gw.unban, community, rooms, user, f"Unbanned by {sender}"
        )
        await self._audit(community, sender, "unban", user, outcome, None)
        return outcome

    async def common(self, community: Community, sender: str, user: str) -> list[CommunityRoom]:
        """The groups of the community that both `sender` and `user` have joined."""
        rules.check_user_id(user)
        groups = await self.svc.db.rooms.of_community(community.space_id, str(Role.GROUP))
        joined = await bounded(self._joined(group.room_id) for group in groups)
        shared = set(
            rules.shared_rooms(
                {g.room_id: members for g, members in zip(groups, joined, strict=True)},
                sender,
                user,
            )
        )
        return [group for group in groups if group.room_id in shared]

    # --- steps -------------------------------------------------------------------------

    async def _check(self, community: Community, user: str, reason: str, action: str) -> str | None:
        rules.check_user_id(user)
        why = rules.check_reason(reason)
        roles = await self.svc.admin_roles(community.space_id)
        rules.check_can_moderate(roles, user, self.svc.bot, action)
        return why

    async def _memberships(self, community: Community, user: str) -> dict[str, str | None]:
        """The user's membership in every room of the community, in the rooms' order."""
        rooms = await self.svc.db.rooms.of_community(community.space_id)
        found = await bounded(self._membership(room.room_id, user) for room in rooms)
        return {room.room_id: m for room, m in zip(rooms, found, strict=True)}

    async def _membership(self, room_id: str, user: str) -> str | None:
        try:
            return await self.svc.gw.membership(room_id, user)
        except MatrixError as e:
            log.warning("cannot read %s's membership in %s: %s", user, room_id, e.errcode)
            return None

    async def _joined(self, room_id: str) -> set[str]:
        try:
            return await self.svc.gw.joined_members(room_id)
        except MatrixError as e:
            log.warning("cannot read the members of %s: %s", room_id, e.errcode)
            return set()

    async def _act(
        self,
        call: MembershipCall,
        community: Community,
        rooms: list[str],
        user: str,
        reason: str,
    ) -> Outcome:
        """`call` in every room, the space last; a refusal in one room does not stop the rest."""
        space_id = community.space_id
        others = [room for room in rooms if room != space_id]
        results = await bounded(self._one(call, room, user, reason) for room in others)
        if space_id in rooms:
            results.append(await self._one(call, space_id, user, reason))
        done = sum(results)
        return Outcome(done=done, failed=len(results) - done)

    async def _one(self, call: MembershipCall, room_id: str, user: str, reason: str) -> bool:
        try:
            await call(room_id, user, reason)
        except MatrixError as e:
            log.warning("could not act on %s in %s: %s", user, room_id, e.errcode)
            return False
        return True

    async def _audit(
        self,
        community: Community,
        sender: str,
        action: str,
        user: str,
        outcome: Outcome,
        reason: str | None,
    ) -> None:
        detail = f"{outcome.done} rooms" + (f"; {reason}" if reason else "")
        result = "ok" if not outcome.failed else f"failed in {outcome.failed} rooms"
        await self.svc.audit(community.space_id, sender, action, user, detail, result)
