"""Composition root: database, gateway, service, router and HTTP server; start and stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from .commands import Dispatcher
from .config import Config
from .db import Tables, create_database
from .matrix.gateway import MatrixGateway
from .matrix.router import Router
from .matrix.server import AppserviceServer
from .membership import Membership, is_membership
from .service import Service

log = logging.getLogger("communities.app")


class App:
    def __init__(self, config: Config) -> None:
        config.check_tokens()
        self.config = config
        self.db = create_database(config.appservice.database)
        self.tables = Tables(self.db)
        self.router = Router(self.tables, self.handle_event)
        self.server = AppserviceServer(config.appservice.hs_token, self.router, config.bot_mxid)
        self._session: aiohttp.ClientSession | None = None
        self.gateway: MatrixGateway | None = None
        self.service: Service | None = None
        self.dispatcher: Dispatcher | None = None
        self.membership: Membership | None = None

    async def start(self) -> None:
        await self.db.start()
        self._session = aiohttp.ClientSession()
        self.gateway = MatrixGateway(
            self.config.homeserver.address, self.config.appservice.as_token,
            self.config.bot_mxid, self.config.homeserver.domain, self._session,
        )
        self.service = Service(self.config, self.tables, self.gateway)
        self.dispatcher = Dispatcher(self.service)
        self.membership = Membership(self.service)
        await self.server.start(self.config.appservice.hostname, self.config.appservice.port)
        await self._register_bot()
        await self.router.resume()
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
                log.warning("homeserver not reachable (%s); retrying in %.0fs", type(e).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def handle_event(self, event: dict[str, Any]) -> None:
        assert self.membership is not None and self.dispatcher is not None
        if is_membership(event):
            await self.membership.handle(event)
            return
        incoming = self.dispatcher.parse_incoming(event)
        if incoming is not None:
            await self.dispatcher.handle(incoming)

    async def stop(self) -> None:
        await self.server.stop()
        await self.router.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.db.stop()
