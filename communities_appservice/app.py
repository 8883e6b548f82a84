"""Composition root: database, gateway, service, router and HTTP server; start and stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

# Their operations must be registered before interrupted ones are resumed.
from . import building, moderation, roles  # noqa: F401
from .commands import Dispatcher
from .commands.framework import say
from .config import Config
from .db import Tables, create_database
from .logs import silence_bodies
from .matrix.crypto import BotCrypto, CannotDecrypt
from .matrix.gateway import MatrixError, MatrixGateway
from .matrix.router import Router
from .matrix.server import AppserviceServer
from .membership import Membership, is_membership
from .operations import UNFINISHED
from .reconcile import Reconciler
from .service import Service

log = logging.getLogger("communities.app")
TRACKED_STATE = ("m.room.member", "m.room.encryption")
INTERRUPTED = say(
    "⚠️ The service restarted while it was handling this command, so it may not be done. "
    "Check (for example with <code>info</code> or <code>log</code>) and send it again if not."
)


class App:
    def __init__(self, config: Config) -> None:
        config.check_tokens()
        self.config = config
        self.db = create_database(config.appservice.database)
        self.tables = Tables(self.db)
        self.router = Router(self.tables, self.handle_event, self.handle_interrupted)
        self.server = AppserviceServer(config.appservice.hs_token, self.router, config.bot_mxid)
        self._session: aiohttp.ClientSession | None = None
        self.gateway: MatrixGateway | None = None
        self.service: Service | None = None
        self.dispatcher: Dispatcher | None = None
        self.membership: Membership | None = None
        self.crypto: BotCrypto | None = None
        self.reconciler: Reconciler | None = None

    async def start(self) -> None:
        silence_bodies()
        await self.db.start()
        self._session = aiohttp.ClientSession()
        self.gateway = MatrixGateway(
            self.config.homeserver.address,
            self.config.appservice.as_token,
            self.config.bot_mxid,
            self.config.homeserver.domain,
            self._session,
        )
        self.service = Service(self.config, self.tables, self.gateway)
        self.dispatcher = Dispatcher(self.service)
        self.membership = Membership(self.service)
        self.reconciler = Reconciler(self.service)
        await self.server.start(self.config.appservice.hostname, self.config.appservice.port)
        await self._register_bot()
        if self.config.encryption.enabled:
            await self._start_crypto()
        # Unfinished operations are taken up before any new command can start one.
        await self.service.ops.resume()
        self.server.ready.set()
        await self.router.resume()
        self.reconciler.start()
        try:
            await self.gateway.ping(self.config.appservice.id)
        except (MatrixError, aiohttp.ClientError) as e:
            log.warning(
                "the homeserver could not reach us at %s: %s", self.config.appservice.address, e
            )
        log.info("ready as %s", self.config.bot_mxid)

    async def _register_bot(self) -> None:
        """Wait for the homeserver (with backoff) and make sure the bot user exists."""
        assert self.gateway is not None
        delay = 1.0
        while True:
            try:
                await self.gateway.ensure_registered(self.config.appservice.bot_displayname)
                return
            except (aiohttp.ClientError, OSError) as e:
                log.warning(
                    "homeserver not reachable (%s); retrying in %.0fs", type(e).__name__, delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def _start_crypto(self) -> None:
        assert self.gateway is not None
        self.crypto = BotCrypto(
            self.gateway.client,
            self.db,
            self.config.encryption.pickle_key,
            appservice_mode=self.config.encryption.appservice,
            membership=self.gateway.membership,
        )
        await self.crypto.start()
        self.gateway.crypto = self.crypto
        if self.config.encryption.appservice:
            self.server.extras = self.crypto.handle_transaction

    async def handle_event(self, event: dict[str, Any]) -> None:
        assert self.membership is not None and self.dispatcher is not None
        assert self.reconciler is not None
        if "state_key" in event:
            self.reconciler.state_changed(event)
        if self.crypto is not None and event.get("type") in TRACKED_STATE and "state_key" in event:
            await self.crypto.track_state(event)
        if event.get("type") == "m.room.encrypted" and event.get("sender") != self.config.bot_mxid:
            decrypted = await self._decrypt(event)
            if decrypted is None:
                return
            event = decrypted
        if is_membership(event):
            await self.membership.handle(event)
            return
        incoming = self.dispatcher.parse_incoming(event)
        if incoming is not None:
            await self.dispatcher.handle(incoming)

    async def handle_interrupted(self, event: dict[str, Any]) -> None:
        """A command the previous run was handling when it died: an operation it started
        reports by itself when finished; otherwise the sender learns it may not be done."""
        assert self.dispatcher is not None and self.service is not None
        if event.get("type") == "m.room.encrypted":
            if self.crypto is None:
                return
            try:
                event = await self.crypto.decrypt(event)
            except CannotDecrypt:
                return
        incoming = self.dispatcher.parse_incoming(event)
        if incoming is None:
            return
        op = await self.tables.operations.for_event(incoming.event_id)
        if op is None:
            await self.dispatcher.send_reply(incoming, INTERRUPTED)
        elif op.state not in UNFINISHED:  # over, but its answer may never have been sent
            await self.dispatcher.send_reply(incoming, say("{}", op.outcome))

    async def _decrypt(self, event: dict[str, Any]) -> dict[str, Any] | None:
        assert self.service is not None
        if self.crypto is None:
            return None
        try:
            return await self.crypto.decrypt(event)
        except CannotDecrypt:
            room_id, sender = str(event["room_id"]), str(event["sender"])
            log.warning(
                "could not decrypt %s from %s in %s", event.get("event_id"), sender, room_id
            )
            if await self.service.is_dm(room_id, sender):
                await self.service.gw.send_message(
                    room_id,
                    "m.room.message",
                    {
                        "msgtype": "m.notice",
                        "body": "⚠️ I could not read your last message: its keys never reached me. "
                        "Check that your client shares keys with unverified devices, "
                        "then send it again.",
                        "m.relates_to": {"m.in_reply_to": {"event_id": event["event_id"]}},
                    },
                )
            return None

    async def stop(self) -> None:
        await self.server.stop()
        await self.router.stop()
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.service is not None:
            await self.service.ops.stop()
        if self.crypto is not None:
            await self.crypto.stop()
            self.crypto = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.db.stop()
