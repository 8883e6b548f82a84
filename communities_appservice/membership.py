"""Membership, like WhatsApp: what follows when someone joins or leaves a community room.

- joining the space: the user is a member and is invited to the announcement room;
- joining a group: the user becomes a member (invited to the space and announcements);
- leaving the space: the user is removed from announcements and, with
  `leave_space_leaves_groups`, from every group of this community (and no other);
- knocking on the space or an approval group: a join request for the admins (see joining);
- the bot itself: invites from permitted users are accepted, others declined with a reason.
"""

from __future__ import annotations

import logging
from typing import Any

from .db import now_ms
from .db.community import Community
from .db.room import CommunityRoom
from .joining import JoinRequests
from .matrix.gateway import MatrixError
from .rules import Permission, Role
from .service import Service, bounded
from .welcome import Welcome

log = logging.getLogger("communities.membership")
PRESENT = ("join", "invite")


class Membership:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def handle(self, event: dict[str, Any]) -> None:
        user = str(event.get("state_key", ""))
        room_id = str(event["room_id"])
        content = event.get("content") or {}
        new = str(content.get("membership", ""))
        prev = str(((event.get("unsigned") or {}).get("prev_content") or {}).get("membership", ""))
        if user == self.svc.bot:
            if new == "invite":
                await self._bot_invited(room_id, str(event.get("sender", "")))
            return
        room = await self.svc.db.rooms.get(room_id)
        if room is None:
            return
        community = await self.svc.db.communities.get(room.space_id)
        if community is None or community.state != "active":
            return
        if new == "knock" and room.role in (Role.SPACE, Role.GROUP):
            reason = str(content.get("reason") or "")
            await JoinRequests(self.svc).knocked(community, room, user, reason)
            return
        if prev == "knock":
            await JoinRequests(self.svc).settled(room_id, user)
        if new == "join" and prev != "join":
            await self._joined(community, Role(room.role), user)
        elif new in ("leave", "ban") and prev == "join" and room.role == Role.SPACE:
            await self._left_space(community, user)
        elif new in ("leave", "ban") and prev == "join" and room.role == Role.GROUP:
            await self._left_group(community, room, user)

    async def _bot_invited(self, room_id: str, inviter: str) -> None:
        known = await self.svc.db.rooms.get(room_id)
        if known is None and self.svc.permission(inviter) < Permission.MEMBER:
            log.info("declining invite to %s from %s: not permitted", room_id, inviter)
            await self.svc.gw.leave(room_id, reason="You are not allowed to use this service.")
            return
        try:
            await self.svc.gw.join(room_id)
        except MatrixError as e:
            log.warning("could not join %s after invite: %s", room_id, e.errcode)

    async def _joined(self, community: Community, role: Role, user: str) -> None:
        svc = self.svc
        if role is Role.SPACE:
            if await svc.db.members.add(community.space_id, user, now_ms()):
                log.info("new member %s in %s", user, community.space_id)
            await self._ensure_invited(community, Role.ANNOUNCEMENTS, user)
            await Welcome(svc).greet(community, user)
        elif role is Role.GROUP:
            if await svc.gw.membership(community.space_id, user) not in PRESENT:
                await svc.gw.invite(community.space_id, user, reason="Member of a group")
            await self._ensure_invited(community, Role.ANNOUNCEMENTS, user)

    async def _ensure_invited(self, community: Community, role: Role, user: str) -> None:
        room = await self.svc.room_of_role(community, role)
        if room is None:
            return
        if await self.svc.gw.membership(room.room_id, user) in (*PRESENT, "ban"):
            return
        try:
            await self.svc.gw.invite(room.room_id, user, reason=f"Member of {community.name}")
        except MatrixError:
            # They joined by themselves (a restricted room) between our look and the invite.
            if await self.svc.gw.membership(room.room_id, user) not in PRESENT:
                raise

    async def _left_group(self, community: Community, room: CommunityRoom, user: str) -> None:
        """A group admin who leaves the group stops being its admin, as in WhatsApp."""
        svc = self.svc
        if not await svc.is_group_admin(room.room_id, user):
            return
        await svc.db.group_admins.remove(room.room_id, user)
        await svc.apply_room_power(community, room)
        await svc.audit(community.space_id, user, "group admin left", user, room.name)

    async def _left_space(self, community: Community, user: str) -> None:
        svc = self.svc
        await svc.db.members.remove(community.space_id, user)
        targets = [Role.ANNOUNCEMENTS]
        if svc.config.communities.leave_space_leaves_groups:
            targets.append(Role.GROUP)
        rooms = [
            room
            for role in targets
            for room in await svc.db.rooms.of_community(community.space_id, str(role))
        ]
        await bounded(self._remove_from(room.room_id, user, community.name) for room in rooms)

    async def _remove_from(self, room_id: str, user: str, name: str) -> None:
        if await self.svc.gw.membership(room_id, user) not in PRESENT:
            return
        try:
            await self.svc.gw.kick(room_id, user, reason=f"Left {name}")
        except MatrixError as e:
            log.warning("could not remove %s from %s: %s", user, room_id, e.errcode)


def is_membership(event: dict[str, Any]) -> bool:
    return event.get("type") == "m.room.member" and "state_key" in event
