"""Community events: `event create|list|cancel`, `rsvp`, answers by reaction, reminders.

An event is a record first, with its timed jobs (`core.scheduler`): one reminder per offset
and the event's end. Then an operation posts its card in the announcement room (the details,
the counts, how to answer), the `.ics` file after it, and pins the card. Members answer with
`rsvp` or by reacting to the card (✅ ❓ ❌); the latest answer counts and a reaction taken
back withdraws its answer. The card's counts follow by an edit (`m.replace`), at most one per
`CARD_EVERY_MS`, through a job too. A reminder fires once, as an operation sending one DM per
member going or maybe (each under a transaction id of its own): exactly once across
restarts, as scheduled posts are. At the end the card is unpinned (an operation); a
cancellation tells those going, edits the card and unpins it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mautrix.types import RoomID, UserID

from ..core.dms import tell_each
from ..core.hooks import job, on_event
from ..core.notices import Text, lines, notice, say, txn_key
from ..core.operations import NOWHERE, Origin, operation
from ..core.pins import pin, unpin
from ..core.posts import message
from ..core.run import Params, Run
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.event import CommunityEvent, EventState
from ..db.schedule import Job, JobState
from ..errors import Conflict, Invalid, NotFound
from ..language import N_
from ..rules import events as rules
from ..rules.limits import check_name
from ..rules.model import AuditAction, CommunityState, Role
from ..rules.when import show, zone

log = logging.getLogger("communities.events")
# Why an event that is no longer upcoming refuses answers, and a second cancellation.
_CLOSED = {
    EventState.OVER: N_("Event #{} is over; it takes no more answers."),
    EventState.CANCELLED: N_("Event #{} is cancelled; it takes no more answers."),
}
_ENDED = {
    EventState.OVER: N_("Event #{} is over already."),
    EventState.CANCELLED: N_("Event #{} is cancelled already."),
}
REMINDER, OVER, CARD = "event reminder", "event over", "event card"
CARD_EVERY_MS = 5_000  # the card's counts are edited at most this often
MAX_UPCOMING = 50


def moment(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)


def span(e: CommunityEvent) -> str:
    """When it is, in its zone: the start, and the end's clock time (or day) after a dash."""
    tz = zone(e.zone)
    start, end = moment(e.starts_at, tz), moment(e.ends_at, tz)
    ends = f"{end:%H:%M}" if end.date() == start.date() else show(end, tz)
    return f"{show(start, tz)} – {ends}"


def counts_line(answers: dict[UserID, str]) -> Text:
    counts = Counter(answers.values())
    return say(
        "✅ {}: {} · ❓ {}: {} · ❌ {}: {}",
        rules.LABELS[rules.YES], counts[rules.YES], rules.LABELS[rules.MAYBE],
        counts[rules.MAYBE], rules.LABELS[rules.NO], counts[rules.NO],
    )  # fmt: skip


def card_text(svc: Service, e: CommunityEvent, answers: dict[UserID, str]) -> Text:
    prefix = svc.config.communities.command_prefix
    head = say("📅 <b>{}</b>", e.title)
    if e.state == EventState.CANCELLED:
        head = say("❌ Cancelled: <b><s>{}</s></b>", e.title)
    parts = [head, say("🕒 {}", span(e))]
    if e.place:
        parts.append(say("📍 {}", e.place))
    parts.append(counts_line(answers))
    if e.upcoming:
        parts.append(
            say("React ✅ ❓ ❌ to answer, or send: {} rsvp #{} yes|maybe|no", prefix, e.id)
        )
    return lines(*parts)


def ics_of(svc: Service, e: CommunityEvent) -> bytes:
    tz = zone(e.zone)
    return rules.ics(
        f"event-{e.id}@{svc.server_name}",
        e.title,
        moment(e.starts_at, tz),
        moment(e.ends_at, tz),
        e.place,
        "",
        cancelled=e.state == EventState.CANCELLED,
        stamp=datetime.fromtimestamp(e.created_at / 1000, UTC),
    )


