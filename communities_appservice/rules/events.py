"""Community events: answers (by word or by reaction), reminder offsets, and the `.ics` file.
Pure: no I/O.

The `.ics` is written with `icalendar` (RFC 5545): DTSTART and DTEND in the community's zone,
with that zone's VTIMEZONE, so calendars show the right instant wherever they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
from babel.units import format_unit

from .. import language
from ..errors import Invalid
from .durations import parse_duration

YES, MAYBE, NO = "yes", "maybe", "no"
ANSWERS = (YES, MAYBE, NO)
# The card's reactions, as clients send them (some add the emoji variation selector).
REACTIONS = {"✅": YES, "❓": MAYBE, "❌": NO}
LABELS = {YES: "Going", MAYBE: "Maybe", NO: "Can't go"}
MAX_PLACE = 200
MAX_REMINDERS = 5
DEFAULT_LENGTH = timedelta(hours=1)  # an event without --end
LONGEST = timedelta(days=31)


def answer_of(word: str) -> str:
    """`yes`, `no` or `maybe` as typed (any case)."""
    answer = word.strip().lower()
    if answer not in ANSWERS:
        raise Invalid("Answer yes, no or maybe, not {!r}.", word)
    return answer


def answer_of_reaction(content: Mapping[str, Any], card: str) -> str | None:
    """The answer a reaction gives to the card `card`, or None (another event, another key)."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping) or relates.get("rel_type") != "m.annotation":
        return None
    if relates.get("event_id") != card:
        return None
    key = relates.get("key")
    return REACTIONS.get(key.replace("\ufe0f", "")) if isinstance(key, str) else None


def reminder_offsets(spec: str | None) -> list[int]:
    """`--remind 1h,1d`: the offsets before the start, in seconds, largest first, each once."""
    if spec is None or not spec.strip():
        return []
    words = [w for w in spec.split(",") if w.strip()]
    if len(words) > MAX_REMINDERS:
        raise Invalid("At most {} reminders per event.", MAX_REMINDERS)
    offsets = {int(parse_duration(w).total_seconds()) for w in words}
    return sorted(offsets, reverse=True)


def check_span(start: datetime, end: datetime | None, now: datetime) -> datetime:
    """The end (the start plus an hour without `--end`); refused when it is not after the
    start, or the event is longer than a month."""
    if start <= now:
        raise Invalid("That time has passed; give a time in the future.")
    end = end or start + DEFAULT_LENGTH
    if end <= start:
        raise Invalid("The end must be after the start.")
    if end - start > LONGEST:
        raise Invalid("An event lasts at most {} days.", LONGEST.days)
    return end


def offset_words(seconds: int) -> str:
    """How far before the start a reminder goes, in words of the language spoken: "1 hour",
    "2 days", "30 minutes" ("2 jours", "יומיים", "2天")."""
    for unit, size in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return format_unit(seconds // size, f"duration-{unit}", locale=language.locale())
    return format_unit(seconds, "duration-second", locale=language.locale())


def ics(
    uid: str,
    title: str,
    start: datetime,
    end: datetime,
    place: str,
    description: str,
    *,
    cancelled: bool = False,
    stamp: datetime | None = None,
) -> bytes:
    """One event as an iCalendar file; `start` and `end` aware, in the community's zone."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//communities-appservice//events//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp or datetime.now(UTC))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", title)
    if place:
        event.add("location", place)
    if description:
        event.add("description", description)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    calendar.add_component(event)
    # The zone's rules around the event only (a calendar needs no more to place it).
    calendar.add_missing_timezones(
        first_date=(start - timedelta(days=400)).date(),
        last_date=(end + timedelta(days=400)).date(),
    )
    return bytes(calendar.to_ical())
