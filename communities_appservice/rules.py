"""Pure domain rules: permissions, power-level maps, join rules, limits.

Nothing here awaits or touches the network or the database; every rule is a function of plain
values, so it is tested with tables of cases. `service` loads the values, asks these functions,
then acts.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Conflict, Forbidden, Invalid, LimitReached

MARKER_EVENT = "communities.room"
BOT_ONLY_EVENTS = (
    "m.room.power_levels",
    "m.space.child",
    "m.space.parent",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.tombstone",
    "m.room.server_acl",
    MARKER_EVENT,
)
MEGOLM = "m.megolm.v1.aes-sha2"
MAX_NAME = 100
MAX_DESCRIPTION = 2048
MAX_LONG_TEXT = 10_000
GROUP_ADMIN_LEVEL = 50
LOG_DEFAULT_LIMIT = 20
LOG_MAX_LIMIT = 200
# Room versions in which the creator has unlimited power (MSC4289).
CREATOR_POWER_VERSIONS = frozenset({"12"})

_MXID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
_ROOM_ID = re.compile(r"^![A-Za-z0-9._~\-+/=]+(:[A-Za-z0-9.\-]+(:[0-9]{1,5})?)?$")
_ALIAS = re.compile(r"^#[^:\s]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


class Role(enum.StrEnum):
    SPACE = "space"
    ANNOUNCEMENTS = "announcements"
    GROUP = "group"
    ADMINS = "admins"


class JoinMode(enum.StrEnum):
    """How people join the community (the space's join rule)."""

    INVITE = "invite"
    APPROVAL = "approval"
    OPEN = "open"


class GroupAccess(enum.StrEnum):
    """How members join one topic group."""

    OPEN = "open"  # restricted to the space
    APPROVAL = "approval"  # knock
    PRIVATE = "private"  # invite


class Permission(enum.IntEnum):
    """What a user may do with the service, from the `permissions` config section."""

    NONE = 0
    MEMBER = 1  # may talk to the bot and use communities
    CREATOR = 2  # may create communities
    ADMIN = 3  # may manage every community


class AdminRole(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"


@dataclass(frozen=True)
class Levels:
    """The numbers of the power-level table for one room.

    In a room the bot created with room version 12 the bot is the creator and outranks
    everyone without being listed; elsewhere (older versions, adopted rooms) the bot holds
    `bot` explicitly and admins sit one below it.
    """

    admin: int
    bot: int
    bot_listed: bool

    @classmethod
    def for_room(cls, room_version: str, bot_is_creator: bool) -> Levels:
        if bot_is_creator and room_version in CREATOR_POWER_VERSIONS:
            return cls(admin=100, bot=101, bot_listed=False)
        return cls(admin=99, bot=100, bot_listed=True)


def permission_for(user_id: str, table: Mapping[str, Permission]) -> Permission:
    """Most specific wins: the user, then their server, then "*"."""
    if user_id in table:
        return table[user_id]
    server = user_id.split(":", 1)[1] if ":" in user_id else ""
    if server in table:
        return table[server]
    return table.get("*", Permission.NONE)


def power_levels(
    role: Role,
    levels: Levels,
    *,
    bot: str,
    admins: Iterable[str],
    group_admins: Iterable[str] = (),
) -> dict[str, Any]:
    """The complete `m.room.power_levels` content a community room must have."""
    users: dict[str, int] = {}
    if role is Role.GROUP:
        users.update({user: GROUP_ADMIN_LEVEL for user in group_admins})
    users.update({user: levels.admin for user in admins})
    if levels.bot_listed:
        users[bot] = levels.bot
    events: dict[str, int] = {event: levels.bot for event in BOT_ONLY_EVENTS}
    moderate = GROUP_ADMIN_LEVEL if role is Role.GROUP else levels.admin
    content: dict[str, Any] = {
        "users": users,
        "users_default": 0,
        "events": events,
        "events_default": 0,
        "state_default": moderate,
        "invite": moderate,
        "kick": moderate,
        "ban": moderate,
        "redact": moderate,
        "notifications": {"room": moderate},
    }
    if role in (Role.SPACE, Role.ANNOUNCEMENTS):
        content["events_default"] = levels.admin
    if role is not Role.SPACE:
        events["m.reaction"] = 0
    return content


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


# --- validation --------------------------------------------------------------------------


def check_name(name: str, what: str = "name") -> str:
    name = name.strip()
    if not name:
        raise Invalid(f"The {what} must not be empty.")
    if len(name) > MAX_NAME:
        raise Invalid(f"The {what} is {len(name)} characters long; the limit is {MAX_NAME}.")
    if any(ch in name for ch in "\n\r\t"):
        raise Invalid(f"The {what} must be a single line.")
    return name


def check_text(text: str, what: str, limit: int = MAX_DESCRIPTION) -> str:
    text = text.strip()
    if len(text) > limit:
        raise Invalid(f"The {what} is {len(text)} characters long; the limit is {limit:,}.")
    return text


def is_user_id(value: str) -> bool:
    return bool(_MXID.fullmatch(value)) and len(value) <= 255


def check_user_id(value: str) -> str:
    if not is_user_id(value):
        raise Invalid(f"{value!r} is not a Matrix user ID (like @alice:example.org).")
    return value


def is_room_id(value: str) -> bool:
    return bool(_ROOM_ID.fullmatch(value))


def is_room_alias(value: str) -> bool:
    return bool(_ALIAS.fullmatch(value))


# --- decisions ---------------------------------------------------------------------------


def check_can_add_admin(current: Iterable[str], user: str, max_admins: int) -> None:
    existing = set(current)
    if user in existing:
        raise Conflict(f"{user} is already an admin.")
    if len(existing) > max_admins:
        raise LimitReached(
            f"This community has {len(existing)} admins but the limit is now {max_admins}: "
            f"dismiss {len(existing) - max_admins} before promoting anyone."
        )
    if len(existing) == max_admins:
        raise LimitReached(
            f"This community already has {len(existing)} admins; the limit is {max_admins}."
        )


def admin_excess(count: int, max_admins: int) -> str | None:
    """What to tell the admins when the config's limit fell below their number."""
    if count <= max_admins:
        return None
    return (
        f"{count} admins but the limit is now {max_admins}: nobody can be promoted until "
        f"{count - max_admins} are dismissed (nobody was dismissed automatically)"
    )


def check_can_remove_admin(roles: Mapping[str, AdminRole], user: str) -> None:
    """Any admin may dismiss another admin, as in WhatsApp; nobody dismisses the owner."""
    role = roles.get(user)
    if role is None:
        raise Conflict(f"{user} is not an admin.")
    if role is AdminRole.OWNER:
        raise Forbidden("The owner cannot be removed; the owner can transfer ownership first.")


def check_can_transfer_owner(roles: Mapping[str, AdminRole], user: str) -> None:
    """Ownership goes only to another admin, so the admin limit holds without a check."""
    role = roles.get(user)
    if role is None:
        raise Conflict(f"{user} is not an admin; make them an admin first.")
    if role is AdminRole.OWNER:
        raise Conflict(f"{user} is already the owner.")


def check_can_add_group_admin(
    admins: Iterable[str], group_admins: Iterable[str], user: str, group: str
) -> None:
    """A community admin already holds more than a group admin in every group."""
    if user in set(admins):
        raise Conflict(f"{user} is a community admin, which already outranks a group admin.")
    if user in set(group_admins):
        raise Conflict(f"{user} is already an admin of {group}.")


def check_can_remove_group_admin(group_admins: Iterable[str], user: str, group: str) -> None:
    if user not in set(group_admins):
        raise Conflict(f"{user} is not an admin of {group}.")


def check_log_limit(value: str | None) -> int:
    """The number of audit entries `log --limit` asks for (a default when not given)."""
    if value is None:
        return LOG_DEFAULT_LIMIT
    text = value.strip()
    limit = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= limit <= LOG_MAX_LIMIT:
        raise Invalid(f"--limit must be a whole number from 1 to {LOG_MAX_LIMIT}, not {value!r}.")
    return limit


def check_group_names(names: Iterable[str], max_groups: int) -> list[str]:
    """The `--groups` of `create`: valid names, no name twice, within the limit."""
    checked = [check_name(n, "group name") for n in names]
    seen: set[str] = set()
    for name in checked:
        if name.lower() in seen:
            raise Invalid(f"The group name {name!r} appears twice.")
        seen.add(name.lower())
    if len(checked) > max_groups:
        raise LimitReached(f"{len(checked)} groups asked for; the limit is {max_groups}.")
    return checked


def check_can_add_group(count: int, max_groups: int) -> None:
    if count >= max_groups:
        raise LimitReached(f"This community already has {count} groups; the limit is {max_groups}.")


def adoption_problems(power: Mapping[str, Any], bot: str) -> list[str]:
    """Why the bot cannot take charge of an existing room's power levels (empty: it can).

    The bot must hold at least the level needed to change power levels, and nobody else may
    hold as much as the bot: they could undo what the bot sets.
    """
    users: Mapping[str, int] = power.get("users", {}) or {}
    default = int(power.get("users_default", 0) or 0)
    bot_level = int(users.get(bot, default))
    needed = int(
        (power.get("events", {}) or {}).get("m.room.power_levels", power.get("state_default", 50))
    )
    problems = []
    if bot_level < needed or bot_level < 100:
        problems.append(f"give {bot} power level 100 in the room (it has {bot_level})")
    rivals = sorted(u for u, lvl in users.items() if u != bot and int(lvl) >= max(bot_level, 100))
    if rivals:
        problems.append("lower these users below the bot: " + ", ".join(rivals))
    return problems


def creator_problem(create: Mapping[str, Any], bot: str) -> str | None:
    """In room version 12 the creators outrank everyone for ever: the bot must be one."""
    version = str(create.get("room_version", "1"))
    if version not in CREATOR_POWER_VERSIONS:
        return None
    creators = {str(create.get("creator") or create.get("sender") or "")}
    creators.update(create.get("additional_creators", []) or [])
    others = sorted(c for c in creators if c and c != bot)
    if others:
        return (
            f"in room version {version} the room's creator ({', '.join(others)}) always "
            "outranks the bot; create the group with `group create` instead"
        )
    return None


# --- moderation: remove, ban, unban, common ------------------------------------------------

# Memberships that `remove` ends (a knock is a pending request to join).
REMOVABLE_MEMBERSHIPS = frozenset({"join", "invite", "knock"})
MAX_REASON = 500
_DONE = {"remove": "removed", "ban": "banned"}


def check_can_moderate(roles: Mapping[str, AdminRole], user: str, bot: str, action: str) -> None:
    """Whether `user` may be removed or banned (`action`); admins and the owner are protected.

    An admin is dismissed first (`admin remove`), so that one admin cannot throw out another
    in a single step; the owner, whom nobody may dismiss, is never removed or banned.
    """
    done = _DONE.get(action, action)
    if user == bot:
        raise Forbidden(f"The bot cannot be {done}.")
    role = roles.get(user)
    if role is AdminRole.OWNER:
        raise Forbidden(f"{user} is the owner of this community and cannot be {done}.")
    if role is AdminRole.ADMIN:
        raise Forbidden(f"{user} is an admin; dismiss them with `admin remove {user}` first.")


def check_reason(reason: str) -> str | None:
    """A moderation reason as given (None when empty), at most `MAX_REASON` characters."""
    reason = check_text(reason, "reason", MAX_REASON)
    return reason or None


def rooms_to_remove(memberships: Mapping[str, str | None]) -> list[str]:
    """The rooms (in order) where the user is joined, invited or knocking."""
    return [room for room, m in memberships.items() if m in REMOVABLE_MEMBERSHIPS]


def rooms_to_ban(memberships: Mapping[str, str | None]) -> list[str]:
    """Every room (in order) where the user is not banned yet, whether or not they were in it."""
    return [room for room, m in memberships.items() if m != "ban"]


def rooms_to_unban(memberships: Mapping[str, str | None]) -> list[str]:
    return [room for room, m in memberships.items() if m == "ban"]


def shared_rooms(joined: Mapping[str, Iterable[str]], first: str, second: str) -> list[str]:
    """The rooms (in order) that both users have joined."""
    return [room for room, users in joined.items() if {first, second} <= set(users)]


# --- reconciliation: the records against a room's actual state ------------------------------


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


def outranking(power: Mapping[str, Any], bot: str, bot_level: int) -> list[str]:
    """Users other than the bot whose level matches or beats the bot's: it cannot demote them."""
    users: Mapping[str, Any] = power.get("users") or {}
    return sorted(u for u, level in users.items() if u != bot and _int(level) >= bot_level)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


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
    members: Mapping[str, tuple[str, str]], admins: Iterable[str], bot: str
) -> tuple[list[str], list[str]]:
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
