"""Making a group, new or adopted: what the structure feature and group suggestions share.

Each use case checks everything it can first (a refusal changes nothing), then runs as an
operation, so that a crash in the middle is finished after the restart, or undone when it
cannot be finished: no orphan room, no half-linked group. A group made from a member's
suggestion settles the suggestion as a step of the same operation, so that a crash cannot
leave it pending, to be accepted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mautrix.types import RoomID, UserID

from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Conflict, Forbidden
from ..language import N_
from ..matrix.errors import MatrixError
from ..rules.blueprints import child_state, new_power, room_request
from ..rules.joins import (
    group_access_from_join_rule,
    group_join_rule,
    join_rule_content,
    marker_content,
    parent_content,
)
from ..rules.limits import MAX_NAME, check_can_add_group, check_name, check_text
from ..rules.model import MARKER_EVENT, MEGOLM, AuditAction, GroupAccess, Role, SuggestionState
from ..rules.power import adoption_problems, creator_problem
from .notices import say
from .operations import NOWHERE, Origin, operation
from .rooms import link_child, quietly, record_room, show_bot_as, site, undo_rooms
from .run import Params, Run
from .service import Service


@dataclass(frozen=True)
class GroupCreate(Params):
    name: str
    topic: str
    access: GroupAccess
    suggestion: int | None = None


@dataclass(frozen=True)
class GroupAdd(Params):
    room_id: RoomID
    name: str
    access: GroupAccess
    # The room's join rule and power levels before: what an undone adoption puts back.
    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    suggestion: int | None = None


class Groups:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def create(
        self,
        community: Community,
        sender: UserID,
        name: str,
        topic: str,
        access: GroupAccess,
        origin: Origin = NOWHERE,
        suggestion: int | None = None,
    ) -> CommunityRoom:
        """A new group; `suggestion`: the member's suggestion it comes from, if any."""
        svc = self.svc
        name = check_name(name, N_("group name"))
        topic = check_text(topic, N_("topic"))
        await check_group_room(svc, community.space_id)
        params = GroupCreate(name, topic, access, suggestion)
        run = await svc.ops.run(params, sender, origin, community.space_id)
        room = await svc.db.rooms.get(RoomID(run.rooms()["group"]))
        assert room is not None
        return room

    async def adopt(
        self,
        community: Community,
        sender: UserID,
        ref: str,
        origin: Origin = NOWHERE,
        suggestion: int | None = None,
    ) -> CommunityRoom:
        """Take an existing room in as a group, if the bot can hold the top power there."""
        svc = self.svc
        room_id = await svc.resolve_room(ref)
        if await svc.db.rooms.get(room_id) is not None:
            raise Conflict("That room already belongs to a community.")
        await check_group_room(svc, community.space_id)
        try:
            await svc.gw.join(room_id, reason=say("Adopting into {}", community.name).plain)
        except MatrixError as e:
            raise Forbidden(
                "The bot cannot join that room ({}); invite {} first.", e.errcode, svc.bot
            ) from None
        await self._check_adoptable(room_id)
        name = (await svc.gw.get_state(room_id, "m.room.name") or {}).get("name") or room_id
        before = {
            event_type: await svc.gw.get_state(room_id, event_type) or {}
            for event_type in ("m.room.join_rules", "m.room.power_levels")
        }
        join_rule = before["m.room.join_rules"].get("join_rule", "invite")
        access = group_access_from_join_rule(str(join_rule))
        params = GroupAdd(room_id, str(name)[:MAX_NAME], access, before, suggestion)
        await svc.ops.run(params, sender, origin, community.space_id)
        room = await svc.db.rooms.get(room_id)
        assert room is not None
        return room

    async def _check_adoptable(self, room_id: RoomID) -> None:
        svc = self.svc
        create = await svc.gw.get_create(room_id)
        problems = []
        problem = creator_problem(create, svc.bot)
        if problem:
            problems.append(problem)
        power = await svc.gw.get_state(room_id, "m.room.power_levels") or {}
        problems.extend(adoption_problems(power, svc.bot))
        if int(str(create.get("room_version", "1")).split(".")[0] or 1) < 8:
            problems.append("upgrade the room to version 8 or newer (restricted joins)")
        if problems:
            await svc.gw.leave(room_id, reason=say("Cannot adopt this room").plain)
            raise Forbidden("The bot cannot take charge of that room: {}.", "; ".join(problems))


async def check_group_room(svc: Service, space_id: RoomID) -> None:
    groups = await svc.groups(space_id)
    check_can_add_group(len(groups), svc.config.communities.max_groups)


async def apply_bans(svc: Service, run: Run[Any], space_id: RoomID, room_id: RoomID) -> None:
    """The community's bans hold in a group made after them, before it is linked: a banned
    user can neither join it nor knock on it."""

    async def ban_all() -> int:
        bans = await svc.db.bans.of_community(space_id)
        for ban in bans:
            if await svc.gw.membership(room_id, ban.user_id) != "ban":
                reason = ban.reason or say("Banned from the community").plain
                await svc.gw.ban(room_id, ban.user_id, reason)
        return len(bans)

    await run.step("bans", ban_all)


