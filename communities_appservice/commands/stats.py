"""stats [--days N]: the community's engagement, as text and a chart."""

from __future__ import annotations

import asyncio
import datetime

from ..core.notices import Text, lines, say, send_after
from ..errors import Invalid
from ..features import stats as feature
from ..features.stats import DEFAULT_DAYS, MAX_DAYS, GroupLine
from .framework import Need, Reply, Request, command

CHART = "stats.png"


def check_days(value: object) -> int:
    if value is None:
        return DEFAULT_DAYS
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_DAYS:
        raise Invalid("--days must be a whole number from 1 to {}, not {!r}.", MAX_DAYS, value)
    return int(text)


@command(
    "stats",
    "[--days N]",
    "members, joins and leaves, messages per group, reactions, votes and readers of "
    "announcements (default: the last {default} days, at most {most})",
    Need.ADMIN,
    values={"default": DEFAULT_DAYS, "most": MAX_DAYS},
    flags={"days": str},
    max_args=0,
)
async def stats(req: Request) -> Text:
    if not req.service.config.communities.stats:
        raise Invalid("Stats are turned off on this service (communities.stats).")
    days = check_days(req.flags.get("days"))
    r = await feature.report(req.service, req.space, days)
    a = r.announcements
    text = lines(
        say("<b>{}</b>: the last {} days", req.space.name, days),
        say(
            "Members: {} now; {} joined, {} left; {} active (wrote, reacted or voted)",
            r.members, r.joins, r.leaves, r.active,
        ),
        say(
            "Announcements: {} reactions, {} thread replies, {} poll votes; {} RSVPs to events",
            a.reactions, a.threads, a.votes, r.rsvps,
        ),
        *([say("Groups:")] + [_group(g) for g in r.groups] if r.groups else []),
        *(
            [say("Latest announcements, read by:")]
            + [say("• {}: {}", _when(p.ts), p.readers) for p in r.posts]
            if r.posts
            else []
        ),
    )  # fmt: skip
    png = await asyncio.to_thread(feature.chart, r, f"{req.space.name}: messages per day")
    content: dict[str, object] = {
        "msgtype": "m.image",
        "body": CHART,
        "info": {"mimetype": "image/png", "size": len(png)},
        **await req.service.gw.media(req.room_id, png, "image/png", CHART),
    }
    return Reply(text.plain, text.html, after=send_after(req.service, content))


def _group(g: GroupLine) -> Text:
    return say(
        "• {}: {} messages, {} thread replies, {} reactions, {} poll votes",
        g.name, g.messages, g.threads, g.reactions, g.votes,
    )  # fmt: skip


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC).strftime("%d %b %H:%M UTC")
