"""Encrypted events that arrive before their keys: parked, never waited for in their room.

A room's ordered worker does not wait for keys. An event whose Megolm session is missing is
stored as it came (the ciphertext; nothing decrypted is ever stored), its sender's device is
asked for the keys, and the room goes on with its next event. A loop looks at the parked
events every `check_every` seconds, and at once when a transaction brought to-device
messages (keys, perhaps): one whose session is here now is handled like any other event;
one still unreadable after `park_for` seconds is given up and its sender is told that the
bot could not read it — in a DM every time, elsewhere as a reply at most once an hour per
sender and room (a client that never shares keys with the bot must not flood a group).

A parked event is marked running while its listeners run: after a crash, one found running
is handled as interrupted (its listeners are not run again), like an event of the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from mautrix.types import EventID, RoomID, UserID

from .. import metrics
from ..db import now_ms
from ..db.parked import Parked
from ..errors import isolated
from ..matrix.crypto import BotCrypto, CannotDecrypt
from ..matrix.errors import RetryLater, brief, is_transient
from ..matrix.router import RETRYING
from .hooks import RawEvent
from .notices import notice, say, txn_key
from .service import Service

log = logging.getLogger("communities.parking")
CHECK_EVERY = 1.0  # seconds between looks at the parked events
PARK_FOR = 60.0  # seconds an event waits for its keys before it is given up
BATCH = 200  # parked events looked at per pass (the longest-waiting first)
TELL_EVERY = 3600.0  # outside DMs, seconds between two "could not read" notices to one sender

Handler = Callable[[RawEvent], Awaitable[None]]


class Parking:
    def __init__(
        self, service: Service, crypto: BotCrypto, handle: Handler, interrupted: Handler
    ) -> None:
        self.svc = service
        self.crypto = crypto
        self.handle = handle
        self.interrupted = interrupted
        self.check_every = CHECK_EVERY
        self.park_for = PARK_FOR
        self._wake = asyncio.Event()
        self._told: dict[tuple[str, str], float] = {}  # (room, sender) → when, outside DMs

    async def park(self, event: RawEvent, session_id: str) -> None:
        await self.svc.db.parked.park(event, session_id, now_ms())
        metrics.UNDECRYPTABLE.labels("keys_missing").inc()
        log.info("parked %s in %s until its keys arrive", event.get("event_id"), event["room_id"])
        self.svc.tasks.spawn(f"asking for the keys of {event.get('event_id')}", self._ask(event))
        self.wake()

    async def _ask(self, event: RawEvent) -> None:
        try:
            await self.crypto.ask_for_keys(event)
        except Exception as e:
            if not is_transient(e):
                raise
            log.info("could not ask for the keys of %s: %s", event.get("event_id"), brief(e))

    def wake(self) -> None:
        """Keys may have arrived: look at the parked events now."""
        self._wake.set()

    def start(self) -> None:
        self.svc.tasks.spawn("parked events", self._loop())

    async def _loop(self) -> None:
        await self.resume()
        while True:
            with isolated(log, "a look at the parked events failed"):
                await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_every)
            self._wake.clear()

    async def resume(self) -> None:
        """Parked events a crash cut short while they ran: interrupted, not run again."""
        for row in await self.svc.db.parked.oldest(BATCH):
            if row.running:
                await self.svc.db.parked.delete(row.event_id)
                with isolated(log, "the interrupted parked event %s failed", row.event_id):
                    await self.interrupted(await self.crypto.decrypt(row.event))

    async def check(self) -> None:
        """Handle every parked event whose keys are here; give up the ones waited too long."""
        deadline = now_ms() - int(self.park_for * 1000)
        for row in await self.svc.db.parked.oldest(BATCH):
            if row.running:
                continue
            if await self.crypto.has_session(row.room_id, row.session_id):
                with isolated(log, "the parked event %s failed", row.event_id):
                    await self._handle(row)
            elif row.parked_at < deadline:
                log.warning(
                    "gave up %s from %s in %s: its keys never arrived",
                    row.event_id,
                    row.event.get("sender"),
                    row.room_id,
                )
                await self.svc.db.parked.delete(row.event_id)
                await self.tell(row.event)

    async def _handle(self, row: Parked) -> None:
        try:
            decrypted = await self.crypto.decrypt(row.event)
        except CannotDecrypt:
            await self.svc.db.parked.delete(row.event_id)
            await self.tell(row.event)
            return
        await self.svc.db.parked.set_running(row.event_id, True)
        token = RETRYING.set(True)  # listeners that did their part before are skipped
        try:
            await self.handle(decrypted)
        except RetryLater as e:
            log.info("parked event %s: %s", row.event_id, e)
            await self.svc.db.parked.set_running(row.event_id, False)
            return
        finally:
            RETRYING.reset(token)
        await self.svc.db.parked.delete(row.event_id)

    async def tell(self, event: RawEvent) -> None:
        """The sender learns that the bot could not read their message."""
        room_id, sender = RoomID(str(event["room_id"])), UserID(str(event["sender"]))
        if not await self.svc.is_dm(room_id, sender):
            last = self._told.get((room_id, sender))
            if last is not None and time.monotonic() - last < TELL_EVERY:
                return
            self._told[(room_id, sender)] = time.monotonic()
        text = say(
            "⚠️ I could not read your message: its keys never reached me. Check that your "
            "client shares keys with unverified devices, then send it again."
        )
        reply_to = EventID(str(event["event_id"]))
        await self.svc.gw.send_message(
            room_id,
            "m.room.message",
            notice(text, reply_to=reply_to, mentions=[sender]),
            txn_id=txn_key("unreadable", reply_to),
        )
