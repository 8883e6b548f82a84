"""Roles: community admins (promoted and dismissed across every room), the owner, group admins.

Promoting or dismissing an admin changes the power levels of every room of the community and
the admins room's membership: an `operation`, so that a crash or a homeserver outage in the
middle ends with the change made everywhere, never in half of the rooms. The records change
first; every room is then written from the records, so a resumed step writes the same levels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID

from ..core.dms import dm_with
from ..core.notices import notice, say, txn_key
from ..core.operations import NOWHERE, Origin, operation
from ..core.run import Params, Run
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Conflict
from ..matrix.errors import MatrixError, is_transient
from ..matrix.gateway import matrix_to
from ..rules.ids import check_user_id
from ..rules.limits import (
    check_can_add_admin,
    check_can_add_group_admin,
    check_can_remove_admin,
    check_can_remove_group_admin,
    check_can_transfer_owner,
)
from ..rules.model import AdminRole, AuditAction, Role
from ..tasks import bounded

log = logging.getLogger("communities.roles")


@dataclass(frozen=True)
class AdminChange(Params):
    user: UserID


@dataclass(frozen=True)
class AdminAdd(AdminChange):
    pass


@dataclass(frozen=True)
class AdminRemove(AdminChange):
    pass


class Roles:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def _require_joined(self, community: Community, user: UserID) -> None:
        check_user_id(user)
        if await self.svc.gw.membership(community.space_id, user) != "join":
            raise Conflict("{} has not joined this community.", user)

    async def add_admin(
        self, community: Community, sender: UserID, user: UserID, origin: Origin = NOWHERE
    ) -> list[str]:
        """Promote `user`; returns the names of rooms whose homeserver refused the change."""
        svc = self.svc
        await self._require_joined(community, user)
        roles = await svc.db.admins.roles(community.space_id)
        check_can_add_admin(roles, user, svc.config.communities.max_admins)
        run = await svc.ops.run(AdminAdd(user), sender, origin, community.space_id)
        return list(run.result("refused") or [])

    async def remove_admin(
        self, community: Community, sender: UserID, user: UserID, origin: Origin = NOWHERE
    ) -> list[str]:
        svc = self.svc
        check_user_id(user)
        roles = await svc.db.admins.roles(community.space_id)
        check_can_remove_admin(roles, user)
        run = await svc.ops.run(AdminRemove(user), sender, origin, community.space_id)
        return list(run.result("refused") or [])

    async def transfer_owner(self, community: Community, sender: UserID, user: UserID) -> None:
        """Hand the community to another admin; the old owner stays an admin.

        Both hold the admin level everywhere before and after, so no room changes: only the
        records do, in one transaction that also checks that nobody handed the community on
        meanwhile, so that there is never zero or two owners."""
        svc = self.svc
        await self._require_joined(community, user)
        roles = await svc.db.admins.roles(community.space_id)
        check_can_transfer_owner(roles, user)
        old = community.owner
        async with svc.db.transaction():
            if not await svc.db.communities.replace_owner(community.space_id, old, user):
                raise Conflict("The owner changed meanwhile; nothing was done.")
            await svc.db.admins.put(community.space_id, old, AdminRole.ADMIN, now_ms())
            await svc.db.admins.put(community.space_id, user, AdminRole.OWNER, now_ms())
        community.owner = user
        await svc.audit(community.space_id, sender, AuditAction.OWNER_TRANSFER, user, f"from {old}")

    async def add_group_admin(
        self, community: Community, group: CommunityRoom, sender: UserID, user: UserID
    ) -> None:
        svc = self.svc
        check_user_id(user)
        if await svc.gw.membership(group.room_id, user) != "join":
            raise Conflict("{} has not joined {}.", user, group.name)
        admins = await svc.db.admins.roles(community.space_id)
        group_admins = await svc.db.group_admins.of_room(group.room_id)
        check_can_add_group_admin(admins, group_admins, user, group.name)
        await svc.db.group_admins.add(group.room_id, user, now_ms())
        await svc.apply_room_power(community, group)
        await svc.audit(community.space_id, sender, AuditAction.GROUP_ADMIN_ADD, user, group.name)

    async def remove_group_admin(
        self, community: Community, group: CommunityRoom, sender: UserID, user: UserID
    ) -> None:
        svc = self.svc
        check_user_id(user)
        group_admins = await svc.db.group_admins.of_room(group.room_id)
        check_can_remove_group_admin(group_admins, user, group.name)
        await svc.db.group_admins.remove(group.room_id, user)
        await svc.apply_room_power(community, group)
        await svc.audit(
            community.space_id, sender, AuditAction.GROUP_ADMIN_REMOVE, user, group.name
        )


async def _power_everywhere(svc: Service, run: Run[Any], community: Community) -> list[str]:
    """Write the recorded power levels into every room; the names of rooms that refused."""
    rooms = await svc.db.rooms.of_community(community.space_id)
    room_ids = await run.keep("rooms", [r.room_id for r in rooms])
    by_id = {r.room_id: r for r in rooms}

    async def one(room_id: RoomID) -> str:
        async def write() -> str:
            room = by_id.get(room_id)
            if room is None:  # removed from the community meanwhile
                return ""
            try:
                await svc.apply_room_power(community, room)
            except MatrixError as e:
                if is_transient(e):
                    raise
                log.warning("power levels refused in %s: %s", room_id, e.errcode)
                return room.name
            return ""

        return await run.step(f"power {room_id}", write)

    refused = [name for name in await bounded(one(r) for r in room_ids) if name]
    await run.keep("refused", refused)
    return refused


def _refusal_note(refused: list[str]) -> str:
    if not refused:
        return ""
    return say(
        " The homeserver refused the change in {}: see `info` for what an admin should do there.",
        ", ".join(refused),
    ).plain


@operation("admin add", AdminAdd)
async def _admin_add(svc: Service, run: Run[AdminAdd]) -> str:
    user = run.params.user
    community = await run.community()
    space_id = community.space_id

    async def record() -> None:
        roles = await svc.db.admins.roles(space_id)
        if user not in roles:  # the limit, again under the community's lock
            check_can_add_admin(roles, user, svc.config.communities.max_admins)
            await svc.db.admins.put(space_id, user, AdminRole.ADMIN, now_ms())

    await run.step("record", record)

    async def invite() -> None:
        admins = await svc.room_of_role(space_id, Role.ADMINS)
        room = admins.room_id if admins else None
        if room and await svc.gw.membership(room, user) not in ("join", "invite"):
            try:
                await svc.gw.invite(room, user, reason=say("You are now an admin").plain)
            except MatrixError as e:  # banned there, say: reconciliation reports the room
                if is_transient(e):
                    raise
                log.warning("could not invite %s to the admins room: %s", user, e.errcode)

    async def welcome() -> None:
        """A DM to the new admin with the way into the admins room, which is not in the
        space (by design) and so cannot be found from it."""
        admins = await svc.room_of_role(space_id, Role.ADMINS)
        if admins is None:
            return
        prefix = svc.config.communities.command_prefix
        text = say(
            "You are now an admin of <b>{}</b>. Its admins room — join requests, alerts and "
            'the audit notes — is <a href="{}">{}</a>; it is not in the space, so this link '
            "is the way in. <code>{} help</code> lists what admins can do.",
            community.name,
            matrix_to(admins.room_id),
            admins.name,
            prefix,
        )
        try:
            dm = await dm_with(svc, user)
            txn_id = txn_key("admin welcome", str(run.op.id))
            await svc.gw.send_message(dm, "m.room.message", notice(text), txn_id)
        except MatrixError as e:  # they refuse DMs from the bot, say: the promotion stands
            if is_transient(e):
                raise
            log.warning("could not tell %s of their promotion: %s", user, e.errcode)

    async def tell() -> list[str]:
        await run.step("invite", invite)
        await run.step("welcome", welcome)
        return []

    # The invitation and the DM need no power level: they go while the rooms are written.
    refused, _ = await bounded([_power_everywhere(svc, run, community), tell()])
    result = "ok" if not refused else f"refused in {', '.join(refused)}"
    await run.step(
        "audit", lambda: svc.audit(space_id, run.op.actor, AuditAction.ADMIN_ADD, user, "", result)
    )
    return say("{} is now an admin of {}.{}", user, community.name, _refusal_note(refused)).plain


@operation("admin remove", AdminRemove)
async def _admin_remove(svc: Service, run: Run[AdminRemove]) -> str:
    user = run.params.user
    community = await run.community()
    space_id = community.space_id

    async def record() -> None:
        if (await svc.db.admins.roles(space_id)).get(user) is AdminRole.ADMIN:
            await svc.db.admins.delete(space_id, user)

    await run.step("record", record)
    refused = await _power_everywhere(svc, run, community)

    async def leave_admins_room() -> None:
        admins = await svc.room_of_role(space_id, Role.ADMINS)
        room = admins.room_id if admins else None
        if room and await svc.gw.membership(room, user) in ("join", "invite"):
            await svc.gw.kick(room, user, say("No longer an admin").plain)

    await run.step("kick", leave_admins_room)
    result = "ok" if not refused else f"refused in {', '.join(refused)}"
    await run.step(
        "audit",
        lambda: svc.audit(space_id, run.op.actor, AuditAction.ADMIN_REMOVE, user, "", result),
    )
    return say(
        "{} is no longer an admin of {}.{}", user, community.name, _refusal_note(refused)
    ).plain
