"""Durations people type ("30s", "10m", "1h", "1d", "1w"), and quoting what they typed."""

from __future__ import annotations

import re
from datetime import timedelta

from ..errors import Invalid

MAX_DURATION = timedelta(days=366)


def excerpt(text: str) -> str:
    """`text` on one line and short enough to quote in a reply."""
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:59] + "…"


_DURATION = re.compile(r"(\d{1,12})\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """ "30s", "10m", "1h", "1d", "1w": a positive whole number and a unit, at most 366 days."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise Invalid(
            '"{}" is not a duration; give a positive whole number and a unit: 30s, 10m, 1h, 1d '
            "or 1w.",
            excerpt(text),
        )
    seconds = int(match[1]) * _UNIT_SECONDS[match[2].lower()]
    if seconds > MAX_DURATION.total_seconds():
        raise Invalid('"{}" is too long; the limit is {} days.', excerpt(text), MAX_DURATION.days)
    return timedelta(seconds=seconds)
