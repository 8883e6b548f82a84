"""Join requests: knocks on an approval community (or group) and the admins' answers.

A knock is recorded (so a restart loses none) and announced in the admins room with who,
where and why. `approve` invites, `deny` rejects by kicking (membership `leave`, never a
ban). A knock answered by hand in a client (an admin inviting or kicking the knocker) clears
the request too: any membership change away from `knock` does.
"""

from __future__ import annotations

import html
import logging

from .db import now_ms
from .db.community import Community
from .db.join_request import JoinRequest
from .db.room import CommunityRoom
from .errors import Forbidden, NotFound
from .rules import Role, check_user_id
from .service import Service

log = logging.getLogger("communities.joining")


class JoinRequests:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def knocked(
        self, community: Community, room: CommunityRoom, user: str, reason: str
    ) -> None:
        request = JoinRequest(room.room_id, user, community.space_id, reason[:500], now_ms())
        known = await self.svc.db.join_requests.get(room.room_id, user)
        await self.svc.db.join_requests.put(request)
        if known is None:
            await self._announce(community, room, user, request.reason)

    async def _announce(
        self, community: Community, room: CommunityRoom, user: str, reason: str
    ) -> None:
        admins_room = await self.svc.room_of_role(community, Role.ADMINS)
        if admins_room is None:
            return
        where = community.name if room.role == Role.SPACE else f"the group {room.name}"
        group = "" if room.role == Role.SPACE else f' --group "{room.name}"'
        prefix = self.svc.config.communities.command_prefix
        said = f": “{reason}”" if reason else ""
        plain = (
            f"📨 {user} asks to join {where}{said}\n"
            f"Answer with {prefix} approve {user}{group} or {prefix} deny {user}{group}"
        )
        e = html.escape
        rich = (
            f"📨 {e(user)} asks to join <b>{e(where)}</b>{e(said)}<br>"
            f"Answer with <code>{e(prefix)} approve {e(user)}{e(group)}</code> or "
            f"<code>{e(prefix)} deny {e(user)}{e(group)}</code>"
        )
        content = {
            "msgtype": "m.notice",
            "body": plain,
            "format": "org.matrix.custom.html",
            "formatted_body": rich,
        }
        await self.svc.gw.send_message(admins_room.room_id, "m.room.message", content)

    async def settled(self, room_id: str, user: str) -> None:
        """The knocker's membership moved on (invited, joined, kicked, left)."""
        if await self.svc.db.join_requests.delete(room_id, user):
            log.info("join request of %s in %s settled", user, room_id)

    async def pending(self, community: Community) -> list[JoinRequest]:
        return await self.svc.db.join_requests.of_community(community.space_id)

    async def _request(
        self, community: Community, sender: str, user: str, group: str | None
    ) -> tuple[JoinRequest, CommunityRoom]:
        """The pending request, once the sender may answer it: community admins answer every
        request, a group's admins those for their group."""
        check_user_id(user)
        if group:
            room = await self.svc.find_group(community, group)
        else:
            space = await self.svc.db.rooms.get(community.space_id)
            assert space is not None
            room = space
        if not await self.svc.is_admin(community.space_id, sender) and not (
            room.role == Role.GROUP and await self.svc.is_group_admin(room.room_id, sender)
        ):
            raise Forbidden("Only admins of this community, or of that group, can do that.")
        request = await self.svc.db.join_requests.get(room.room_id, user)
        if request is None:
            where = community.name if room.role == Role.SPACE else room.name
            raise NotFound(f"{user} has no pending request to join {where}.")
        return request, room

    async def approve(
        self, community: Community, sender: str, user: str, group: str | None
    ) -> CommunityRoom:
        request, room = await self._request(community, sender, user, group)
        await self.svc.gw.invite(room.room_id, user, reason=f"Approved by {sender}")
        await self.svc.db.join_requests.delete(request.room_id, user)
        await self.svc.audit(community.space_id, sender, "approve", user, room.name)
        return room

    async def deny(
        self, community: Community, sender: str, user: str, group: str | None, reason: str
    ) -> CommunityRoom:
        request, room = await self._request(community, sender, user, group)
        await self.svc.gw.kick(room.room_id, user, reason=reason or f"Denied by {sender}")
        await self.svc.db.join_requests.delete(request.room_id, user)
        await self.svc.audit(community.space_id, sender, "deny", user, room.name)
        return room
