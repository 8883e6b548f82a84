"""Polls: `poll` posts a native poll (MSC3381, what Element renders) into the announcement
room and groups, or into the group it was typed in; members vote with their client's poll
UI; `poll results` tallies every room the poll is in; `poll end` closes it.

A poll's posting and its end are operations (`core.operations`) built on the posts' sends
(`core.posts.deliver`): a crash loses nothing and sends nothing twice. While a poll is open
in the announcement room its power levels let members send encrypted events and poll
responses (`rules.power`: the homeserver cannot tell an encrypted vote from an encrypted
message); the announcements' arrival listener takes down at once whatever is not a vote
(`features.announcements`). When the community's last open poll there ends, the room is
closed again.

Votes are recorded as they arrive (every response: the tally takes each voter's latest by
timestamp, `rules.polls`); an admin who ends the poll from their client's poll UI ends it
everywhere, at that end event's time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mautrix.types import EventID, RoomID, UserID

from ..core.hooks import on_event
from ..core.notices import Text, lines, say
from ..core.operations import NOWHERE, Origin, operation
from ..core.posts import Outcome, Post, deliver, groups_named, outcome, report
from ..core.run import Run
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.poll import Poll
from ..db.room import CommunityRoom
from ..errors import Conflict, Invalid, NotFound
from ..matrix.errors import Transient, is_transient
from ..rules import polls as rules
from ..rules.model import AuditAction, Role

log = logging.getLogger("communities.polls")
MAX_OPEN = 50  # open polls in one community
# A vote for a poll start of the bot's that is not recorded yet is retried (the start's
# record follows its send by a moment); one older than this is someone else's business.
RECORDING_WINDOW_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class OpenPoll(Post):
    poll_id: int = 0
    announcements: bool = False


@dataclass(frozen=True)
class EndPoll(Post):
    poll_id: int = 0
    announcements: bool = False
    ended_at: int = 0
    ended_by: str = ""


@dataclass(frozen=True)
class Posted:
    poll_id: int
    done: Outcome
    rooms: list[CommunityRoom]


class Polls:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def create(
        self,
        community: Community,
        sender: UserID,
        question: str,
        options: list[str],
        *,
        multiple: bool,
        groups: str | None,
        here: RoomID,
        origin: Origin,
    ) -> Posted:
        """Post a poll: in the group it was typed in (without `--groups`), else in the
        announcement room and the groups named."""
        question, options = rules.check_poll(question, options)
        typed_in = await self.svc.group_of_room(community, here)
        if typed_in is not None and groups is None:
            rooms = [typed_in]
        else:
            announcements = await self.svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS)
            if announcements is None:
                raise NotFound("This community has no announcement room.")
            rooms = [announcements, *await groups_named(self.svc, community, groups)]
        if len(await self.svc.db.polls.open_polls(community.space_id)) >= MAX_OPEN:
            raise Conflict("This community already has {} open polls; end some first.", MAX_OPEN)
        max_selections = len(options) if multiple else 1
        in_announcements = any(r.role == Role.ANNOUNCEMENTS for r in rooms)
        poll_id = await self.svc.db.polls.add(
            community.space_id, sender, question, options, max_selections, in_announcements,
            now_ms(),
        )  # fmt: skip
        params = OpenPoll(
            key=f"poll {poll_id}",
            content=rules.start_content(question, options, max_selections),
            rooms=[r.room_id for r in rooms],
            space_id=community.space_id,
            names={r.room_id: r.name for r in rooms},
            event_type=rules.START,
            poll_id=poll_id,
            announcements=in_announcements,
        )
        await self.svc.audit(
            community.space_id, sender, AuditAction.POLL, f"#{poll_id}", question[:100]
        )
        run = await self.svc.ops.run(params, sender, origin, community.space_id)
        return Posted(poll_id, outcome(run), rooms)

    async def find(self, community: Community, ref: int) -> Poll:
        poll = await self.svc.db.polls.get(ref)
        if poll is None or poll.space_id != community.space_id:
            raise NotFound("There is no poll #{} in this community.", ref)
        return poll

    async def results(self, poll: Poll) -> rules.Tally:
        return await tally_of(self.svc, poll)

    async def end(
        self, community: Community, actor: UserID, ref: int, origin: Origin = NOWHERE
    ) -> tuple[Poll, rules.Tally]:
        """Close poll `ref` now: its end event in every room it is in, with the results."""
        poll = await self.find(community, ref)
        if not poll.is_open:
            raise Conflict("Poll #{} has ended already.", ref)
        ended_at = now_ms()
        results = await tally_of(self.svc, poll, ended_at)
        await end_everywhere(self.svc, poll, results, ended_at, actor, origin)
        await self.svc.audit(community.space_id, actor, AuditAction.POLL_END, f"#{ref}")
        return poll, results

    async def open_polls(self, community: Community) -> list[Poll]:
        return await self.svc.db.polls.open_polls(community.space_id)


async def tally_of(svc: Service, poll: Poll, end_ts: int | None = None) -> rules.Tally:
    """The poll's tally across every room it is in (at `end_ts`, or at its end if it ended)."""
    votes = [
        rules.Vote(v.sender, v.ts, v.event_id, None if v.answers is None else tuple(v.answers))
        for v in await svc.db.polls.votes(poll.id)
    ]
    end = end_ts if end_ts is not None else (poll.ended_at or None)
    return rules.tally(rules.answer_ids(len(poll.options)), poll.max_selections, votes, end)


