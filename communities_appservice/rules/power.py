"""Power levels: the table every community room must have, and whether the bot can hold it
(adopting a room; being outranked)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import MARKER_EVENT, Role
from .polls import RESPONSE_TYPES

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


GROUP_ADMIN_LEVEL = 50


# Room versions in which the creator has unlimited power (MSC4289).
CREATOR_POWER_VERSIONS = frozenset({"12"})


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


def power_levels(
    role: Role,
    levels: Levels,
    *,
    bot: str,
    admins: Iterable[str],
    group_admins: Iterable[str] = (),
    replies: bool = False,
    votes: bool = False,
    closed: bool = False,
) -> dict[str, Any]:
    """The complete `m.room.power_levels` content a community room must have.

    In the announcement room, `replies` lets members send encrypted events (thread replies;
    the homeserver cannot tell them from other messages, so the bot takes down what is not a
    reply: `features.announcements`); `votes` (a poll is open there) lets members send
    encrypted events and poll responses (the bot takes down what is not a vote: the same
    listener); `closed` (a deactivated community) lets nobody post."""
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
    if role is Role.ANNOUNCEMENTS:
        # Taking back one's own reaction is a redaction: everyone may send one there, while
        # redacting someone else's event still needs `redact` (the admins).
        events["m.room.redaction"] = 0
        # Named either way, so that reconciliation keeps the mode (a key the records do
        # not set is left as a client put it).
        members_write = levels.bot if closed else 0 if replies else levels.admin
        members_vote = levels.bot if closed else 0 if votes else levels.admin
        events.update(
            {
                "m.room.encrypted": min(members_write, members_vote),
                "m.room.message": members_write,
                **dict.fromkeys(RESPONSE_TYPES, members_vote),
            }
        )
        if closed:
            content["events_default"] = levels.bot
            events.update({"m.reaction": levels.bot, "m.room.redaction": levels.bot})
    return content


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


def outranking(power: Mapping[str, Any], bot: str, bot_level: int) -> list[str]:
    """Users other than the bot whose level matches or beats the bot's: it cannot demote them."""
    users: Mapping[str, Any] = power.get("users") or {}
    return sorted(u for u, level in users.items() if u != bot and _int(level) >= bot_level)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
