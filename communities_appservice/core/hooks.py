"""How a feature plugs in, besides `@command` and `@operation`: listeners and timed jobs.

    @on_event("m.room.message")                 every event of these types (decrypted)
    @on_arrival("m.room.encrypted")             every event of these types as it arrives,
                                                before decryption (what the cleartext says)
    @on_membership(Change.JOIN, roles=[Role.SPACE])
                                                a membership change in a community room of
                                                one of these roles, classified once
    @on_membership(Change.INVITE, bot=True)     the bot's own membership, in any room
    @on_interrupted("m.room.message")           an event a crash cut short (claimed, never
                                                finished): not run again, but told
    @job("post")                                a kind of timed job the scheduler runs
    @on_accept                                  every transaction's new events and ephemeral
                                                events as they are stored (counting only)

A listener is an `async def (svc, event)`; each is isolated: one that raises is logged with a
reference and never stops the others (`core.events`). Registration happens at import, and
`index.py` imports every feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mautrix.types import EventID, RoomID, UserID

from ..db.community import Community
from ..db.room import CommunityRoom
from ..db.schedule import Job
from ..rules.membership import Change
from ..rules.model import Role
from .run import Params

if TYPE_CHECKING:
    from .service import Service

RawEvent = dict[str, Any]


@dataclass(frozen=True)
class MemberEvent:
    """One membership change, with the community room it happened in (None elsewhere)."""

    change: Change
    user: UserID
    sender: UserID
    room_id: RoomID
    event_id: EventID
    prev: str  # the membership before ("" when there was none)
    reason: str
    community: Community | None = None
    room: CommunityRoom | None = None

    @property
    def role(self) -> Role | None:
        return None if self.room is None else Role(self.room.role)

    @property
    def was_joined(self) -> bool:
        return self.prev == "join"


EventListener = Callable[["Service", RawEvent], Awaitable[None]]
MemberListener = Callable[["Service", MemberEvent], Awaitable[None]]
# A timed job's runner: what its occurrence does, as an operation to start (None: nothing),
# given the job and whether it fires late.
JobRunner = Callable[["Service", Job, bool], Awaitable[Params | None]]
# Given a transaction's new events and its ephemeral events, inside the database transaction
# that stores them in the inbox: for what is only counted, never for side effects.
AcceptListener = Callable[["Service", list[RawEvent], list[RawEvent]], Awaitable[None]]


@dataclass(frozen=True)
class MemberHook:
    listener: MemberListener
    changes: frozenset[Change]
    roles: frozenset[Role] = frozenset()
    bot: bool = False
    early: bool = False

    def wants(self, event: MemberEvent, bot: UserID) -> bool:
        if event.change not in self.changes or (event.user == bot) != self.bot:
            return False
        if self.bot:
            return True
        return event.community is not None and event.role in self.roles

    @property
    def name(self) -> str:
        return hook_name(self.listener)


@dataclass
class Hooks:
    """Everything features declared; one instance, `HOOKS`, filled at import."""

    events: dict[str, list[EventListener]] = field(default_factory=dict)
    arrivals: dict[str, list[EventListener]] = field(default_factory=dict)
    interrupted: dict[str, list[EventListener]] = field(default_factory=dict)
    members: list[MemberHook] = field(default_factory=list)
    jobs: dict[str, JobRunner] = field(default_factory=dict)
    accepted: list[AcceptListener] = field(default_factory=list)


HOOKS = Hooks()


def _by_type(
    table: dict[str, list[EventListener]], event_types: tuple[str, ...]
) -> Callable[[EventListener], EventListener]:
    def register(listener: EventListener) -> EventListener:
        for event_type in event_types:
            table.setdefault(event_type, []).append(listener)
        return listener

    return register


def on_event(*event_types: str) -> Callable[[EventListener], EventListener]:
    """Listen to every event of these types (decrypted first)."""
    return _by_type(HOOKS.events, event_types)


def on_arrival(*event_types: str) -> Callable[[EventListener], EventListener]:
    """Listen to every event of these types as it arrives, before any decryption: what can
    be decided from the cleartext (an encrypted event's `m.relates_to`), at once."""
    return _by_type(HOOKS.arrivals, event_types)


def on_interrupted(*event_types: str) -> Callable[[EventListener], EventListener]:
    """Listen to the events of these types that a crash cut short."""
    return _by_type(HOOKS.interrupted, event_types)


def on_membership(
    *changes: Change, roles: Iterable[Role] = (), bot: bool = False, early: bool = False
) -> Callable[[MemberListener], MemberListener]:
    """Listen to these changes of anyone but the bot in community rooms of `roles`; or, with
    `bot=True`, to the bot's own, in any room. `early` listeners run before the others (the
    membership records, which the others read, are kept that way)."""
    wanted = frozenset(roles)
    if not bot and not wanted:
        raise ValueError("on_membership: name the roles of the rooms (or bot=True)")

    def register(listener: MemberListener) -> MemberListener:
        HOOKS.members.append(MemberHook(listener, frozenset(changes), wanted, bot, early))
        HOOKS.members.sort(key=lambda hook: not hook.early)  # stable: declaration order
        return listener

    return register


def job(kind: str) -> Callable[[JobRunner], JobRunner]:
    """Declare a kind of timed job: when one is due, the scheduler calls it with the job
    (and whether it is late) for the operation that does its work (`core.scheduler`)."""

    def register(runner: JobRunner) -> JobRunner:
        if kind in HOOKS.jobs:
            raise ValueError(f"job kind {kind!r} registered twice")
        HOOKS.jobs[kind] = runner
        return runner

    return register


def on_accept(listener: AcceptListener) -> AcceptListener:
    """See every transaction's new events (as they came, before decryption) and ephemeral
    events, in the database transaction that stores them: what it writes is written exactly
    once with them. It must be quick and do nothing but write its counts."""
    HOOKS.accepted.append(listener)
    return listener


def hook_name(listener: Callable[..., object]) -> str:
    """A listener's stable name (its module and qualified name): what a retry records."""
    return f"{listener.__module__}.{getattr(listener, '__qualname__', listener)}"
