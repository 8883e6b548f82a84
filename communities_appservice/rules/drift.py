"""Drift: how a room's actual state differs from what the records demand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mautrix.types import RoomID, UserID

from ..language import N_
from .joins import group_join_rule, join_rule_content, space_join_rule, space_link
from .model import GroupAccess, JoinMode, Role

# A state event to send to repair drift: type, content, state key, and what it repairs.
# (event type, content, state key, what it repairs: a template for `say` and its arguments)
Fix = tuple[str, dict[str, Any], str, tuple[str, ...]]


def power_drift(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """How a room's power levels differ from what the records demand (empty: they agree).

    Every key the records set must match exactly, user by user and event by event; keys the
    records do not set (a client's `historical`) are left alone."""
    drift: list[str] = []
    for key in ("users", "events"):
        have: Mapping[str, Any] = actual.get(key) or {}
        want: Mapping[str, Any] = desired.get(key) or {}
        for name in sorted(set(have) | set(want)):
            if have.get(name) != want.get(name):
                drift.append(f"{name}: {_level(have.get(name))} → {_level(want.get(name))}")
    for key, want in desired.items():
        if key not in ("users", "events") and actual.get(key) != want:
            drift.append(f"{key}: {_level(actual.get(key))} → {_level(want)}")
    return drift


def _level(value: Any) -> str:
    return "unset" if value is None else str(value)


def join_rule_drifts(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether a room's join rule differs from the records' (a restricted room must still
    admit the space's members)."""
    if actual.get("join_rule") != desired.get("join_rule"):
        return True
    if desired.get("join_rule") != "restricted":
        return False
    allowed = {a.get("room_id") for a in actual.get("allow") or [] if isinstance(a, Mapping)}
    wanted = {a["room_id"] for a in desired.get("allow", [])}
    return not wanted <= allowed


def admins_room_drift(
    members: Mapping[UserID, tuple[str, str]], admins: Iterable[UserID], bot: UserID
) -> tuple[list[UserID], list[UserID]]:
    """Who to invite to and who to remove from the admins room.

    `members` maps each user to (membership, sender of that membership event). An admin who
    left by themselves stays out (their choice); one who was never there or was removed by
    someone else is invited again. Anyone else joined or invited is removed."""
    admin_set = set(admins)
    invite = []
    for user in sorted(admin_set):
        membership, sender = members.get(user, ("", ""))
        if not membership or (membership == "leave" and sender != user):
            invite.append(user)
    remove = sorted(
        user
        for user, (membership, _) in members.items()
        if user != bot and user not in admin_set and membership in ("join", "invite", "knock")
    )
    return invite, remove


def desired_join_rule(
    role: Role, mode: JoinMode, access: GroupAccess, space_id: str
) -> dict[str, Any]:
    """The join rule the records demand for a room of this role."""
    if role is Role.SPACE:
        return join_rule_content(space_join_rule(mode))
    if role is Role.ANNOUNCEMENTS:
        return join_rule_content("restricted", space_id)
    if role is Role.ADMINS:
        return join_rule_content("invite")
    return join_rule_content(group_join_rule(access), space_id)


def link_fixes(
    server_name: str,
    rooms: list[tuple[RoomID, Role, int, str]],
    state: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[Fix]:
    """The space's `m.space.child` links: one per announcement room and group, no other.

    `rooms`: (room id, role, position, name) of every room of the community; `state`: the
    space's state by (type, key)."""
    wanted: dict[str, tuple[dict[str, Any], str]] = {}
    for room_id, role, position, name in rooms:
        link = space_link(server_name, role, position)
        if link is not None:
            wanted[room_id] = (link, name)
    linked = {
        key
        for (event_type, key), event in state.items()
        if event_type == "m.space.child" and (event.get("content") or {}).get("via")
    }
    fixes: list[Fix] = [
        ("m.space.child", body, room_id, (N_("the link to {}"), name))
        for room_id, (body, name) in wanted.items()
        if room_id not in linked
    ]
    fixes += [
        ("m.space.child", {}, room_id, (N_("a link to {}, which is not a group"), room_id))
        for room_id in sorted(linked - set(wanted))
    ]
    return fixes
