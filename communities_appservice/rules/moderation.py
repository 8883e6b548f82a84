"""Moderation across a community: who may be removed or banned, and in which rooms."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from mautrix.types import RoomID, UserID

from ..errors import Forbidden
from ..language import N_
from .limits import check_text
from .model import AdminRole


class Action(enum.StrEnum):
    """What `remove`, `ban` and `unban` do across a community."""

    REMOVE = "remove"
    BAN = "ban"
    UNBAN = "unban"


# Memberships that `remove` ends (a knock is a pending request to join).
REMOVABLE_MEMBERSHIPS = frozenset({"join", "invite", "knock"})
# A membership the homeserver would not tell (the bot cannot see into the room): the room
# is tried all the same, and named in the answer if the action fails there.
UNKNOWN = "unknown"
MAX_REASON = 500
# Why someone cannot be removed (or banned): the bot itself, the owner.
_REFUSALS = {
    "remove": (
        N_("The bot cannot be removed."),
        N_("{} is the owner of this community and cannot be removed."),
    ),
    "ban": (
        N_("The bot cannot be banned."),
        N_("{} is the owner of this community and cannot be banned."),
    ),
}


def check_can_moderate(
    roles: Mapping[UserID, AdminRole], user: UserID, bot: UserID, action: str
) -> None:
    """Whether `user` may be removed or banned (`action`); admins and the owner are protected.

    An admin is dismissed first (`admin remove`), so that one admin cannot throw out another
    in a single step; the owner, whom nobody may dismiss, is never removed or banned.
    """
    the_bot, the_owner = _REFUSALS[action]
    if user == bot:
        raise Forbidden(the_bot)
    role = roles.get(user)
    if role is AdminRole.OWNER:
        raise Forbidden(the_owner, user)
    if role is AdminRole.ADMIN:
        raise Forbidden("{} is an admin; dismiss them with `admin remove {}` first.", user, user)


def check_reason(reason: str) -> str | None:
    """A moderation reason as given (None when empty), at most `MAX_REASON` characters."""
    reason = check_text(reason, N_("reason"), MAX_REASON)
    return reason or None


def rooms_to_remove(memberships: Mapping[RoomID, str | None]) -> list[RoomID]:
    """The rooms (in order) where the user is joined, invited or knocking."""
    return [room for room, m in memberships.items() if m in REMOVABLE_MEMBERSHIPS | {UNKNOWN}]


def rooms_to_ban(memberships: Mapping[RoomID, str | None]) -> list[RoomID]:
    """Every room (in order) where the user is not banned yet, whether or not they were in it."""
    return [room for room, m in memberships.items() if m != "ban"]


def rooms_to_unban(memberships: Mapping[RoomID, str | None]) -> list[RoomID]:
    return [room for room, m in memberships.items() if m in ("ban", UNKNOWN)]


def shared_rooms(
    joined: Mapping[RoomID, Iterable[UserID]], first: UserID, second: UserID
) -> list[RoomID]:
    """The rooms (in order) that both users have joined."""
    return [room for room, users in joined.items() if {first, second} <= set(users)]
