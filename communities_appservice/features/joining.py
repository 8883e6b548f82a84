"""Joining a community: how people join (the join mode), invitations, and join requests.

A knock on an approval community (or group) is recorded, so a restart loses none, and
announced in the admins room with who, where and why. `approve` invites, `deny` rejects by
kicking (membership `leave`, never a ban). A knock answered by hand in a client (an admin
inviting or kicking the knocker) clears the request too: any change away from `knock` does.
"""

from __future__ import annotations

import logging

from mautrix.types import UserID

from ..core.hooks import MemberEvent, on_membership
from ..core.notices import notice, say, txn_key
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.join_request import JoinRequest
from ..db.room import CommunityRoom
from ..errors import Conflict, Forbidden, NotFound
from ..matrix.errors import MatrixError
from ..rules.ids import check_user_id
from ..rules.joins import join_rule_content, space_join_rule
from ..rules.membership import Change
from ..rules.model import AuditAction, JoinMode, Role

log = logging.getLogger("communities.joining")
MAX_KNOCK_REASON = 500


class Joining:
    def __init__(self, service: Service) -> None:
        self.svc = service

    # --- how people join --------------------------------------------------------------------

    async def set_join_mode(self, community: Community, sender: UserID, mode: JoinMode) -> None:
        """Invite only, approval (knock) or open (public): the space's join rule."""
        svc = self.svc
        if community.join_mode == mode:
            raise Conflict("{} is already in {} mode.", community.name, mode)
        # The records first: reconciliation, which may look at the space meanwhile, then
        # repairs towards the new mode, never back to the old one.
        content = join_rule_content(space_join_rule(mode))
        await svc.db.communities.set_join_mode(community.space_id, mode)
        try:
            await svc.gw.send_state(community.space_id, "m.room.join_rules", content)
        except MatrixError:
            await svc.db.communities.set_join_mode(community.space_id, community.join_mode)
            raise
        community.join_mode = mode
        await svc.audit(community.space_id, sender, AuditAction.JOIN_MODE, mode)

    async def invite(self, community: Community, sender: UserID, user: UserID) -> None:
        svc = self.svc
        check_user_id(user)
        membership = await svc.gw.membership(community.space_id, user)
        if membership == "join":
            raise Conflict("{} is already a member.", user)
        if membership == "ban":
            raise Conflict("{} is banned from this community.", user)
        await svc.gw.invite(community.space_id, user, reason=say("Invited by {}", sender).plain)
        await svc.audit(community.space_id, sender, AuditAction.INVITE, user)

    # --- join requests --------------------------------------------------------------------

    async def knocked(
        self,
        community: Community,
        room: CommunityRoom,
        user: UserID,
        reason: str,
        event_id: str = "",
    ) -> None:
        """Record the knock and announce it in the admins room (once per request: a knock
        repeated while the request waits only updates it). The announcement comes first and
        is keyed by the knock's event, so a retry after an outage announces it once."""
        if await self.svc.db.bans.is_banned(community.space_id, user):
            # Banned from the community: the knock is turned down at once, never announced.
            log.info("refused the knock of %s on %s: banned", user, room.room_id)
            refusal = say("You are banned from {}.", community.name).plain
            await self.svc.gw.kick(room.room_id, user, reason=refusal)
            return
        request = JoinRequest(
            room.room_id, user, community.space_id, reason[:MAX_KNOCK_REASON], now_ms()
        )
        known = await self.svc.db.join_requests.get(room.room_id, user)
        if known is None:
            await self._announce(community, room, user, request.reason, f"knock {event_id}")
        await self.svc.db.join_requests.put(request)

    async def _announce(
        self, community: Community, room: CommunityRoom, user: UserID, reason: str, txn: str
    ) -> None:
        admins_room = await self.svc.room_of_role(community.space_id, Role.ADMINS)
        if admins_room is None:
            return
        where = community.name if room.role == Role.SPACE else f"the group {room.name}"
        group = "" if room.role == Role.SPACE else f' --group "{room.name}"'
        prefix = self.svc.config.communities.command_prefix
        said = f": “{reason}”" if reason else ""
        text = say(
            "📨 {} asks to join <b>{}</b>{}<br>Answer with <code>{} approve {}{}</code> or "
            "<code>{} deny {}{}</code>",
            user,
            where,
            said,
            prefix,
            user,
            group,
            prefix,
            user,
            group,
        )
        await self.svc.gw.send_message(
            admins_room.room_id, "m.room.message", notice(text), txn_id=txn_key(txn)
        )

    async def pending(self, community: Community) -> list[JoinRequest]:
        return await self.svc.db.join_requests.of_community(community.space_id)

    async def _request(
        self, community: Community, sender: UserID, user: UserID, group: str | None
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
            raise NotFound("{} has no pending request to join {}.", user, where)
        return request, room

    async def approve(
        self, community: Community, sender: UserID, user: UserID, group: str | None
    ) -> CommunityRoom:
        request, room = await self._request(community, sender, user, group)
        await self.svc.gw.invite(room.room_id, user, reason=say("Approved by {}", sender).plain)
        await self.svc.db.join_requests.delete(request.room_id, user)
        await self.svc.audit(community.space_id, sender, AuditAction.APPROVE, user, room.name)
        return room

    async def deny(
        self,
        community: Community,
        sender: UserID,
        user: UserID,
        group: str | None,
        reason: str,
    ) -> CommunityRoom:
        request, room = await self._request(community, sender, user, group)
        await self.svc.gw.kick(
            room.room_id, user, reason=reason or say("Denied by {}", sender).plain
        )
        await self.svc.db.join_requests.delete(request.room_id, user)
        await self.svc.audit(community.space_id, sender, AuditAction.DENY, user, room.name)
        return room


@on_membership(Change.KNOCK, roles=[Role.SPACE, Role.GROUP])
async def _knocked(svc: Service, event: MemberEvent) -> None:
    assert event.community is not None and event.room is not None
    await Joining(svc).knocked(
        event.community, event.room, event.user, event.reason, event.event_id
    )


@on_membership(
    Change.JOIN,
    Change.LEAVE,
    Change.KICK,
    Change.BAN,
    Change.INVITE,
    roles=[Role.SPACE, Role.GROUP],
)
async def _settled(svc: Service, event: MemberEvent) -> None:
    """The knocker's membership moved on (invited, joined, kicked, left)."""
    if event.prev == "knock" and await svc.db.join_requests.delete(event.room_id, event.user):
        log.info("join request of %s in %s settled", event.user, event.room_id)
