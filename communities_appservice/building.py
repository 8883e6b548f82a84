"""The community's structure: create it, create, adopt and remove groups.

Each use case checks everything it can first (a refusal changes nothing), then runs as an
`operation`, so that a crash in the middle is finished after the restart, or undone when it
cannot be finished: no orphan room, no half-linked group.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import rules
from .db import now_ms
from .db.community import Community
from .db.room import CommunityRoom
from .errors import Conflict, Forbidden
from .matrix.gateway import MatrixError
from .operations import NOWHERE, Origin, Run, is_transient, operation
from .rules import AdminRole, GroupAccess, JoinMode, Levels, Permission, Role
from .service import Service, bounded

log = logging.getLogger("communities.building")

# Rooms of a new community, in `position` order: the space, announcements, groups, admins.
SPACE_POSITION = 0
ANNOUNCEMENTS_POSITION = 1
FIRST_GROUP_POSITION = 2


class Building:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def create_community(
        self,
        sender: str,
        name: str,
        description: str,
        join_mode: JoinMode,
        groups: Iterable[str] = (),
        origin: Origin = NOWHERE,
    ) -> Community:
        svc = self.svc
        if svc.permission(sender) < Permission.CREATOR:
            raise Forbidden("You are not allowed to create communities on this server.")
        name = rules.check_name(name)
        description = rules.check_text(description, "description")
        group_names = rules.check_group_names(groups, svc.config.communities.max_groups)
        params = {
            "owner": sender,
            "name": name,
            "description": description,
            "join_mode": str(join_mode),
            "groups": group_names,
        }
        run = await svc.ops.run("create", sender, params, origin)
        community = await svc.db.communities.get(run.op.space_id)
        assert community is not None
        return community

    async def create_group(
        self,
        community: Community,
        sender: str,
        name: str,
        topic: str,
        access: GroupAccess,
        origin: Origin = NOWHERE,
        suggestion: int | None = None,
    ) -> CommunityRoom:
        """A new group; `suggestion`: the member's suggestion it comes from, if any."""
        svc = self.svc
        name = rules.check_name(name, "group name")
        topic = rules.check_text(topic, "topic")
        await self._check_group_room(community)
        params = {"name": name, "topic": topic, "access": str(access), "suggestion": suggestion}
        run = await svc.ops.run("group create", sender, params, origin, community.space_id)
        room = await svc.db.rooms.get(run.rooms()["group"])
        assert room is not None
        return room

    async def adopt_group(
        self,
        community: Community,
        sender: str,
        ref: str,
        origin: Origin = NOWHERE,
        suggestion: int | None = None,
    ) -> CommunityRoom:
        """Take an existing room in as a group, if the bot can hold the top power there."""
        svc = self.svc
        room_id = await svc.resolve_room(ref)
        if await svc.db.rooms.get(room_id) is not None:
            raise Conflict("That room already belongs to a community.")
        await self._check_group_room(community)
        try:
            await svc.gw.join(room_id, reason=f"Adopting into {community.name}")
        except MatrixError as e:
            raise Forbidden(
                f"The bot cannot join that room ({e.errcode}); invite {svc.bot} first."
            ) from None
        await self._check_adoptable(room_id)
        name = (await svc.gw.get_state(room_id, "m.room.name") or {}).get("name") or room_id
        # As the room is now: what an undone adoption puts back.
        before = {
            event_type: await svc.gw.get_state(room_id, event_type) or {}
            for event_type in ("m.room.join_rules", "m.room.power_levels")
        }
        join_rule = before["m.room.join_rules"].get("join_rule", "invite")
        access = rules.group_access_from_join_rule(str(join_rule))
        params = {
            "room_id": room_id,
            "name": str(name)[: rules.MAX_NAME],
            "access": str(access),
            "before": before,
            "suggestion": suggestion,
        }
        await svc.ops.run("group add", sender, params, origin, community.space_id)
        room = await svc.db.rooms.get(room_id)
        assert room is not None
        return room

    async def remove_group(
        self, community: Community, sender: str, ref: str, origin: Origin = NOWHERE
    ) -> CommunityRoom:
        group = await self.svc.find_group(community, ref)
        params = {"room_id": group.room_id, "name": group.name, "access": group.access}
        await self.svc.ops.run("group remove", sender, params, origin, community.space_id)
        return group

    async def _check_group_room(self, community: Community) -> None:
        await check_group_room(self.svc, community.space_id)

    async def _check_adoptable(self, room_id: str) -> None:
        svc = self.svc
        create = await svc.gw.get_create(room_id)
        problems = []
        problem = rules.creator_problem(create, svc.bot)
        if problem:
            problems.append(problem)
        power = await svc.gw.get_state(room_id, "m.room.power_levels") or {}
        problems.extend(rules.adoption_problems(power, svc.bot))
        if int(str(create.get("room_version", "1")).split(".")[0] or 1) < 8:
            problems.append("upgrade the room to version 8 or newer (restricted joins)")
        if problems:
            await svc.gw.leave(room_id, reason="Cannot adopt this room")
            raise Forbidden("The bot cannot take charge of that room: " + "; ".join(problems) + ".")


