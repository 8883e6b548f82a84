"""Composition root: database, gateway, service, router and HTTP server; start and stop.

Nothing here is about one feature: every feature declares itself and is imported by
`index`, before anything is resumed (an interrupted operation needs its kind registered).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from . import (
    index,  # noqa: F401  (every feature registers itself)
    metrics,
)
from .config import Config
from .core.events import Events
from .core.hooks import HOOKS
from .core.reconcile import Reconciler
from .core.service import Service
from .db import Tables, create_database
from .db.lease import Lease
from .logs import silence_bodies
from .matrix.crypto import BotCrypto
from .matrix.errors import MatrixError, persistently
from .matrix.gateway import MatrixGateway
from .matrix.router import Router
from .matrix.server import AppserviceServer
from .tasks import Tasks

log = logging.getLogger("communities.app")


class App:
    def __init__(self, config: Config) -> None:
        config.check_tokens()
        self.config = config
        self.db = create_database(config.appservice.database)
        self.tables = Tables(self.db)
        self.tasks = Tasks()
        self.router = Router(self.tables, self._handle, self._interrupted, gave_up=self._gave_up)
        self.server = AppserviceServer(
            config.appservice.hs_token,
            self.router,
            config.bot_mxid,
            config.appservice.max_body_bytes,
        )
        self._session: aiohttp.ClientSession | None = None
        self.gateway: MatrixGateway | None = None
        self.service: Service | None = None
        self.crypto: BotCrypto | None = None
        self.reconciler: Reconciler | None = None
        self.events: Events | None = None
        self.metrics: metrics.MetricsServer | None = None
        if config.metrics.enabled:
            self.metrics = metrics.MetricsServer(*config.metrics.host_port, self._gauges)
        self.lease: Lease | None = None
        if config.appservice.high_availability:
            self.lease = Lease(config.appservice.database, config.appservice.id)
        # Set when this instance must stop at once: it lost the lease (another may lead).
        self.failed = asyncio.Event()

    async def start(self) -> None:
        silence_bodies()
        await self.db.start()
        if self.metrics is not None:
            await self.metrics.start()
        await self.server.start(self.config.appservice.hostname, self.config.appservice.port)
        if self.lease is not None:
            # A standby answers the probes (ready: 503) and refuses transactions until it
            # leads; only then does it load the bot's encryption and resume anything.
            self.server.standby = True
            await self.lease.acquire()
            self.server.standby = False
            self.tasks.spawn("watching the lease", self.lease.watch(self.failed.set))
        self._session = aiohttp.ClientSession(trace_configs=[metrics.trace_config()])
        self.gateway = MatrixGateway(
            self.config.homeserver.address,
            self.config.appservice.as_token,
            self.config.bot_mxid,
            self.config.homeserver.domain,
            self._session,
        )
        self.service = Service(self.config, self.tables, self.gateway, self.tasks)
        self.reconciler = Reconciler(self.service)
        await self._register_bot()
        if self.config.encryption.enabled:
            await self._start_crypto()
        self.events = Events(self.service, self.crypto, self.reconciler.state_changed)
        self.router.counter = self._accepted if HOOKS.accepted else None
        # Unfinished operations are taken up before any new command can start one.
        await self.service.ops.resume()
        self.service.scheduler.start()  # overdue jobs fire now, once each
        # What a previous run left in the inbox is known before any new transaction lands.
        await self.router.resume()
        self.server.ready.set()
        metrics.READY.set(1)
        if self.events.parking is not None:
            self.events.parking.start()
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
        gateway, name = self.gateway, self.config.appservice.bot_displayname
        assert gateway is not None
        await persistently("reaching the homeserver", lambda: gateway.ensure_registered(name))

    async def _start_crypto(self) -> None:
        assert self.gateway is not None
        self.crypto = BotCrypto(
            self.gateway.client,
            self.db,
            self.config.encryption.pickle_key,
            appservice_mode=self.config.encryption.appservice,
        )
        await self.crypto.start()
        self.gateway.crypto = self.crypto
        assert self.service is not None
        self.crypto.machine.history_room = self.service.shares_history
        if self.config.encryption.appservice:
            self.server.extras = self._crypto_part

    async def _crypto_part(self, body: dict[str, object]) -> None:
        """A transaction's keys and device lists; keys may be what a parked event awaits."""
        assert self.crypto is not None
        await self.crypto.handle_transaction(body)
        if self.events is not None and self.events.parking is not None:
            self.events.parking.wake()

    async def _handle(self, event: dict[str, object]) -> None:
        assert self.events is not None
        kind = metrics.kind_of(event)
        with metrics.HANDLED.labels(kind).time():
            try:
                await self.events.handle(event)
            except Exception:
                metrics.HANDLER_FAILURES.labels(kind).inc()
                raise

    async def _gauges(self) -> None:
        backlog = await self.tables.backlog()
        metrics.INBOX.set(backlog["inbox"])
        metrics.OPERATIONS.set(backlog["operations"])
        metrics.JOBS.set(backlog["jobs"])
        metrics.PARKED.set(backlog["parked"])

    async def _accepted(
        self, events: list[dict[str, object]], ephemeral: list[dict[str, object]]
    ) -> None:
        assert self.service is not None
        for listener in HOOKS.accepted:
            await listener(self.service, events, ephemeral)

    async def _gave_up(self, event: dict[str, object], ref: str) -> None:
        if self.events is not None:
            await self.events.gave_up(event, ref)

    async def _interrupted(self, event: dict[str, object]) -> None:
        assert self.events is not None
        await self.events.interrupted(event)

    async def stop(self) -> None:
        metrics.READY.set(0)
        await self.server.stop()
        await self.router.stop()
        if self.service is not None:
            await self.service.ops.stop()
        await self.tasks.stop()
        if self.crypto is not None:
            await self.crypto.stop()
            self.crypto = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.metrics is not None:
            await self.metrics.stop()
        if self.lease is not None:
            await self.lease.release()
        await self.db.stop()
