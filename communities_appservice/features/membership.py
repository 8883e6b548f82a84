"""Membership, like WhatsApp: what follows when someone joins or leaves a community room.

- joining the space: the user is a member and is invited to the announcement room (an
  admin to every group too: a room invitation arrives once the client knows the space);
- joining a group: the user becomes a member (invited to the space and announcements);
- leaving the space: the user is removed from announcements and, with
  `leave_space_leaves_groups`, from every group of this community (and no other);
- a group admin who leaves the group stops being its admin;
- the bot itself: invites from permitted users are accepted, others declined with a reason.

Knocks (join requests) and the welcome DM are the `joining` and `welcome` features' own
listeners to the same changes.

Drift (`_sweep`, a reconciliation check): what a lost event or an outage left behind is
repaired by a sweep that reads one member list per community and pass, in turn — the
space, the announcement room, then each group — and compares it with the members the router
has recorded (`community_member`): so no pass reads every list of a big community. The
space's list corrects the record; a recorded member the announcement room has never seen
(or whom the bot removed from it when they left, and who is back) is invited; someone joined
there (or, with `leave_space_leaves_groups`, in a group) who is no longer in the space is
removed (a crash can cut short the event that would have done either). Each removal or
invitation is checked against the homeserver first, and at most `FIXES_PER_PASS` are made
per pass (the rest next time).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Iterable
from weakref import WeakKeyDictionary

from mautrix.types import RoomID, UserID

from ..core.checks import RoomCheck, check
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
FIXES_PER_PASS = 50
# Per service, per community: how many passes its sweep has made (which list is next).
_turns: WeakKeyDictionary[Service, dict[str, int]] = WeakKeyDictionary()


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
    if event.user in await svc.db.admins.roles(community.space_id):
        # An admin is in every group; invited now that their client shows the space.
        groups = await svc.db.rooms.of_community(community.space_id, Role.GROUP)
        await bounded(_invite_to(svc, community, group, event.user) for group in groups)


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
    if room is not None:
        await _invite_to(svc, community, room, user)


async def _invite_to(svc: Service, community: Community, room: CommunityRoom, user: UserID) -> None:
    """Invite `user` unless they are there, invited or banned already."""
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


# --- drift -------------------------------------------------------------------------------


@check(Role.SPACE)
async def _sweep(check: RoomCheck) -> None:
    """One member list of the community per pass, in turn (see the module's docstring)."""
    svc, community = check.svc, check.community
    space_id = community.space_id
    order = [check.room]
    order += await svc.db.rooms.of_community(space_id, Role.ANNOUNCEMENTS)
    if svc.config.communities.leave_space_leaves_groups:
        order += await svc.db.rooms.of_community(space_id, Role.GROUP)
    turns = _turns.setdefault(svc, {})
    turn = turns.get(space_id, 0)
    turns[space_id] = turn + 1
    room = order[turn % len(order)]
    events = await svc.gw.membership_events(room.room_id)
    members = {user: membership for user, (membership, _) in events.items()}
    if room.role == Role.SPACE:
        await _correct_record(svc, community, members)
        return
    recorded = set(await svc.db.members.of_community(space_id))
    strays = [
        user
        for user, membership in members.items()
        if membership == "join" and user not in recorded and user != svc.bot
    ]
    removed = await _fix(_remove_stray(svc, community, room, user) for user in strays)
    if removed:
        await check.repaired_in(
            room, say("people removed who had left the community: {}", removed).plain
        )
    if room.role == Role.ANNOUNCEMENTS:
        # Never there, or removed by the bot when they left the community and back now:
        # invited. Someone who left by themselves, or whom an admin removed, is left alone.
        unseen = [
            user
            for user in sorted(recorded)
            if user not in events or events[user] == ("leave", svc.bot)
        ]
        invited = await _fix(_invite_unseen(svc, community, room, user) for user in unseen)
        if invited:
            await check.repaired_in(
                room, say("members of the space invited who never had been: {}", invited).plain
            )


async def _correct_record(svc: Service, community: Community, members: dict[UserID, str]) -> None:
    space_id = community.space_id
    joined = {user for user, membership in members.items() if membership == "join"}
    joined.discard(svc.bot)
    recorded = set(await svc.db.members.of_community(space_id))
    for user in sorted(joined - recorded):
        await svc.db.members.add(space_id, user, now_ms())
    for user in sorted(recorded - joined):
        await svc.db.members.remove(space_id, user)
    if joined != recorded:
        log.info(
            "%s: recorded %d members the router had not seen, forgot %d who had left",
            space_id,
            len(joined - recorded),
            len(recorded - joined),
        )


async def _fix(calls: Iterable[Awaitable[bool]]) -> int:
    """Run the fixes, at most `FIXES_PER_PASS`; how many changed something."""
    first = list(itertools.islice(calls, FIXES_PER_PASS))
    return sum(await bounded(first))


async def _remove_stray(
    svc: Service, community: Community, room: CommunityRoom, user: UserID
) -> bool:
    if await svc.gw.membership(community.space_id, user) in PRESENT:
        return False  # in the space after all (the router has not recorded it yet)
    await _remove_from(svc, room.room_id, user, community.name)
    return True


async def _invite_unseen(
    svc: Service, community: Community, room: CommunityRoom, user: UserID
) -> bool:
    if await svc.gw.membership(community.space_id, user) != "join":
        return False  # gone from the space: the next look at its list forgets them
    await svc.gw.invite(room.room_id, user, reason=say("Member of {}", community.name).plain)
    return True