async def check_group_room(svc: Service, space_id: str) -> None:
    groups = await svc.db.rooms.of_community(space_id, str(Role.GROUP))
    rules.check_can_add_group(len(groups), svc.config.communities.max_groups)


async def settle_suggestion(run: Run, room_id: str) -> None:
    """A group made from a member's suggestion marks the suggestion accepted, as a step of
    the same operation (so a crash cannot leave it pending, to be accepted twice)."""
    suggestion = run.params.get("suggestion")
    if suggestion is None:
        return
    svc, space_id = run.svc, run.op.space_id

    async def accept() -> None:
        await svc.db.suggestions.decide(int(suggestion), "accepted")
        await svc.audit(space_id, run.op.actor, "group accept", room_id, str(run.params["name"]))

    await run.step("suggestion", accept)


# --- room requests ------------------------------------------------------------------------


def room_request(
    svc: Service,
    name: str,
    *,
    topic: str = "",
    invite: Iterable[str],
    power: dict[str, Any],
    state: list[dict[str, Any]],
    space: bool = False,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "name": name,
        "preset": "private_chat",
        "room_version": svc.config.communities.room_version,
        "invite": sorted(set(invite) - {svc.bot}),
        "power_level_content_override": power,
        "initial_state": state,
    }
    if topic:
        request["topic"] = topic
    if space:
        request["creation_content"] = {"type": "m.space"}
    return request


def child_state(svc: Service, space_id: str, role: Role, join_rule: str) -> list[dict[str, Any]]:
    state = [
        _state("m.room.join_rules", rules.join_rule_content(join_rule, space_id)),
        _state("m.room.history_visibility", {"history_visibility": "shared"}),
        _state(rules.MARKER_EVENT, rules.marker_content(space_id, role)),
    ]
    if svc.config.encryption.enabled:
        state.append(_state("m.room.encryption", {"algorithm": rules.MEGOLM}))
    if role is not Role.ADMINS:
        state.append(_state("m.space.parent", rules.parent_content(svc.server_name), space_id))
    return state


def _state(event_type: str, content: dict[str, Any], key: str = "") -> dict[str, Any]:
    return {"type": event_type, "state_key": key, "content": content}


def new_power(svc: Service, role: Role, admins: Iterable[str]) -> dict[str, Any]:
    levels = Levels.for_room(svc.config.communities.room_version, bot_is_creator=True)
    return rules.power_levels(role, levels, bot=svc.bot, admins=admins)


