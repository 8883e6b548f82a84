"""The appservice's HTTP side: what the homeserver calls.

Only the homeserver, holding `hs_token`, may push: a request without a token is
401 `M_UNAUTHORIZED`, a wrong token 403 `M_FORBIDDEN`. A malformed body is 400 with one line.
A transaction is answered 200 once its events are safely in the inbox; a transaction seen
before (same id, same body; also before a restart) is answered 200 and does nothing.

The probes need no token: `/_matrix/mau/live` (200 while the process serves HTTP) and
`/_matrix/mau/ready` (200 once transactions are handled, 503 before and on a standby), as the
mautrix bridges have them; `/_communities/health` is the older name of `ready`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import metrics
from ..errors import isolated
from .router import Router

log = logging.getLogger("communities.server")


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def _ephemeral(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A transaction's ephemeral events (receipts, typing): the stable key, else MSC2409's."""
    found = body.get("ephemeral")
    if not isinstance(found, list):
        found = body.get("de.sorunome.msc2409.ephemeral")
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


class AppserviceServer:
    def __init__(
        self, hs_token: str, router: Router, bot: str, max_body_bytes: int = 32 * 1024 * 1024
    ) -> None:
        self.hs_token = hs_token
        self.router = router
        self.bot = bot
        self.app = web.Application(middlewares=[self._auth], client_max_size=max_body_bytes)
        self.app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", self.transaction)
        self.app.router.add_put("/transactions/{txn_id}", self.transaction)
        self.app.router.add_get("/_matrix/app/v1/users/{user_id}", self.query_user)
        self.app.router.add_get("/_matrix/app/v1/rooms/{alias}", self.query_alias)
        self.app.router.add_post("/_matrix/app/v1/ping", self.ping)
        self.app.router.add_get("/_communities/health", self.health)
        self.app.router.add_get("/_matrix/mau/ready", self.health)
        self.app.router.add_get("/_matrix/mau/live", self.live)
        self._runner: web.AppRunner | None = None
        # Set once the service can handle what arrives; transactions wait for it.
        self.ready = asyncio.Event()
        # A standby (another instance leads) refuses transactions at once: the homeserver
        # retries, and a load balancer sends them to the leader.
        self.standby = False
        # Handles the encryption extensions of a transaction before its events.
        self.extras: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(("/_communities/", "/_matrix/mau/")):
            return await handler(request)  # type: ignore[no-any-return]
        token = request.query.get("access_token")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = header.removeprefix("Bearer ")
        if not token:
            return _error(401, "M_UNAUTHORIZED", "Missing hs_token")
        if not hmac.compare_digest(token.encode(), self.hs_token.encode()):
            return _error(403, "M_FORBIDDEN", "Wrong hs_token")
        return await handler(request)  # type: ignore[no-any-return]

    async def transaction(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            metrics.TRANSACTIONS.labels("rejected").inc()
            return _error(400, "M_NOT_JSON", "Body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
            metrics.TRANSACTIONS.labels("rejected").inc()
            return _error(400, "M_BAD_JSON", "Body must be an object with an events list")
        events = [e for e in body.get("events", []) if isinstance(e, dict)]
        if self.standby:
            metrics.TRANSACTIONS.labels("standby").inc()
            return _error(503, "M_UNKNOWN", "Standing by: another instance leads")
        await self.ready.wait()
        txn_id, digest = request.match_info["txn_id"], hashlib.sha256(raw).hexdigest()
        if await self.router.seen(txn_id, digest):
            metrics.TRANSACTIONS.labels("retry").inc()
            return web.json_response({})  # a retry of what we already hold
        if self.extras is not None:
            # Keys and device lists first; a failure is not acknowledged: the homeserver
            # sends the transaction again (nothing of it is stored yet).
            with isolated(log, "the encryption part of transaction %s failed", txn_id) as failed:
                await self.extras(body)
            if failed.ref:
                metrics.TRANSACTIONS.labels("failed").inc()
                return _error(500, "M_UNKNOWN", f"Try again later (reference {failed.ref})")
        try:
            await self.router.accept(txn_id, events, digest, _ephemeral(body))
        except Exception:
            metrics.TRANSACTIONS.labels("failed").inc()
            raise
        metrics.TRANSACTIONS.labels("accepted").inc()
        for kind, n in Counter(metrics.kind_of(e) for e in events).items():
            metrics.EVENTS.labels(kind).inc(n)
        return web.json_response({})

    async def query_user(self, request: web.Request) -> web.Response:
        if request.match_info["user_id"] == self.bot:
            return web.json_response({})
        return _error(404, "M_NOT_FOUND", "No such user")

    async def query_alias(self, request: web.Request) -> web.Response:
        return _error(404, "M_NOT_FOUND", "No such alias")

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def health(self, request: web.Request) -> web.Response:
        """200 once the service handles transactions (a readiness probe), 503 before."""
        ready = self.ready.is_set()
        return web.json_response({"ok": ready}, status=200 if ready else 503)

    async def live(self, request: web.Request) -> web.Response:
        """200 while the process answers at all (a liveness probe)."""
        return web.json_response({"ok": True})

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("listening on %s:%d", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
