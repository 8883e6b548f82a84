"""Every event from the inbox, to whoever declared interest (`core.hooks`).

For each event: state goes to `on_state` (reconciliation) and to the bot's encryption
(`m.room.member`, `m.room.encryption`); an encrypted event is decrypted, or parked until its
keys come without holding up its room (`core.parking`); a membership change is classified
once and handed to the membership listeners whose change and room role match; then the
event listeners of its type run. Each listener is isolated: one that raises is logged with
a reference and the others still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from mautrix.types import EventID, RoomID, UserID

from .. import language
from ..db import now_ms
from ..errors import isolated
from ..matrix.crypto import BotCrypto, CannotDecrypt, KeysMissing
from ..matrix.errors import RetryLater, brief, is_transient
from ..matrix.router import RETRYING
from ..rules.membership import classify
from ..rules.model import CommunityState, Role
from .hooks import HOOKS, MemberEvent, RawEvent, hook_name
from .notices import notice, say, txn_key
from .parking import Parking
from .service import Service

log = logging.getLogger("communities.events")
TRACKED_STATE = ("m.room.member", "m.room.encryption")
REPORT_EVERY = 3600.0  # seconds between two failure reports to one community's admins


class Events:
    def __init__(
        self,
        service: Service,
        crypto: BotCrypto | None = None,
        on_state: Callable[[RawEvent], None] | None = None,
    ) -> None:
        self.svc = service
        self.crypto = crypto
        self.on_state = on_state
        self._reported: dict[str, float] = {}  # community → when its admins last heard
        self.parking = (
            Parking(service, crypto, self.handle_readable, self.interrupted_readable)
            if crypto is not None
            else None
        )

    async def handle(self, event: RawEvent) -> None:
        """One event from the inbox (claimed: it runs once), in its community's language."""
        with language.speaking(await self._language(event)):
            await self._handle(event)

    async def _language(self, event: RawEvent) -> str:
        room_id, sender = str(event.get("room_id", "")), str(event.get("sender", ""))
        return await self.svc.language_in(room_id, sender)

    async def _handle(self, event: RawEvent) -> None:
        if "state_key" in event:
            if self.on_state is not None:
                self.on_state(event)
            if self.crypto is not None and event.get("type") in TRACKED_STATE:
                await self.crypto.track_state(event)
        first: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (hook_name(listener), partial(listener, self.svc, event))
            for listener in HOOKS.arrivals.get(str(event.get("type")), [])
        ]
        if event.get("type") == "m.room.encrypted" and event.get("sender") != self.svc.bot:
            decrypted = await self._decrypt(event)
            if decrypted is None:  # parked or unreadable: what the cleartext decides still runs
                await self._run(event, first)
                return
            event = decrypted
        await self._readable(event, first)

    async def handle_readable(
        self, event: RawEvent, first: list[tuple[str, Callable[[], Awaitable[None]]]] | None = None
    ) -> None:
        """An event as its listeners see it (decrypted); also a parked one whose keys came.
        `first`: the arrival listeners of the event as it came (before decryption)."""
        with language.speaking(await self._language(event)):
            await self._readable(event, first)

    async def _readable(
        self, event: RawEvent, first: list[tuple[str, Callable[[], Awaitable[None]]]] | None
    ) -> None:
        calls: list[tuple[str, Callable[[], Awaitable[None]]]] = list(first or [])
        if event.get("type") == "m.room.member" and "state_key" in event:
            calls += await self._membership(event)
        for listener in HOOKS.events.get(str(event.get("type")), []):
            calls.append((hook_name(listener), partial(listener, self.svc, event)))
        await self._run(event, calls)

    async def _run(
        self, event: RawEvent, calls: list[tuple[str, Callable[[], Awaitable[None]]]]
    ) -> None:
        """Every listener once, each isolated. One that fails for a transient reason (the
        homeserver or the database away for a moment) makes the event be tried again; the
        ones that did their part are recorded first, so the retry skips them. One that
        fails for good is reported (`gave_up`)."""
        event_id = str(event.get("event_id", ""))
        done = await self.svc.db.dedupe.listeners_done(event_id) if RETRYING.get() else set()
        finished: list[str] = []
        stalled: list[str] = []
        for name, call in calls:
            if name in done:
                continue
            with isolated(log, "listener %s failed on %s", name, event_id) as failure:
                try:
                    await call()
                except Exception as e:
                    if not is_transient(e):
                        raise
                    log.warning("listener %s on %s: %s; will retry", name, event_id, brief(e))
                    stalled.append(name)
                    continue
            if failure.ref:
                await self.gave_up(event, failure.ref)
            finished.append(name)
        if stalled:
            for name in finished:
                await self.svc.db.dedupe.listener_done(event_id, name, now_ms())
            raise RetryLater(f"{len(stalled)} listeners of {event_id} to try again")

    async def gave_up(self, event: RawEvent, ref: str) -> None:
        """Work an event asked for failed for good (logged with `ref`): in a community, its
        admins room hears of it, with the reference, at most once an hour per community."""
        with isolated(log, "reporting the failure %s failed", ref):
            room = await self.svc.db.rooms.get(RoomID(str(event.get("room_id", ""))))
            if room is None:
                return
            admins = await self.svc.room_of_role(room.space_id, Role.ADMINS)
            last = self._reported.get(room.space_id)
            if admins is None or (last is not None and time.monotonic() - last < REPORT_EVERY):
                return
            self._reported[room.space_id] = time.monotonic()
            text = say(
                "⚠️ What the bot had to do after an event in {} failed (reference {}). The "
                "service's log has the details; reconciliation repairs what it can.",
                room.name,
                ref,
            )
            txn_id = txn_key("gave up", ref)
            await self.svc.gw.send_message(admins.room_id, "m.room.message", notice(text), txn_id)

    async def interrupted(self, event: RawEvent) -> None:
        """An event the previous run was handling when it died: not run again; the
        listeners that tell someone about it are. A parked event is parking's to handle."""
        if event.get("type") == "m.room.encrypted":
            if self.crypto is None:
                return
            if await self.svc.db.parked.holds(EventID(str(event.get("event_id", "")))):
                return
            try:
                event = await self.crypto.decrypt(event)
            except CannotDecrypt:
                return
        await self.interrupted_readable(event)

    async def interrupted_readable(self, event: RawEvent) -> None:
        listeners = HOOKS.interrupted.get(str(event.get("type")), [])
        if not listeners:
            return
        with language.speaking(await self._language(event)):  # looked up once for all
            for listener in listeners:
                with isolated(log, "listener %s failed on %s", listener, event.get("event_id")):
                    await listener(self.svc, event)

    async def _membership(self, event: RawEvent) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        content = event.get("content") or {}
        unsigned = event.get("unsigned") or {}
        prev = str((unsigned.get("prev_content") or {}).get("membership", ""))
        user, sender = UserID(str(event["state_key"])), UserID(str(event.get("sender", "")))
        change = classify(prev, str(content.get("membership", "")), sender, user)
        if change is None:
            return []
        room_id = RoomID(str(event["room_id"]))
        room = await self.svc.db.rooms.get(room_id)
        community = None
        if room is not None:
            community = await self.svc.db.communities.get(room.space_id)
            if community is None or community.state != CommunityState.ACTIVE:
                community = room = None
        member = MemberEvent(
            change=change,
            user=user,
            sender=sender,
            room_id=room_id,
            event_id=EventID(str(event.get("event_id", ""))),
            prev=prev,
            reason=str(content.get("reason") or ""),
            community=community,
            room=room if community is not None else None,
        )
        return [
            (hook.name, partial(hook.listener, self.svc, member))
            for hook in HOOKS.members
            if hook.wants(member, self.svc.bot)
        ]

    async def _decrypt(self, event: RawEvent) -> RawEvent | None:
        """The event decrypted; None when it is parked until its keys come (the room goes
        on meanwhile) or can never be read (its sender is told)."""
        if self.crypto is None or self.parking is None:
            return None
        try:
            return await self.crypto.decrypt(event)
        except KeysMissing as e:
            await self.parking.park(event, e.session_id)
        except CannotDecrypt:
            log.warning(
                "could not decrypt %s from %s in %s",
                event.get("event_id"),
                event.get("sender"),
                event.get("room_id"),
            )
            await self.parking.tell(event)
        return None