async def record_room(
    svc: Service,
    space_id: str,
    room_id: str,
    role: Role,
    name: str,
    position: int,
    access: GroupAccess = GroupAccess.OPEN,
    adopted: bool = False,
) -> None:
    """Record a room of the community (a no-op when a resumed step already did); a room
    another community took meanwhile is refused."""
    known = await svc.db.rooms.get(room_id)
    if known is not None:
        if known.space_id != space_id:
            raise Conflict("That room already belongs to a community.")
        return
    await svc.db.rooms.insert(
        CommunityRoom(
            room_id=room_id,
            space_id=space_id,
            role=str(role),
            name=name,
            access=str(access),
            adopted=adopted,
            position=position,
            created_at=now_ms(),
        )
    )


async def link_child(svc: Service, space_id: str, room_id: str, role: Role, position: int) -> None:
    content = rules.space_link(svc.server_name, role, position)
    assert content is not None, f"{role} rooms are not linked into the space"
    await svc.gw.send_state(space_id, "m.space.child", content, room_id)


# --- operations ---------------------------------------------------------------------------


async def _undo_rooms(run: Run, reason: str, planned: list[str]) -> int:
    """Empty and leave every room the operation made (`planned`: the step keys of every room
    it was to make, so that one whose creation was cut short is found too); unlink them."""
    svc = run.svc
    rooms = await run.find_rooms(planned)
    space_id = rooms.get("space") or run.op.space_id
    for key, room_id in rooms.items():
        if key != "space" and space_id:
            await _quietly(svc.gw.send_state(space_id, "m.space.child", {}, room_id))
    for room_id in sorted(rooms.values(), key=lambda r: r == space_id):
        try:
            members = await svc.gw.members(room_id)
        except MatrixError as e:
            if is_transient(e):
                raise
            members = {}  # the bot is not in it (any more): nothing it could do there
        for user, membership in members.items():
            if user != svc.bot and membership in ("join", "invite", "knock"):
                await _quietly(svc.gw.kick(room_id, user, f"Undone: {reason}"))
        await _quietly(svc.gw.leave(room_id, reason=f"Undone: {reason}"))
        known = await svc.db.rooms.get(room_id)
        if known is not None and known.space_id == space_id:
            await svc.db.rooms.delete(room_id)
    await run.release_tags(list(rooms))
    return len(rooms)


async def _quietly(call: Any) -> None:
    """A clean-up call the homeserver may refuse (already done, no longer allowed)."""
    try:
        await call
    except MatrixError as e:
        if is_transient(e):
            raise
        log.info("clean-up step refused (%s); going on", e.errcode)


def _create_keys(params: dict[str, Any]) -> list[str]:
    """The step keys of every room `create` makes, in order."""
    groups = [f"group {i}" for i in range(len(params["groups"]))]
    return ["space", "announcements", *groups, "admins"]


async def _undo_create(run: Run, reason: str) -> str:
    count = await _undo_rooms(run, reason, _create_keys(run.params))
    if run.op.space_id:
        await run.svc.db.communities.delete(run.op.space_id)
    return (
        f"Could not create the community {run.params['name']}: {reason}. "
        f"Removed the {count} rooms made so far; nothing is left of it."
    )


