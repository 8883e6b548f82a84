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
from .operations import NOWHERE, Origin, Run, is_transient, operation
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

    async def remove(
        self, community: Community, sender: str, user: str, reason: str, origin: Origin = NOWHERE
    ) -> Outcome:
        """Kick `user` from every room of the community they are joined, invited or knocking."""
        why = await self._check(community, user, reason, "remove")
        rooms = rules.rooms_to_remove(await self._memberships(community, user))
        if not rooms:
            raise Conflict(f"{user} is not in this community.")
        return await self._run(community, sender, "remove", user, rooms, why, origin)

    async def ban(
        self, community: Community, sender: str, user: str, reason: str, origin: Origin = NOWHERE
    ) -> Outcome:
        """Ban `user` in every room of the community, whether or not they ever joined."""
        why = await self._check(community, user, reason, "ban")
        rooms = rules.rooms_to_ban(await self._memberships(community, user))
        if not rooms:
            raise Conflict(f"{user} is already banned in every room of this community.")
        return await self._run(community, sender, "ban", user, rooms, why, origin)

    async def unban(
        self, community: Community, sender: str, user: str, origin: Origin = NOWHERE
    ) -> Outcome:
        """Lift the ban in every room of the community where `user` is banned."""
        rules.check_user_id(user)
        rooms = rules.rooms_to_unban(await self._memberships(community, user))
        if not rooms:
            raise Conflict(f"{user} is not banned in this community.")
        return await self._run(community, sender, "unban", user, rooms, None, origin)

    async def _run(
        self,
        community: Community,
        sender: str,
        action: str,
        user: str,
        rooms: list[str],
        why: str | None,
        origin: Origin,
    ) -> Outcome:
        params = {"action": action, "user": user, "rooms": rooms, "why": why}
        run = await self.svc.ops.run("moderate", sender, params, origin, community.space_id)
        done, failed = run.result("outcome")
        return Outcome(done=int(done), failed=int(failed))

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


# How each action reads in a reason given to the homeserver, and in the operation's outcome.
_VERBS = {"remove": "Removed", "ban": "Banned", "unban": "Unbanned"}
# The memberships in which the action has nothing left to do.
_DONE: dict[str, tuple[str | None, ...]] = {
    "remove": ("leave", "ban", None),
    "ban": ("ban",),
    "unban": ("leave", None),
}


@operation("moderate")
async def _moderate(run: Run) -> str:
    """Act on one person in every listed room, the space last; a refusal in one room does not
    stop the rest (it is counted and logged)."""
    svc, p = run.svc, run.params
    action, user = str(p["action"]), str(p["user"])
    space_id = run.op.space_id
    community = await svc.db.communities.get(space_id)
    name = community.name if community else space_id
    calls: dict[str, MembershipCall] = {
        "remove": svc.gw.kick,
        "ban": svc.gw.ban,
        "unban": svc.gw.unban,
    }
    call = calls[action]
    why = p.get("why")
    if action == "unban":
        reason = f"Unbanned by {run.op.actor}"
    else:
        reason = why or f"{_VERBS[action]} from {name}"

    async def one(room_id: str) -> bool:
        async def act() -> bool:
            try:
                await call(room_id, user, reason)
            except MatrixError as e:
                if is_transient(e):
                    raise
                # Done already (by a run a crash cut short, or by hand) counts as done.
                if await _membership_now(svc, room_id, user) in _DONE[action]:
                    return True
                log.warning("could not act on %s in %s: %s", user, room_id, e.errcode)
                return False
            return True

        return await run.step(f"{action} {room_id}", act)

    if action != "unban" and not run.results(f"{action} "):
        # Protected people, again under the community's lock (promoted meanwhile?).
        roles = await svc.admin_roles(space_id)
        rules.check_can_moderate(roles, user, svc.bot, action)
    rooms = [str(r) for r in p["rooms"]]
    results = await bounded(one(room) for room in rooms if room != space_id)
    if space_id in rooms:
        results.append(await one(space_id))
    done = sum(results)
    failed = len(results) - done
    if action in ("remove", "ban"):
        await run.step("forget", lambda: svc.db.members.remove(space_id, user))
    detail = f"{done} rooms" + (f"; {why}" if why else "")
    result = "ok" if not failed else f"failed in {failed} rooms"
    await run.step("audit", lambda: svc.audit(space_id, run.op.actor, action, user, detail, result))
    await run.keep("outcome", [done, failed])
    return f"{_VERBS[action]} {user} in {done} room(s) of {name}."


async def _membership_now(svc: Service, room_id: str, user: str) -> str | None:
    try:
        return await svc.gw.membership(room_id, user)
    except MatrixError as e:
        if is_transient(e):
            raise
        return "unknown"  # the bot cannot see into the room