@dataclass(frozen=True)
class PostCard(Params):
    event_id: int


@dataclass(frozen=True)
class EditCard(Params):
    event_id: int
    key: str  # names this edit (its transaction id)


@dataclass(frozen=True)
class Remind(Params):
    event_id: int
    offset: int
    users: list[str]
    content: dict[str, Any]


@dataclass(frozen=True)
class EndEvent(Params):
    event_id: int
    cancelled: bool = False
    tell: list[str] | None = None  # cancelled: those going or maybe, told by DM
    content: dict[str, Any] | None = None


class Events:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def create(
        self,
        community: Community,
        author: UserID,
        title: str,
        start: datetime,
        *,
        end: datetime | None,
        place: str | None,
        remind: str | None,
        origin: Origin,
    ) -> CommunityEvent:
        """Record the event and its jobs, then post its card (an operation)."""
        svc = self.svc
        title = check_name(title, N_("title"))
        place = (place or "").strip()
        if len(place) > rules.MAX_PLACE:
            raise Invalid(
                "The place is {} characters long; the limit is {}.", len(place), rules.MAX_PLACE
            )
        now = datetime.now(UTC)
        finish = rules.check_span(start, end, now)
        offsets = rules.reminder_offsets(remind)
        for offset in offsets:
            if start.timestamp() - offset <= now.timestamp():
                raise Invalid(
                    "A reminder {} before would be in the past.", rules.offset_words(offset)
                )
        if await svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS) is None:
            raise NotFound("This community has no announcement room.")
        if len(await svc.db.events.upcoming(community.space_id)) >= MAX_UPCOMING:
            raise Conflict("This community already has {} upcoming events.", MAX_UPCOMING)
        tz = start.tzinfo
        assert isinstance(tz, ZoneInfo)
        record = CommunityEvent(
            0, community.space_id, author, title, place, int(start.timestamp() * 1000),
            int(finish.timestamp() * 1000), tz.key, offsets, EventState.UPCOMING, "", "",
            now_ms(),
        )  # fmt: skip
        async with svc.db.transaction():
            record.id = await svc.db.events.add(record)
            for offset in offsets:
                await _add_job(svc, record, REMINDER, record.starts_at - offset * 1000, offset)
            await _add_job(svc, record, OVER, record.ends_at)
        svc.scheduler.wake()
        await svc.audit(community.space_id, author, AuditAction.EVENT, f"#{record.id}", title)
        await svc.ops.run(PostCard(record.id), author, origin, community.space_id)
        return await self.find(community, record.id)

    async def find(self, community: Community, ref: int) -> CommunityEvent:
        found = await self.svc.db.events.get(ref)
        if found is None or found.space_id != community.space_id:
            raise NotFound("There is no event #{} in this community.", ref)
        return found

    async def upcoming(self, community: Community) -> list[tuple[CommunityEvent, Text]]:
        found = await self.svc.db.events.upcoming(community.space_id)
        return [(e, counts_line(await self.svc.db.events.answers(e.id))) for e in found]

    async def answer(
        self, community: Community, user: UserID, ref: int, word: str
    ) -> CommunityEvent:
        answer = rules.answer_of(word)
        found = await self.find(community, ref)
        if not found.upcoming:
            raise Conflict(_CLOSED[EventState(found.state)], ref)
        await self.svc.db.events.answer(found.id, user, answer, now_ms())
        await touch(self.svc, found)
        return found

    async def cancel(
        self, community: Community, actor: UserID, ref: int, origin: Origin = NOWHERE
    ) -> int:
        """Cancel event `ref`: those going or maybe are told; how many."""
        found = await self.find(community, ref)
        if not found.upcoming:
            raise Conflict(_ENDED[EventState(found.state)], ref)
        answers = await self.svc.db.events.answers(found.id)
        going = sorted(u for u, a in answers.items() if a in (rules.YES, rules.MAYBE))
        text = say("❌ <b>{}</b> ({}) is cancelled.", found.title, span(found))
        params = EndEvent(found.id, cancelled=True, tell=list(going), content=notice(text))
        await self.svc.ops.run(params, actor, origin, community.space_id)
        await self.svc.audit(community.space_id, actor, AuditAction.EVENT_CANCEL, f"#{ref}")
        return len(going)