def shown(poll: Poll, results: rules.Tally) -> Text:
    """The results as people read them: each option with its votes, the leaders marked."""
    leaders = set(results.leaders())
    rows = []
    for answer, option in zip(rules.answer_ids(len(poll.options)), poll.options, strict=True):
        votes = results.counts[answer]
        share = round(100 * votes / results.voters) if results.voters else 0
        mark = "🏆 " if answer in leaders else ""
        rows.append(say("{}{}. {} — {} ({}%)", mark, answer, option, votes, share))
    state = say("open") if poll.is_open else say("ended")
    footer = say("{} voters · {}", results.voters, state.plain)
    if results.spoiled:
        footer = say("{} voters · {} spoiled · {}", results.voters, results.spoiled, state.plain)
    return lines(say("📊 Poll #{}: <b>{}</b>", poll.id, poll.question), *rows, footer)


def summary_line(poll: Poll, results: rules.Tally) -> str:
    """The end event's text fallback: the top answer(s)."""
    top = [poll.options[int(a) - 1] for a in results.leaders()]
    if not top:
        return say("The poll “{}” has ended with no votes.", poll.question).plain
    return say("The poll “{}” has ended. Top answer: {}", poll.question, ", ".join(top)).plain


async def end_everywhere(
    svc: Service,
    poll: Poll,
    results: rules.Tally,
    ended_at: int,
    actor: UserID,
    origin: Origin,
    *,
    skip: RoomID | None = None,
) -> Outcome:
    posts = await svc.db.polls.posts(poll.id)
    rooms = [room for room in posts if room != skip]
    names = {r.room_id: r.name for r in await svc.db.rooms.of_community(poll.space_id)}
    params = EndPoll(
        key=f"poll end {poll.id}",
        content=rules.end_content(summary_line(poll, results)),
        rooms=list(rooms),
        space_id=poll.space_id,
        names={room: names.get(room, room) for room in rooms},
        event_type=rules.END,
        references={room: posts[room] for room in rooms},
        poll_id=poll.id,
        announcements=poll.announcements,
        ended_at=ended_at,
        ended_by=actor,
    )
    return outcome(await svc.ops.run(params, actor, origin, poll.space_id))


async def _announcements_power(svc: Service, space_id: str) -> bool:
    """The announcement room's power levels as the records now demand (a poll opened or
    closed); under the community's lock, as every operation runs."""
    community = await svc.db.communities.get(RoomID(space_id))
    room = await svc.room_of_role(RoomID(space_id), Role.ANNOUNCEMENTS)
    if community is None or room is None:
        return False
    await svc.apply_room_power(community, room)
    return True


