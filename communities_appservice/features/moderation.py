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

from mautrix.types import RoomID, UserID

from ..core.notices import say
from ..core.operations import NOWHERE, Origin, operation
from ..core.run import Params, Run
from ..core.service import Service
from ..db import now_ms
from ..db.ban import Ban
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Conflict
from ..language import N_
from ..matrix.errors import MatrixError, is_transient, patiently
from ..rules.ids import check_user_id
from ..rules.model import AuditAction
from ..rules.moderation import (
    UNKNOWN,
    Action,
    check_can_moderate,
    check_reason,
    rooms_to_ban,
    rooms_to_remove,
    rooms_to_unban,
    shared_rooms,
)
from ..tasks import bounded

log = logging.getLogger("communities.moderation")
MembershipCall = Callable[[RoomID, UserID, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Moderate(Params):
    action: Action
    user: UserID
    rooms: list[RoomID]
    why: str | None


@dataclass(frozen=True)
class Outcome:
    """How many rooms were acted on, and in how many the homeserver refused."""

    done: int
    failed: int
    refused: tuple[str, ...] = ()  # the names of the rooms where it failed


class Moderation:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def remove(
        self,
        community: Community,
        sender: UserID,
        user: UserID,
        reason: str,
        origin: Origin = NOWHERE,
    ) -> Outcome:
        """Kick `user` from every room of the community they are joined, invited or knocking."""
        why = await self._check(community, user, reason, Action.REMOVE)
        rooms = rooms_to_remove(await self._memberships(community, user))
        if not rooms:
            raise Conflict("{} is not in this community.", user)
        return await self._run(community, sender, Action.REMOVE, user, rooms, why, origin)

    async def ban(
        self,
        community: Community,
        sender: UserID,
        user: UserID,
        reason: str,
        origin: Origin = NOWHERE,
    ) -> Outcome:
        """Ban `user` in every room of the community, whether or not they ever joined."""
        why = await self._check(community, user, reason, Action.BAN)
        rooms = rooms_to_ban(await self._memberships(community, user))
        if not rooms:
            raise Conflict("{} is already banned in every room of this community.", user)
        return await self._run(community, sender, Action.BAN, user, rooms, why, origin)

    async def unban(
        self, community: Community, sender: UserID, user: UserID, origin: Origin = NOWHERE
    ) -> Outcome:
        """Lift the ban in every room of the community where `user` is banned."""
        check_user_id(user)
        rooms = rooms_to_unban(await self._memberships(community, user))
        if not rooms:
            raise Conflict("{} is not banned in this community.", user)
        return await self._run(community, sender, Action.UNBAN, user, rooms, None, origin)

    async def _run(
        self,
        community: Community,
        sender: UserID,
        action: Action,
        user: UserID,
        rooms: list[RoomID],
        why: str | None,
        origin: Origin,
    ) -> Outcome:
        params = Moderate(action, user, rooms, why)
        run = await self.svc.ops.run(params, sender, origin, community.space_id)
        done, failed = run.result("outcome")
        names = {
            r.room_id: r.name for r in await self.svc.db.rooms.of_community(community.space_id)
        }
        refused = tuple(names.get(r, r) for r in run.result("refused rooms") or [])
        return Outcome(done=int(done), failed=int(failed), refused=refused)

    async def common(
        self, community: Community, sender: UserID, user: UserID
    ) -> list[CommunityRoom]:
        """The groups of the community that both `sender` and `user` have joined."""
        check_user_id(user)
        groups = await self.svc.groups(community.space_id)
        joined = await bounded(self._joined(group.room_id) for group in groups)
        shared = set(
            shared_rooms(
                {g.room_id: members for g, members in zip(groups, joined, strict=True)},
                sender,
                user,
            )
        )
        return [group for group in groups if group.room_id in shared]

    # --- steps -------------------------------------------------------------------------

    async def _check(
        self, community: Community, user: UserID, reason: str, action: Action
    ) -> str | None:
        check_user_id(user)
        why = check_reason(reason)
        roles = await self.svc.admin_roles(community.space_id)
        check_can_moderate(roles, user, self.svc.bot, action)
        return why

    async def _memberships(self, community: Community, user: UserID) -> dict[RoomID, str | None]:
        """The user's membership in every room of the community, in the rooms' order."""
        rooms = await self.svc.db.rooms.of_community(community.space_id)
        found = await bounded(self._membership(room.room_id, user) for room in rooms)
        return {room.room_id: m for room, m in zip(rooms, found, strict=True)}

    async def _membership(self, room_id: RoomID, user: UserID) -> str | None:
        """Read before the operation starts: a short outage is waited out."""
        return await patiently(lambda: _membership(self.svc, room_id, user, unknown=UNKNOWN))

    async def _joined(self, room_id: RoomID) -> set[UserID]:
        try:
            return await self.svc.gw.joined_members(room_id)
        except MatrixError as e:
            log.warning("cannot read the members of %s: %s", room_id, e.errcode)
            return set()


# How each action reads in a reason given to the homeserver, and in the operation's outcome.
_REASONS = {
    Action.REMOVE: N_("Removed from {}"),
    Action.BAN: N_("Banned from {}"),
    Action.UNBAN: N_("Unbanned from {}"),
}
OUTCOMES = {
    Action.REMOVE: N_("Removed {} in {} room(s) of {}."),
    Action.BAN: N_("Banned {} in {} room(s) of {}."),
    Action.UNBAN: N_("Unbanned {} in {} room(s) of {}."),
}
# The memberships in which the action has nothing left to do.
_DONE: dict[Action, tuple[str | None, ...]] = {
    Action.REMOVE: ("leave", "ban", None),
    Action.BAN: ("ban",),
    Action.UNBAN: ("leave", None),
}


@operation("moderate", Moderate)
async def _moderate(svc: Service, run: Run[Moderate]) -> str:
    """Act on one person in every listed room, the space last; a refusal in one room does not
    stop the rest (it is counted and logged)."""
    p = run.params
    action, user = p.action, p.user
    space_id = run.op.space_id
    community = await svc.db.communities.get(space_id)
    name = community.name if community else space_id
    calls: dict[Action, MembershipCall] = {
        Action.REMOVE: svc.gw.kick,
        Action.BAN: svc.gw.ban,
        Action.UNBAN: svc.gw.unban,
    }
    call = calls[action]
    why = p.why
    if action is Action.UNBAN:
        reason = say("Unbanned by {}", run.op.actor).plain
    else:
        reason = why or say(_REASONS[action], name).plain

    async def one(room_id: RoomID) -> bool:
        async def act() -> bool:
            try:
                await call(room_id, user, reason)
            except MatrixError as e:
                if is_transient(e):
                    raise
                # Done already (by a run a crash cut short, or by hand) counts as done.
                if await _membership(svc, room_id, user, unknown=UNKNOWN) in _DONE[action]:
                    return True
                log.warning("could not act on %s in %s: %s", user, room_id, e.errcode)
                return False
            return True

        return await run.step(f"{action} {room_id}", act)

    if action is not Action.UNBAN and not run.results(f"{action} "):
        # Protected people, again under the community's lock (promoted meanwhile?).
        roles = await svc.admin_roles(space_id)
        check_can_moderate(roles, user, svc.bot, action)
    if action is Action.BAN:  # first: a group made from now on applies it too

        async def record_ban() -> None:
            ban = Ban(space_id, user, why or "", run.op.actor, now_ms())
            await svc.db.bans.put(ban)

        await run.step("record ban", record_ban)
    elif action is Action.UNBAN:
        await run.step("forget ban", lambda: svc.db.bans.delete(space_id, user))
    rooms = list(p.rooms)
    results = await bounded(one(room) for room in rooms if room != space_id)
    if space_id in rooms:
        results.append(await one(space_id))
    done = sum(results)
    failed = len(results) - done
    acted = [room for room in rooms if room != space_id] + ([space_id] if space_id in rooms else [])
    await run.keep("refused rooms", [r for r, ok in zip(acted, results, strict=True) if not ok])
    if action in (Action.REMOVE, Action.BAN):
        await run.step("forget", lambda: svc.db.members.remove(space_id, user))
    detail = f"{done} rooms" + (f"; {why}" if why else "")
    result = "ok" if not failed else f"failed in {failed} rooms"
    audited = AuditAction(action.value)
    await run.step(
        "audit", lambda: svc.audit(space_id, run.op.actor, audited, user, detail, result)
    )
    await run.keep("outcome", [done, failed])
    return say(OUTCOMES[action], user, done, name).plain


async def _membership(
    svc: Service, room_id: RoomID, user: UserID, *, unknown: str | None
) -> str | None:
    """`user`'s membership in the room; `unknown` when the homeserver will not say (the bot is
    not in the room); an outage propagates."""
    try:
        return await svc.gw.membership(room_id, user)
    except MatrixError as e:
        if is_transient(e):
            raise
        log.warning("cannot read %s's membership in %s: %s", user, room_id, e.errcode)
        return unknown