async def _add_job(
    svc: Service, e: CommunityEvent, kind: str, due_at: int, offset: int | None = None
) -> None:
    params: dict[str, Any] = {"event": e.id}
    if offset is not None:
        params["offset"] = offset
    await svc.db.schedule.add(
        Job(0, e.space_id, kind, e.author, params, due_at, "", e.zone, "", 0, JobState.PENDING,
            now_ms())
    )  # fmt: skip


async def touch(svc: Service, e: CommunityEvent) -> None:
    """The card's counts changed: an edit is due in a moment, unless one is already."""
    if not e.card_id:
        return
    pending = await svc.db.schedule.pending(e.space_id, CARD)
    if any(j.params.get("event") == e.id for j in pending):
        return
    await _add_job(svc, e, CARD, now_ms() + CARD_EVERY_MS)
    svc.scheduler.wake()


async def _event_of(svc: Service, record: Job) -> CommunityEvent | None:
    community = await svc.db.communities.get(record.space_id)
    if community is None or community.state != CommunityState.ACTIVE:
        return None
    return await svc.db.events.get(int(record.params["event"]))


# --- the card ----------------------------------------------------------------------------


@operation("event card", PostCard)
async def _post_card(svc: Service, run: Run[PostCard]) -> str:
    e = await svc.db.events.get(run.params.event_id)
    if e is None:
        return say("The event is gone.").plain
    announcements = await svc.room_of_role(e.space_id, Role.ANNOUNCEMENTS)
    if announcements is None:
        return say("The community has no announcement room.").plain
    room = announcements.room_id

    async def card() -> str:
        content = message(card_text(svc, e, {}))
        sent = await svc.gw.send_message(
            room, "m.room.message", content, txn_key("event", str(e.id))
        )
        await svc.db.events.set_card(e.id, room, sent)
        return str(sent)

    async def attach() -> str:
        data = ics_of(svc, e)
        name = f"event-{e.id}.ics"
        content: dict[str, Any] = {
            "msgtype": "m.file", "body": name, "filename": name,
            "info": {"mimetype": "text/calendar", "size": len(data)}, "m.mentions": {},
        }  # fmt: skip
        content.update(await svc.gw.media(room, data, "text/calendar", name))
        sent = await svc.gw.send_message(room, "m.room.message", content, txn_key("ics", str(e.id)))
        return str(sent)

    card_id = await run.step("card", card)
    await run.step("ics", attach)
    await run.step("pin", lambda: pin(svc, room, card_id))
    return say("Posted event #{} in the announcement room.", e.id).plain


async def _edit_card(svc: Service, e: CommunityEvent, key: str) -> str:
    content = message(card_text(svc, e, await svc.db.events.answers(e.id)))
    edit = {
        **content,
        "body": "* " + content["body"],
        "m.new_content": content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": e.card_id},
    }
    sent = await svc.gw.send_message(
        RoomID(e.room_id), "m.room.message", edit, txn_key("edit", key)
    )
    return str(sent)


@job(CARD)
async def _card_due(svc: Service, record: Job, late: bool) -> Params | None:
    e = await _event_of(svc, record)
    if e is None or not e.card_id:
        return None
    return EditCard(e.id, f"card {e.id} at {record.due_at}")


@operation("event card edit", EditCard)
async def _card_edit(svc: Service, run: Run[EditCard]) -> str:
    e = await svc.db.events.get(run.params.event_id)
    if e is None or not e.card_id:
        return say("The event has no card.").plain
    await run.step("edit", lambda: _edit_card(svc, e, run.params.key))
    return say("Updated the card of event #{}.", e.id).plain