@operation("create", undo=_undo_create)
async def _create(run: Run) -> str:
    svc, p = run.svc, run.params
    name, owner = str(p["name"]), str(p["owner"])
    admins = [owner]
    space_id = await run.create_room(
        "space",
        room_request(
            svc,
            name,
            topic=str(p["description"]),
            invite=admins,
            space=True,
            power=new_power(svc, Role.SPACE, admins),
            state=[
                _state(
                    "m.room.join_rules",
                    rules.join_rule_content(rules.space_join_rule(JoinMode(p["join_mode"]))),
                ),
                _state("m.room.history_visibility", {"history_visibility": "shared"}),
            ],
        ),
    )
    await run.set_space(space_id)

    async def record_community() -> None:
        if await svc.db.communities.get(space_id) is None:
            community = Community(
                space_id=space_id,
                name=name,
                description=str(p["description"]),
                join_mode=str(p["join_mode"]),
                owner=owner,
                state="creating",
                room_version=svc.config.communities.room_version,
                created_at=now_ms(),
            )
            async with svc.db.transaction():
                await svc.db.communities.insert(community)
                await svc.db.admins.put(space_id, owner, AdminRole.OWNER, now_ms())
        await record_room(svc, space_id, space_id, Role.SPACE, name, SPACE_POSITION)
        await svc.gw.send_state(
            space_id, rules.MARKER_EVENT, rules.marker_content(space_id, Role.SPACE)
        )

    await run.step("record space", record_community)

    async def child(key: str, title: str, role: Role, rule: str, topic: str, position: int) -> None:
        room_id = await run.create_room(
            key,
            room_request(
                svc,
                title,
                topic=topic,
                invite=admins,
                power=new_power(svc, role, admins),
                state=child_state(svc, space_id, role, rule),
            ),
        )

        async def record() -> None:
            await record_room(svc, space_id, room_id, role, title, position)
            if role is not Role.ADMINS:
                await link_child(svc, space_id, room_id, role, position)

        await run.step(f"record {key}", record)

    await child(
        "announcements",
        f"{name} · Announcements",
        Role.ANNOUNCEMENTS,
        "restricted",
        f"Announcements of {name}",
        ANNOUNCEMENTS_POSITION,
    )
    groups = [str(g) for g in p["groups"]]
    await bounded(
        child(f"group {i}", group, Role.GROUP, "restricted", "", FIRST_GROUP_POSITION + i)
        for i, group in enumerate(groups)
    )
    await child(
        "admins",
        f"{name} · Admins",
        Role.ADMINS,
        "invite",
        f"Admins of {name}: join requests, alerts and audit notes",
        FIRST_GROUP_POSITION + len(groups),
    )

    async def activate() -> None:
        await svc.db.communities.set_state(space_id, "active")
        detail = name if not groups else f"{name}, groups: {', '.join(groups)}"
        await svc.audit(space_id, owner, "create", space_id, detail)

    await run.step("activate", activate)
    await run.release_tags()
    made = f" with {len(groups)} groups" if groups else ""
    return f"Created the community {name}{made}."


async def _undo_group_create(run: Run, reason: str) -> str:
    await _undo_rooms(run, reason, ["group"])
    return f"Could not create the group {run.params['name']}: {reason}. Nothing is left of it."


@operation("group create", undo=_undo_group_create)
async def _group_create(run: Run) -> str:
    svc, p = run.svc, run.params
    space_id = run.op.space_id
    name, access = str(p["name"]), GroupAccess(p["access"])
    if not run.result("room:group"):  # the limit, again under the community's lock
        await check_group_room(svc, space_id)
    admins = await svc.db.admins.roles(space_id)
    room_id = await run.create_room(
        "group",
        room_request(
            svc,
            name,
            topic=str(p["topic"]),
            invite=admins,
            power=new_power(svc, Role.GROUP, admins),
            state=child_state(svc, space_id, Role.GROUP, rules.group_join_rule(access)),
        ),
    )

    async def record() -> None:
        position = await run.step("position", lambda: svc.db.rooms.next_position(space_id))
        await record_room(svc, space_id, room_id, Role.GROUP, name, position, access)
        await link_child(svc, space_id, room_id, Role.GROUP, position)
        await svc.audit(space_id, run.op.actor, "group create", room_id, name)

    await run.step("record", record)
    await settle_suggestion(run, room_id)
    await run.release_tags()
    return f"Created the group {name}."


