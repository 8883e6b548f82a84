"""Membership, like WhatsApp: what follows when someone joins or leaves a community room.

- joining the space: the user is a member and is invited to the announcement room;
- joining a group: the user becomes a member (invited to the space and announcements);
- leaving the space: the user is removed from announcements and, with
  `leave_space_leaves_groups`, from every group of this community (and no other);
- a group admin who leaves the group stops being its admin;
- the bot itself: invites from permitted users are accepted, others declined with a reason.

Knocks (join requests) and the welcome DM are the `joining` and `welcome` features' own
listeners to the same changes.
"""

from __future__ import annotations

import logging

from mautrix.types import RoomID, UserID

from ..core.hooks import MemberEvent, on_membership
from ..core.notices import say
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..matrix.errors import MatrixError, is_transient
from ..rules.membership import Change
from ..rules.model import AuditAction, Permission, Role
from ..tasks import bounded

log = logging.getLogger("communities.membership")
PRESENT = ("join", "invite")
LEFT = (Change.LEAVE, Change.KICK, Change.BAN)


@on_membership(Change.INVITE, bot=True)
async def _bot_invited(svc: Service, event: MemberEvent) -> None:
    known = await svc.db.rooms.get(event.room_id)
    if known is None and svc.permission(event.sender) < Permission.MEMBER:
        log.info("declining invite to %s from %s: not permitted", event.room_id, event.sender)
        await svc.gw.leave(
            event.room_id, reason=say("You are not allowed to use this service.").plain
        )
        return
    try:
        await svc.gw.join(event.room_id)
    except MatrixError as e:
        if is_transient(e):
            raise  # the event is tried again
        log.warning("could not join %s after invite: %s", event.room_id, e.errcode)


@on_membership(Change.JOIN, roles=[Role.SPACE], early=True)
async def _joined_space(svc: Service, event: MemberEvent) -> None:
    assert event.community is not None
    community = event.community
    if await svc.db.members.add(community.space_id, event.user, now_ms()):
        log.info("new member %s in %s", event.user, community.space_id)
    await _ensure_invited(svc, community, Role.ANNOUNCEMENTS, event.user)


@on_membership(Change.JOIN, roles=[Role.GROUP])
async def _joined_group(svc: Service, event: MemberEvent) -> None:
    assert event.community is not None
    community, user = event.community, event.user
    if await svc.gw.membership(community.space_id, user) not in PRESENT:
        await svc.gw.invite(community.space_id, user, reason=say("Member of a group").plain)
    await _ensure_invited(svc, community, Role.ANNOUNCEMENTS, user)


@on_membership(*LEFT, roles=[Role.SPACE], early=True)
async def _left_space(svc: Service, event: MemberEvent) -> None:
    if not event.was_joined:
        return
    assert event.community is not None
    community, user = event.community, event.user
    await svc.db.members.remove(community.space_id, user)
    targets = [Role.ANNOUNCEMENTS]
    if svc.config.communities.leave_space_leaves_groups:
        targets.append(Role.GROUP)
    rooms = [
        room
        for role in targets
        for room in await svc.db.rooms.of_community(community.space_id, role)
    ]
    await bounded(_remove_from(svc, room.room_id, user, community.name) for room in rooms)


@on_membership(*LEFT, roles=[Role.GROUP])
async def _left_group(svc: Service, event: MemberEvent) -> None:
    """A group admin who leaves the group stops being its admin, as in WhatsApp."""
    if not event.was_joined:
        return
    assert event.community is not None and event.room is not None
    community, room, user = event.community, event.room, event.user
    if not await svc.is_group_admin(room.room_id, user):
        return
    await svc.db.group_admins.remove(room.room_id, user)
    await svc.apply_room_power(community, room)
    await svc.audit(community.space_id, user, AuditAction.GROUP_ADMIN_LEFT, user, room.name)


async def _ensure_invited(svc: Service, community: Community, role: Role, user: UserID) -> None:
    room: CommunityRoom | None = await svc.room_of_role(community.space_id, role)
    if room is None:
        return
    if await svc.gw.membership(room.room_id, user) in (*PRESENT, "ban"):
        return
    try:
        await svc.gw.invite(room.room_id, user, reason=say("Member of {}", community.name).plain)
    except MatrixError:
        # They joined by themselves (a restricted room) between our look and the invite.
        if await svc.gw.membership(room.room_id, user) not in PRESENT:
            raise


async def _remove_from(svc: Service, room_id: RoomID, user: UserID, name: str) -> None:
    if await svc.gw.membership(room_id, user) not in PRESENT:
        return
    try:
        await svc.gw.kick(room_id, user, reason=say("Left {}", name).plain)
    except MatrixError as e:
        if is_transient(e):
            raise
        log.warning("could not remove %s from %s: %s", user, room_id, e.errcode)
