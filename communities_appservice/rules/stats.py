"""What one event counts for in the engagement stats, from its cleartext alone.

Only kinds and days are kept, never content: an encrypted event is classified by its
cleartext `m.relates_to` (which Matrix keeps outside the ciphertext), so counting needs no
decryption and sees nothing a member wrote. Votes and RSVPs are not counted here: the poll
and event records already hold them, with their times.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

DAY_MS = 24 * 3600 * 1000
MESSAGE_TYPES = frozenset({"m.room.message", "m.room.encrypted", "m.sticker"})
POLL_START = frozenset({"org.matrix.msc3381.poll.start", "m.poll.start"})
VOTES = frozenset({"org.matrix.msc3381.poll.response", "m.poll.response"})


class Kind(enum.StrEnum):
    MESSAGE = "message"  # a top-level message or a rich reply
    THREAD = "thread"  # a reply in a thread
    REACTION = "reaction"
    JOIN = "join"
    LEAVE = "leave"


def day_of(ts: int) -> int:
    """The UTC day (days since 1970-01-01) of a time in ms."""
    return ts // DAY_MS


def classify(event: dict[str, Any], bot: str) -> Kind | None:
    """What `event` counts for; None for what is not counted (the bot's own events, edits,
    references, state other than memberships, membership changes that are neither)."""
    kind = str(event.get("type", ""))
    sender = str(event.get("sender", ""))
    if kind == "m.room.member":
        return _membership(event, bot)
    if sender == bot or "state_key" in event:
        return None
    content = event.get("content")
    if not isinstance(content, dict):
        return None
    relates = content.get("m.relates_to")
    rel_type = relates.get("rel_type") if isinstance(relates, dict) else None
    if kind == "m.reaction" or rel_type == "m.annotation":
        return Kind.REACTION
    if kind not in MESSAGE_TYPES and kind not in POLL_START:
        return None
    if rel_type == "m.thread":
        return Kind.THREAD
    if rel_type is None:
        return Kind.MESSAGE
    return None  # an edit, a vote or another reference


def is_activity(event: dict[str, Any], bot: str) -> bool:
    """Whether the event makes its sender an active member that day: a message, a thread
    reply, a reaction or a vote (anything a member sends into the timeline)."""
    if str(event.get("sender", "")) == bot or "state_key" in event:
        return False
    kind = str(event.get("type", ""))
    return kind in MESSAGE_TYPES or kind in POLL_START or kind in VOTES or kind == "m.reaction"


def _membership(event: dict[str, Any], bot: str) -> Kind | None:
    user = str(event.get("state_key", ""))
    if user == bot:
        return None
    content = event.get("content") or {}
    unsigned = event.get("unsigned") or {}
    new = str(content.get("membership", "")) if isinstance(content, dict) else ""
    prev = str((unsigned.get("prev_content") or {}).get("membership", ""))
    if new == "join" and prev != "join":
        return Kind.JOIN
    if prev == "join" and new in ("leave", "ban"):
        return Kind.LEAVE
    return None


def is_post(event: dict[str, Any]) -> bool:
    """A post in the announcement room whose readers are counted: a top-level message."""
    if str(event.get("type", "")) not in MESSAGE_TYPES | POLL_START or "state_key" in event:
        return False
    content = event.get("content")
    return isinstance(content, dict) and not isinstance(content.get("m.relates_to"), dict)


@dataclass(frozen=True)
class Read:
    room_id: str
    user: str
    event_id: str


def reads(ephemeral: list[Any], bot: str) -> list[Read]:
    """The public read receipts (`m.read`) among a transaction's ephemeral events."""
    found: list[Read] = []
    for event in ephemeral:
        if not isinstance(event, dict) or event.get("type") != "m.receipt":
            continue
        room_id, content = event.get("room_id"), event.get("content")
        if not isinstance(room_id, str) or not isinstance(content, dict):
            continue
        for event_id, by_type in content.items():
            readers = by_type.get("m.read") if isinstance(by_type, dict) else None
            if not isinstance(readers, dict):
                continue
            found.extend(Read(room_id, str(user), str(event_id)) for user in readers if user != bot)
    return found
