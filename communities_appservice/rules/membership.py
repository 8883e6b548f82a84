"""A membership event classified once: what happened to whom.

`m.room.member` events say only the old and the new membership and who sent them; every
listener wants to know "joined", "left", "was kicked". `classify` tells, once, for all of
them (as mautrix's `MembershipEventDispatcher` does for its clients).
"""

from __future__ import annotations

import enum


class Change(enum.StrEnum):
    JOIN = "join"  # joined (from anything but join: a display-name change is no change)
    LEAVE = "leave"  # left by themselves (or rejected an invitation, withdrew a knock)
    KICK = "kick"  # removed by someone else (or a knock denied, an invitation withdrawn)
    BAN = "ban"
    UNBAN = "unban"
    INVITE = "invite"
    KNOCK = "knock"


def classify(prev: str, new: str, sender: str, user: str) -> Change | None:
    """The change from `prev` to `new`, sent by `sender` about `user`; None when nothing
    changed (a new display name, say) or the membership is unknown."""
    if new == prev:
        return None
    if new == "join":
        return Change.JOIN
    if new == "invite":
        return Change.INVITE
    if new == "knock":
        return Change.KNOCK
    if new == "ban":
        return Change.BAN
    if new == "leave":
        if prev == "ban":
            return Change.UNBAN
        return Change.LEAVE if sender == user else Change.KICK
    return None


def was_joined(prev: str) -> bool:
    return prev == "join"
