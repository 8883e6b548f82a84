"""Engagement stats: counted as transactions arrive, reported by `stats`.

Counting runs in the database transaction that stores a transaction's events in the inbox
(`@on_accept`), so a count is written exactly once: a crash before the commit loses the
transaction and the homeserver sends it again; a retried transaction is not stored twice.
It reads only cleartext (`rules.stats`): an event's type, sender, time and relation. One
query finds the transaction's community rooms; the counts go out in one batch.

Read receipts count readers per announcement: a receipt on a post counts its reader for
that post and every earlier one they had not reached yet.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from babel.dates import format_date
from mautrix.types import RoomID

from .. import language
from ..core import charts
from ..core.hooks import on_accept
from ..core.notices import say
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.stats import Count, Post
from ..rules import stats as rules
from ..rules.model import Role
from ..rules.stats import DAY_MS, Kind

log = logging.getLogger("communities.stats")
DEFAULT_DAYS = 7
MAX_DAYS = 90
RECENT_POSTS = 5


@on_accept
async def count(
    svc: Service, events: list[dict[str, Any]], ephemeral: list[dict[str, Any]]
) -> None:
    if not svc.config.communities.stats:
        return
    bot = svc.bot
    receipts = rules.reads(ephemeral, bot)
    room_ids = {str(e.get("room_id", "")) for e in events} | {r.room_id for r in receipts}
    if not room_ids:
        return
    rooms = await svc.db.rooms.of_rooms(sorted(room_ids))
    if not rooms:
        return
    await _prune_daily(svc)
    counts: Counter[Count] = Counter()
    active: set[tuple[str, int, str]] = set()
    for event in events:
        room = rooms.get(str(event.get("room_id", "")))
        if room is None:
            continue
        ts = int(event.get("origin_server_ts") or now_ms())
        day = rules.day_of(ts)
        kind = rules.classify(event, bot)
        if kind is not None:
            counts[(room.space_id, room.room_id, day, kind.value)] += 1
        if rules.is_activity(event, bot):
            active.add((room.space_id, day, str(event.get("sender"))))
        if room.role == Role.ANNOUNCEMENTS and rules.is_post(event):
            await svc.db.stats.post(str(event["event_id"]), room.room_id, room.space_id, ts)
    await svc.db.stats.add(dict(counts))
    await svc.db.stats.active([(s, d, await svc.db.stats.who(u)) for s, d, u in active])
    by_room: dict[str, list[tuple[str, str]]] = {}
    for read in receipts:
        room = rooms.get(read.room_id)
        if room is not None and room.role == Role.ANNOUNCEMENTS:
            who = await svc.db.stats.who(read.user)
            by_room.setdefault(room.room_id, []).append((who, read.event_id))
    for room_id, reads in by_room.items():
        await svc.db.stats.read(room_id, reads)


async def _prune_daily(svc: Service) -> None:
    """The first count of a day deletes the counts older than the retention."""
    today = rules.day_of(now_ms())
    if today > svc.db.stats.pruned_day:
        svc.db.stats.pruned_day = today
        gone = await svc.db.stats.prune(today - svc.config.communities.stats_keep_days)
        if gone:
            log.info(
                "deleted %d stats rows older than %d days",
                gone,
                svc.config.communities.stats_keep_days,
            )


@dataclass
class GroupLine:
    name: str
    messages: int
    threads: int
    reactions: int
    votes: int


@dataclass
class Report:
    days: int
    members: int
    joins: int
    leaves: int
    active: int
    rsvps: int
    announcements: GroupLine
    groups: list[GroupLine]
    posts: list[Post]
    daily: dict[str, dict[int, int]]  # room name -> day -> messages (threads included)
    first_day: int


async def report(svc: Service, space: Community, days: int) -> Report:
    today = rules.day_of(now_ms())
    first = today - days + 1
    since_ts = first * DAY_MS
    rooms = await svc.db.rooms.of_community(space.space_id)
    by_room: dict[str, Counter[str]] = {}
    for c in await svc.db.stats.per_room(space.space_id, first):
        by_room.setdefault(c.room_id, Counter())[c.kind] = c.n
    votes = await svc.db.stats.votes(space.space_id, since_ts)
    space_counts = by_room.get(space.space_id, Counter())

    def line(room_id: str, name: str) -> GroupLine:
        got = by_room.get(room_id, Counter())
        return GroupLine(
            name, got[Kind.MESSAGE], got[Kind.THREAD], got[Kind.REACTION], votes.get(room_id, 0)
        )

    announcements = next((r for r in rooms if r.role == Role.ANNOUNCEMENTS), None)
    groups = [line(r.room_id, r.name) for r in rooms if r.role == Role.GROUP]
    per_day = await svc.db.stats.per_day(space.space_id, first, [Kind.MESSAGE, Kind.THREAD])
    daily = {
        r.name: per_day[r.room_id]
        for r in rooms
        if r.role in (Role.GROUP, Role.ANNOUNCEMENTS) and per_day.get(r.room_id)
    }
    return Report(
        days=days,
        members=await svc.db.members.count(RoomID(space.space_id)),
        joins=space_counts[Kind.JOIN],
        leaves=space_counts[Kind.LEAVE],
        active=await svc.db.stats.active_members(space.space_id, first),
        rsvps=await svc.db.stats.rsvps(space.space_id, since_ts),
        announcements=line(
            announcements.room_id if announcements else "", say("announcements").plain
        ),
        groups=groups,
        posts=await svc.db.stats.posts(space.space_id, since_ts, RECENT_POSTS),
        daily=daily,
        first_day=first,
    )


def chart(r: Report, title: str) -> bytes:
    """A PNG: messages per day (thread replies included), one bar segment per room, the
    busiest eight."""
    days = list(range(r.first_day, r.first_day + r.days))
    busiest = sorted(r.daily, key=lambda name: -sum(r.daily[name].values()))[:8]
    series = {name: [r.daily[name].get(d, 0) for d in days] for name in busiest}
    labels = [_day_label(d) for d in days]
    return charts.stacked_bars(title, labels, series, say("messages").plain)


def _day_label(day: int) -> str:
    """A UTC day as "05 Dec", in the language spoken."""
    shown = datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
    return format_date(shown, "dd MMM", locale=language.locale())