async def _settle_suggestion(
    svc: Service, run: Run[GroupCreate] | Run[GroupAdd], room_id: RoomID
) -> None:
    suggestion = run.params.suggestion
    if suggestion is None:
        return
    space_id = run.op.space_id

    async def accept() -> None:
        await svc.db.suggestions.decide(suggestion, SuggestionState.ACCEPTED)
        await svc.audit(space_id, run.op.actor, AuditAction.GROUP_ACCEPT, room_id, run.params.name)

    await run.step("suggestion", accept)


async def _undo_group_create(svc: Service, run: Run[GroupCreate], reason: str) -> str:
    await undo_rooms(svc, run, reason, ["group"])
    return say(
        "Could not create the group {}: {}. Nothing is left of it.", run.params.name, reason
    ).plain


@operation("group create", GroupCreate, undo=_undo_group_create)
async def _group_create(svc: Service, run: Run[GroupCreate]) -> str:
    p, space_id = run.params, run.op.space_id
    if not run.result("room:group"):  # the limit, again under the community's lock
        await check_group_room(svc, space_id)
    admins = await svc.db.admins.roles(space_id)
    room_id = await run.create_room(
        "group",
        room_request(
            site(svc),
            p.name,
            topic=p.topic,
            invite=admins,
            power=new_power(site(svc), Role.GROUP, admins),
            state=child_state(site(svc), space_id, Role.GROUP, group_join_rule(p.access)),
        ),
    )

    async def record() -> None:
        position = await run.step("position", lambda: svc.db.rooms.next_position(space_id))
        await record_room(svc, space_id, room_id, Role.GROUP, p.name, position, p.access)
        await show_bot_as(svc, room_id, (await run.community()).name)
        await link_child(svc, space_id, room_id, Role.GROUP, position)
        await svc.audit(space_id, run.op.actor, AuditAction.GROUP_CREATE, room_id, p.name)

    await apply_bans(svc, run, space_id, room_id)
    await run.step("record", record)
    await _settle_suggestion(svc, run, room_id)
    await run.release_tags()
    return say("Created the group {}.", p.name).plain


async def _undo_group_add(svc: Service, run: Run[GroupAdd], reason: str) -> str:
    """The room as it was before: its own power levels and join rule, no links, no bot."""
    p, space_id = run.params, run.op.space_id
    known = await svc.db.rooms.get(p.room_id)
    if known is not None and known.space_id != space_id:
        # Another community holds it: this adoption never got as far as touching it.
        return say("Could not adopt {}: {}.", p.name, reason).plain
    await quietly(svc.gw.send_state(space_id, "m.space.child", {}, p.room_id))
    await quietly(svc.gw.send_state(p.room_id, "m.space.parent", {}, space_id))
    await quietly(svc.gw.send_state(p.room_id, MARKER_EVENT, {}))
    for event_type in ("m.room.join_rules", "m.room.power_levels"):
        before = p.before.get(event_type)
        if before:
            await quietly(svc.gw.send_state(p.room_id, event_type, before))
    await svc.db.rooms.delete(p.room_id)
    await quietly(svc.gw.leave(p.room_id, reason=say("Not adopted: {}", reason).plain))
    return say("Could not adopt {}: {}. It is a plain room again, as it was.", p.name, reason).plain


@operation("group add", GroupAdd, undo=_undo_group_add)
async def _group_add(svc: Service, run: Run[GroupAdd]) -> str:
    p = run.params
    community = await run.community()
    space_id, room_id = community.space_id, p.room_id
    if not run.result("record"):  # the limit, again under the community's lock
        await check_group_room(svc, space_id)
    position = await run.step("position", lambda: svc.db.rooms.next_position(space_id))
    await run.step(
        "record",
        lambda: record_room(
            svc, space_id, room_id, Role.GROUP, p.name, position, p.access, adopted=True
        ),
    )
    room = await svc.db.rooms.get(room_id)
    assert room is not None
    await run.step("power", lambda: svc.apply_room_power(community, room))
    for event_type, content, key in (
        (MARKER_EVENT, marker_content(space_id, Role.GROUP), ""),
        ("m.space.parent", parent_content(svc.server_name), space_id),
    ):
        await run.step(f"state {event_type}", _sender(svc, room_id, event_type, content, key))
    if p.access is GroupAccess.OPEN:
        content = join_rule_content("restricted", space_id)
        await run.step("join rule", _sender(svc, room_id, "m.room.join_rules", content, ""))

    async def encrypt() -> None:
        if svc.config.encryption.enabled and not await svc.gw.get_state(
            room_id, "m.room.encryption"
        ):
            await svc.gw.send_state(room_id, "m.room.encryption", {"algorithm": MEGOLM})

    await run.step("encryption", encrypt)
    await apply_bans(svc, run, space_id, room_id)
    await run.step("link", lambda: link_child(svc, space_id, room_id, Role.GROUP, position))
    await run.step(
        "audit", lambda: svc.audit(space_id, run.op.actor, AuditAction.GROUP_ADD, room_id, p.name)
    )
    await _settle_suggestion(svc, run, room_id)
    return say("Added {} as a group.", p.name).plain


def _sender(
    svc: Service, room_id: RoomID, event_type: str, content: dict[str, Any], key: str
) -> Any:
    async def send() -> None:
        await svc.gw.send_state(room_id, event_type, content, key)

    return send
