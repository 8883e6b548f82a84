"""The rooms of a community in the records and in the space: what building a community and
building a group share (record a room, link it, take back rooms an operation made)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from mautrix.types import RoomID

from ..db import now_ms
from ..db.room import CommunityRoom
from ..errors import Conflict
from ..matrix.errors import MatrixError, is_transient
from ..rules.blueprints import Site
from ..rules.joins import space_link
from ..rules.model import MARKER_EVENT, GroupAccess, Role
from .notices import say
from .run import Run
from .service import Service

log = logging.getLogger("communities.rooms")


def site(svc: Service) -> Site:
    """Where the blueprints build: this bot, this server, the configured room version."""
    return Site(
        bot=svc.bot,
        server_name=svc.server_name,
        room_version=svc.config.communities.room_version,
        encrypted=svc.config.encryption.enabled,
    )


async def record_room(
    svc: Service,
    space_id: RoomID,
    room_id: RoomID,
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
            role=role,
            name=name,
            access=access,
            adopted=adopted,
            position=position,
            created_at=now_ms(),
        )
    )


async def show_bot_as(svc: Service, room_id: RoomID, name: str) -> bool:
    """The bot's display name in the room becomes the community's (in room version 12 the
    bot, as the rooms' creator, is shown as their "Owner": the community owns them); False
    when it already was."""
    member = await svc.gw.get_state(room_id, "m.room.member", svc.bot) or {}
    if member.get("displayname") == name:
        return False
    content = {**member, "membership": "join", "displayname": name}
    await svc.gw.send_state(room_id, "m.room.member", content, svc.bot)
    return True


async def link_child(
    svc: Service, space_id: RoomID, room_id: RoomID, role: Role, position: int
) -> None:
    content = space_link(svc.server_name, role, position)
    assert content is not None, f"{role} rooms are not linked into the space"
    await svc.gw.send_state(space_id, "m.space.child", content, room_id)


async def quietly(call: Awaitable[object]) -> None:
    """A clean-up call the homeserver may refuse (already done, no longer allowed)."""
    try:
        await call
    except MatrixError as e:
        if is_transient(e):
            raise
        log.info("clean-up step refused (%s); going on", e.errcode)


async def undo_rooms(svc: Service, run: Run[Any], reason: str, planned: list[str]) -> int:
    """Empty and leave every room the operation made (`planned`: the step keys of every room
    it was to make, so that one whose creation was cut short is found too); unlink them."""
    rooms = await run.find_rooms(planned)
    space_id = rooms.get("space") or run.op.space_id
    for key, room_id in rooms.items():
        if key != "space" and space_id:
            await quietly(svc.gw.send_state(space_id, "m.space.child", {}, room_id))
    for room_id in sorted(rooms.values(), key=lambda r: r == space_id):
        try:
            members = await svc.gw.members(room_id)
        except MatrixError as e:
            if is_transient(e):
                raise
            members = {}  # the bot is not in it (any more): nothing it could do there
        for user, membership in members.items():
            if user != svc.bot and membership in ("join", "invite", "knock"):
                await quietly(svc.gw.kick(room_id, user, say("Undone: {}", reason).plain))
        await quietly(svc.gw.leave(room_id, reason=say("Undone: {}", reason).plain))
        known = await svc.db.rooms.get(room_id)
        if known is not None and known.space_id == space_id:
            await svc.db.rooms.delete(room_id)
    await run.release_tags(list(rooms))
    return len(rooms)


async def unlink(svc: Service, space_id: RoomID, room_id: RoomID) -> None:
    """Take a room out of the space: both links and the marker emptied."""
    await quietly(svc.gw.send_state(space_id, "m.space.child", {}, room_id))
    await quietly(svc.gw.send_state(room_id, "m.space.parent", {}, space_id))
    await quietly(svc.gw.send_state(room_id, MARKER_EVENT, {}))


async def unlink_group(svc: Service, space_id: RoomID, room_id: RoomID, open_: bool) -> None:
    """A group out of its community: it lives on as a plain room with its members."""
    await unlink(svc, space_id, room_id)
    if open_:
        # Without the space there is nothing left to be restricted to.
        await quietly(svc.gw.send_state(room_id, "m.room.join_rules", {"join_rule": "invite"}))