@operation("poll", OpenPoll)
async def _open(svc: Service, run: Run[OpenPoll]) -> str:
    p = run.params
    if p.announcements:  # members may vote there before the poll appears
        await run.step("opened", lambda: _announcements_power(svc, p.space_id))

    async def record(room: RoomID, event_id: EventID) -> None:
        await svc.db.polls.posted(p.poll_id, room, event_id)

    await deliver(svc, run, p, on_sent=record)
    done = outcome(run)
    if not done.sent:  # nowhere to vote: the poll ends, the room closes again
        await svc.db.polls.end(p.poll_id, now_ms(), svc.bot)
        if p.announcements:
            await run.step("closed", lambda: _announcements_power(svc, p.space_id))
    return report(done, p).plain


@operation("poll end", EndPoll)
async def _end(svc: Service, run: Run[EndPoll]) -> str:
    p = run.params

    async def mark() -> bool:
        return await svc.db.polls.end(p.poll_id, p.ended_at, UserID(p.ended_by))

    if not await run.step("ended", mark):  # ended by someone else meanwhile: their end stands
        return say("Poll #{} had ended already.", p.poll_id).plain
    if p.announcements:
        await run.step("closed", lambda: _announcements_power(svc, p.space_id))
    await deliver(svc, run, p)
    return report(outcome(run), p).plain


# --- what members' clients send ----------------------------------------------------------


async def _unrecorded_start(svc: Service, room_id: RoomID, target: str) -> bool:
    """Whether `target` is a poll the bot has just posted whose record is on its way."""
    if await svc.db.rooms.get(room_id) is None:
        return False
    try:
        event = await svc.gw.get_event(room_id, EventID(target))
    except Exception as e:
        if is_transient(e):
            raise
        return False
    recent = now_ms() - int(event.get("origin_server_ts") or 0) < RECORDING_WINDOW_MS
    return event.get("sender") == svc.bot and event.get("type") == rules.START and recent


async def _poll_of(svc: Service, event: dict[str, Any]) -> Poll | None:
    room_id = RoomID(str(event.get("room_id")))
    target = rules.referenced(event.get("content") or {})
    if target is None or event.get("sender") == svc.bot:
        return None
    poll = await svc.db.polls.by_event(room_id, target)
    if poll is None and await _unrecorded_start(svc, room_id, target):
        raise Transient(f"poll {target} is not recorded yet")
    return poll


@on_event(*rules.RESPONSE_TYPES)
async def _vote(svc: Service, event: dict[str, Any]) -> None:
    """A member's response to one of the bot's polls: recorded as sent (the tally judges it)."""
    poll = await _poll_of(svc, event)
    if poll is None:
        return
    await svc.db.polls.vote(
        poll.id,
        EventID(str(event.get("event_id"))),
        RoomID(str(event.get("room_id"))),
        UserID(str(event.get("sender"))),
        int(event.get("origin_server_ts") or now_ms()),
        rules.selections(event.get("content") or {}),
    )


@on_event(*rules.END_TYPES)
async def _ended_by_client(svc: Service, event: dict[str, Any]) -> None:
    """An admin ended one of the bot's polls from their client: ended everywhere, at that
    event's time. MSC3381 lets the poll's creator and those who may redact end it; in the
    bot's rooms those are the admins (and a group's admins, in their group)."""
    poll = await _poll_of(svc, event)
    if poll is None or not poll.is_open:
        return
    room_id, sender = RoomID(str(event.get("room_id"))), UserID(str(event.get("sender")))
    if not (await svc.is_admin(poll.space_id, sender) or await svc.is_group_admin(room_id, sender)):
        return  # clients ignore it too
    ended_at = int(event.get("origin_server_ts") or now_ms())
    results = await tally_of(svc, poll, ended_at)
    await end_everywhere(svc, poll, results, ended_at, sender, NOWHERE, skip=room_id)
    await svc.audit(poll.space_id, sender, AuditAction.POLL_END, f"#{poll.id}", "from a client")


def check_options(words: list[str]) -> tuple[str, list[str]]:
    """`<question> <option> <option> …` as typed."""
    if len(words) < 1 + rules.MIN_OPTIONS:
        raise Invalid(
            "A poll needs a question and {} to {} options.", rules.MIN_OPTIONS, rules.MAX_OPTIONS
        )
    return words[0], words[1:]
