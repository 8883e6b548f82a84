"""Join rules and space links: how people get into each room, how rooms hang in the space."""

from __future__ import annotations

from typing import Any

from .model import GroupAccess, JoinMode, Role


def join_rule_content(rule: str, space_id: str | None = None) -> dict[str, Any]:
    """Content of `m.room.join_rules`; `restricted` admits members of the space."""
    if rule == "restricted":
        if space_id is None:
            raise ValueError("restricted join rule needs the space")
        return {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": space_id}],
        }
    return {"join_rule": rule}


def space_join_rule(mode: JoinMode) -> str:
    return {JoinMode.INVITE: "invite", JoinMode.APPROVAL: "knock", JoinMode.OPEN: "public"}[mode]


def group_join_rule(access: GroupAccess) -> str:
    return {
        GroupAccess.OPEN: "restricted",
        GroupAccess.APPROVAL: "knock",
        GroupAccess.PRIVATE: "invite",
    }[access]


def group_access_from_join_rule(join_rule: str) -> GroupAccess:
    return {"knock": GroupAccess.APPROVAL, "invite": GroupAccess.PRIVATE}.get(
        join_rule, GroupAccess.OPEN
    )


def child_content(server_name: str, *, order: str, suggested: bool) -> dict[str, Any]:
    return {"via": [server_name], "order": order, "suggested": suggested}


def space_link(server_name: str, role: Role, position: int) -> dict[str, Any] | None:
    """The space's `m.space.child` content for a room of the community: the announcement
    room first and suggested, groups in their order; None for rooms that are not linked."""
    if role is Role.ANNOUNCEMENTS:
        return child_content(server_name, order="0", suggested=True)
    if role is Role.GROUP:
        return child_content(server_name, order=group_order(position), suggested=False)
    return None


def parent_content(server_name: str) -> dict[str, Any]:
    return {"via": [server_name], "canonical": True}


def marker_content(space_id: str, role: Role) -> dict[str, Any]:
    return {"community": space_id, "role": str(role)}


def group_order(index: int) -> str:
    """`order` of the n-th group; the announcement room sorts before all of them ("0")."""
    return f"g{index:05d}"
