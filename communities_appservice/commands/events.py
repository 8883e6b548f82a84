"""event create, event list, event cancel, rsvp."""

from __future__ import annotations

from datetime import UTC, datetime

from .. import language
from ..core.notices import Text, lines, say
from ..features.events import Events, span
from ..features.schedule import community_zone
from ..language import N_
from ..rules.when import parse_when
from . import args
from .framework import Need, Request, command


@command(
    "event create",
    '"<title>" <when> [--end WHEN] [--place TEXT] [--remind 1h,1d]',
    "an event in the announcement room: a card to answer, an .ics file, reminders",
    Need.ADMIN,
    flags={"end": str, "place": str, "remind": str},
    min_args=2,
)
async def create(req: Request) -> Text:
    tz = community_zone(req.service, req.space)
    now = datetime.now(UTC)
    start = parse_when(" ".join(req.args[1:]), now=now, tz=tz, language=language.current())
    end_word = req.flags.get("end")
    end = (
        None
        if end_word is None
        else parse_when(end_word, now=now, tz=tz, language=language.current())
    )
    made = await Events(req.service).create(
        req.space,
        req.sender,
        req.args[0],
        start,
        end=end,
        place=req.flags.get("place"),
        remind=req.flags.get("remind"),
        origin=req.origin,
    )
    said = say("Event #{}: <b>{}</b>, {}.", made.id, made.title, span(made))
    if made.reminders:
        said = lines(said, say("Reminders go to those going or maybe, by direct message."))
    return said


@command(
    "event list", "", "the community's upcoming events and their answers", Need.MEMBER, max_args=0
)
async def listed(req: Request) -> Text:
    found = await Events(req.service).upcoming(req.space)
    if not found:
        return say("No upcoming events in <b>{}</b>.", req.space.name)
    rows = [
        say("• #{} <b>{}</b>, {} — {}", e.id, e.title, span(e), counts.plain) for e, counts in found
    ]
    return lines(say("<b>{}</b>: {} upcoming events", req.space.name, len(found)), *rows)


@command(
    "event cancel",
    "<#id>",
    "cancel an event; those going are told",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def cancel(req: Request) -> Text:
    ref = args.number(req.args[0], N_("event"))
    told = await Events(req.service).cancel(req.space, req.sender, ref, req.origin)
    return say("Cancelled event #{}; told {} members going or maybe.", ref, told)


@command(
    "rsvp",
    "<#id> yes|no|maybe",
    "answer an event (or react ✅ ❓ ❌ to its card)",
    Need.MEMBER,
    min_args=2,
    max_args=2,
)
async def rsvp(req: Request) -> Text:
    ref = args.number(req.args[0], N_("event"))
    found = await Events(req.service).answer(req.space, req.sender, ref, req.args[1])
    return say("Your answer to <b>{}</b> ({}): {}.", found.title, span(found), req.args[1].lower())