async def _undo_group_add(run: Run, reason: str) -> str:
    """The room as it was before: its own power levels and join rule, no links, no bot."""
    svc, p = run.svc, run.params
    room_id, space_id = str(p["room_id"]), run.op.space_id
    known = await svc.db.rooms.get(room_id)
    if known is not None and known.space_id != space_id:
        # Another community holds it: this adoption never got as far as touching it.
        return f"Could not adopt {p['name']}: {reason}."
    await _quietly(svc.gw.send_state(space_id, "m.space.child", {}, room_id))
    await _quietly(svc.gw.send_state(room_id, "m.space.parent", {}, space_id))
    await _quietly(svc.gw.send_state(room_id, rules.MARKER_EVENT, {}))
    for event_type in ("m.room.join_rules", "m.room.power_levels"):
        before = (p.get("before") or {}).get(event_type)
        if before:
            await _quietly(svc.gw.send_state(room_id, event_type, before))
    await svc.db.rooms.delete(room_id)
    await _quietly(svc.gw.leave(room_id, reason=f"Not adopted: {reason}"))
    return f"Could not adopt {p['name']}: {reason}. It is a plain room again, as it was."


@operation("group add", undo=_undo_group_add)
async def _group_add(run: Run) -> str:
    svc, p = run.svc, run.params
    community = await run.community()
    space_id, room_id = community.space_id, str(p["room_id"])
    access = GroupAccess(p["access"])
    if not run.result("record"):  # the limit, again under the community's lock
        await check_group_room(svc, space_id)
    position = await run.step("position", lambda: svc.db.rooms.next_position(space_id))
    await run.step(
        "record",
        lambda: record_room(
            svc, space_id, room_id, Role.GROUP, str(p["name"]), position, access, adopted=True
        ),
    )
    room = await svc.db.rooms.get(room_id)
    assert room is not None
    await run.step("power", lambda: svc.apply_room_power(community, room))
    for event_type, content, key in (
        (rules.MARKER_EVENT, rules.marker_content(space_id, Role.GROUP), ""),
        ("m.space.parent", rules.parent_content(svc.server_name), space_id),
    ):
        await run.step(f"state {event_type}", _sender(svc, room_id, event_type, content, key))
    if access is GroupAccess.OPEN:
        await run.step(
            "join rule",
            lambda: svc.gw.send_state(
                room_id, "m.room.join_rules", rules.join_rule_content("restricted", space_id)
            ),
        )

    async def encrypt() -> None:
        if svc.config.encryption.enabled and not await svc.gw.get_state(
            room_id, "m.room.encryption"
        ):
            await svc.gw.send_state(room_id, "m.room.encryption", {"algorithm": rules.MEGOLM})

    await run.step("encryption", encrypt)
    await run.step("link", lambda: link_child(svc, space_id, room_id, Role.GROUP, position))
    await run.step(
        "audit", lambda: svc.audit(space_id, run.op.actor, "group add", room_id, str(p["name"]))
    )
    await settle_suggestion(run, room_id)
    return f"Added {p['name']} as a group."


def _sender(
    svc: Service, room_id: str, event_type: str, content: dict[str, Any], key: str
) -> Callable[[], Awaitable[None]]:
    async def send() -> None:
        await svc.gw.send_state(room_id, event_type, content, key)

    return send


async def _unlink_group(svc: Service, space_id: str, room_id: str, join_rule: str) -> None:
    await _quietly(svc.gw.send_state(space_id, "m.space.child", {}, room_id))
    await _quietly(svc.gw.send_state(room_id, "m.space.parent", {}, space_id))
    await _quietly(svc.gw.send_state(room_id, rules.MARKER_EVENT, {}))
    if join_rule == "restricted":
        # Without the space there is nothing left to be restricted to.
        await _quietly(svc.gw.send_state(room_id, "m.room.join_rules", {"join_rule": "invite"}))


@operation("group remove")
async def _group_remove(run: Run) -> str:
    svc, p = run.svc, run.params
    space_id, room_id = run.op.space_id, str(p["room_id"])
    rule = "restricted" if p["access"] == GroupAccess.OPEN else "keep"
    await run.step("unlink", lambda: _unlink_group(svc, space_id, room_id, rule))
    await run.step("forget", lambda: svc.db.rooms.delete(room_id))
    await run.step(
        "audit",
        lambda: svc.audit(space_id, run.op.actor, "group remove", room_id, str(p["name"])),
    )
    return f"Removed {p['name']} from the community."
