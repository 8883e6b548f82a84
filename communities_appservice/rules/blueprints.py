"""The requests that create a community's rooms: pure functions of plain values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .joins import join_rule_content, marker_content, parent_content
from .model import MARKER_EVENT, MEGOLM, Role
from .power import Levels, power_levels


@dataclass(frozen=True)
class Site:
    """What every blueprint needs to know about where it is built."""

    bot: str
    server_name: str
    room_version: str
    encrypted: bool


def state_event(event_type: str, content: dict[str, Any], key: str = "") -> dict[str, Any]:
    return {"type": event_type, "state_key": key, "content": content}


def room_request(
    site: Site,
    name: str,
    *,
    topic: str = "",
    invite: Iterable[str],
    power: dict[str, Any],
    state: list[dict[str, Any]],
    space: bool = False,
) -> dict[str, Any]:
    """A `createRoom` request: private, in the configured room version, everyone but the bot
    invited, power levels and state from the start."""
    request: dict[str, Any] = {
        "name": name,
        "preset": "private_chat",
        "room_version": site.room_version,
        "invite": sorted(set(invite) - {site.bot}),
        "power_level_content_override": power,
        "initial_state": state,
    }
    if topic:
        request["topic"] = topic
    if space:
        request["creation_content"] = {"type": "m.space"}
    return request


def child_state(site: Site, space_id: str, role: Role, join_rule: str) -> list[dict[str, Any]]:
    """The initial state of a room of the community other than the space."""
    state = [
        state_event("m.room.join_rules", join_rule_content(join_rule, space_id)),
        state_event("m.room.history_visibility", {"history_visibility": "shared"}),
        state_event(MARKER_EVENT, marker_content(space_id, role)),
    ]
    if site.encrypted:
        state.append(state_event("m.room.encryption", {"algorithm": MEGOLM}))
    if role is not Role.ADMINS:
        state.append(state_event("m.space.parent", parent_content(site.server_name), space_id))
    return state


def new_power(site: Site, role: Role, admins: Iterable[str]) -> dict[str, Any]:
    """The power levels of a room the bot creates (so it is the room's creator)."""
    levels = Levels.for_room(site.room_version, bot_is_creator=True)
    return power_levels(role, levels, bot=site.bot, admins=admins)