# --- reminders and the end ---------------------------------------------------------------


@job(REMINDER)
async def _reminder_due(svc: Service, record: Job, late: bool) -> Params | None:
    e = await _event_of(svc, record)
    if e is None or not e.upcoming:
        return None
    answers = await svc.db.events.answers(e.id)
    users = sorted(u for u, a in answers.items() if a in (rules.YES, rules.MAYBE))
    if not users:
        return None
    offset = int(record.params["offset"])
    parts = [
        say("⏰ Reminder: <b>{}</b> starts in {}.", e.title, rules.offset_words(offset)),
        say("🕒 {}", span(e)),
    ]
    if e.place:
        parts.append(say("📍 {}", e.place))
    return Remind(e.id, offset, list(users), notice(lines(*parts)))


@operation("event reminder", Remind)
async def _remind(svc: Service, run: Run[Remind]) -> str:
    p = run.params
    told = await tell_each(svc, run, p.users, p.content, f"reminder {p.event_id} {p.offset}")
    return say("Reminded {} members of event #{}.", told, p.event_id).plain


@job(OVER)
async def _over_due(svc: Service, record: Job, late: bool) -> Params | None:
    e = await _event_of(svc, record)
    return EndEvent(e.id) if e is not None and e.upcoming else None


@operation("event end", EndEvent)
async def _end(svc: Service, run: Run[EndEvent]) -> str:
    p = run.params
    state = EventState.CANCELLED if p.cancelled else EventState.OVER
    await run.step("state", lambda: svc.db.events.finish(p.event_id, state))
    e = await svc.db.events.get(p.event_id)
    if e is None:
        return say("The event is gone.").plain
    if p.cancelled:

        async def drop_jobs() -> int:
            jobs = await svc.db.schedule.pending(e.space_id)
            mine = [
                j
                for j in jobs
                if j.kind in (REMINDER, OVER, CARD) and j.params.get("event") == e.id
            ]
            for j in mine:
                await svc.db.schedule.cancel(j.id)
            svc.scheduler.wake()
            return len(mine)

        await run.step("jobs", drop_jobs)
    if e.card_id:
        await run.step("unpin", lambda: unpin(svc, RoomID(e.room_id), e.card_id))
        await run.step("card", lambda: _edit_card(svc, e, f"end {e.id}"))
    if p.cancelled and p.tell and p.content:
        await tell_each(svc, run, p.tell, p.content, f"cancel {e.id}")
    return say("Event #{} is {}.", e.id, state.value).plain


# --- answers by reaction -----------------------------------------------------------------


@on_event("m.reaction")
async def _reacted(svc: Service, event: dict[str, Any]) -> None:
    """✅ ❓ ❌ on an event's card: that member's answer (the latest counts)."""
    sender = UserID(str(event.get("sender")))
    content = event.get("content") or {}
    relates = content.get("m.relates_to") or {}
    if sender == svc.bot or not isinstance(relates, dict) or not relates.get("event_id"):
        return
    e = await svc.db.events.by_card(RoomID(str(event.get("room_id"))), str(relates["event_id"]))
    if e is None or not e.upcoming:
        return
    answer = rules.answer_of_reaction(content, e.card_id)
    if answer is None:
        return
    ts = int(event.get("origin_server_ts") or now_ms())
    await svc.db.events.answer(e.id, sender, answer, ts, reaction=str(event.get("event_id")))
    await touch(svc, e)


@on_event("m.room.redaction")
async def _unreacted(svc: Service, event: dict[str, Any]) -> None:
    """A reaction taken back withdraws the answer it gave (if it is still the latest)."""
    redacts = event.get("redacts") or (event.get("content") or {}).get("redacts")
    if not isinstance(redacts, str):
        return
    event_id = await svc.db.events.withdraw_reaction(redacts)
    if event_id is not None:
        e = await svc.db.events.get(event_id)
        if e is not None and e.upcoming:
            await touch(svc, e)
