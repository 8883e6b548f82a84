"""What operators watch: Prometheus metrics, on a listener of their own.

Every label has a handful of values: an event's kind, a homeserver endpoint with its ids
taken out (`/_matrix/client/v3/rooms/{}/send/m.room.message/{}`), a reason. The metrics are
always counted (it costs a few dictionary lookups); `metrics.enabled` only opens the
listener. Gauges that are rows of the database (inbox depth, pending operations, scheduled
jobs, parked events) are read when Prometheus scrapes, not kept up to date.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

log = logging.getLogger("communities.metrics")

TRANSACTIONS = Counter(
    "communities_transactions",
    "Transactions pushed by the homeserver, by outcome (accepted, retry, rejected, failed)",
    ["outcome"],
)
EVENTS = Counter(
    "communities_events_received", "Events received in accepted transactions, by kind", ["kind"]
)
HANDLED = Histogram(
    "communities_handler_seconds",
    "Time to handle one event, by kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HANDLER_FAILURES = Counter(
    "communities_handler_failures", "Events whose handling failed, by kind", ["kind"]
)
HOMESERVER = Histogram(
    "communities_homeserver_request_seconds",
    "Homeserver requests by method and endpoint (ids replaced by {})",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HOMESERVER_FAILURES = Counter(
    "communities_homeserver_request_failures",
    "Homeserver requests that failed, by endpoint and reason (HTTP status or 'connection')",
    ["method", "endpoint", "reason"],
)
KEY_SHARE_DEVICES = Histogram(
    "communities_key_share_devices",
    "Devices a Megolm session was sent to in one share",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
)
KEY_SHARE_SECONDS = Histogram(
    "communities_key_share_seconds",
    "Time to share a Megolm session with a room's devices",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UNDECRYPTABLE = Counter(
    "communities_undecryptable_events",
    "Encrypted events the bot could not decrypt on arrival, by reason"
    " (keys_missing: parked until the keys arrive; cannot_decrypt: never will)",
    ["reason"],
)
INBOX = Gauge("communities_inbox_events", "Events accepted and not handled yet")
OPERATIONS = Gauge("communities_operations_pending", "Operations running or being undone")
JOBS = Gauge("communities_scheduled_jobs", "Scheduled jobs waiting for their time")
PARKED = Gauge("communities_parked_events", "Encrypted events waiting for their keys")
READY = Gauge("communities_ready", "1 when the service handles what arrives, else 0")

_KINDS = {
    "m.room.message": "message",
    "m.room.encrypted": "encrypted",
    "m.room.member": "member",
    "m.reaction": "reaction",
    "m.room.redaction": "redaction",
    "m.poll.start": "poll",
    "m.poll.response": "poll",
    "m.poll.end": "poll",
    "org.matrix.msc3381.poll.start": "poll",
    "org.matrix.msc3381.poll.response": "poll",
    "org.matrix.msc3381.poll.end": "poll",
}


def kind_of(event: dict[str, Any]) -> str:
    """An event's label: a few known types, `state` for other state, else `other`."""
    known = _KINDS.get(str(event.get("type", "")))
    if known is not None:
        return known
    return "state" if "state_key" in event else "other"


def endpoint(path: str) -> str:
    """A request path with what identifies one thing (ids, transaction ids, media, state
    keys) replaced by `{}`: one label per endpoint, not one per room."""
    parts = [unquote(p) for p in path.split("/")]
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part[:1] in ("!", "@", "#", "$") or ":" in part:
            out.append("{}")
        else:
            out.append(part)
        i += 1
        if part in ("send", "sendToDevice", "state") and i < len(parts):
            out.append(parts[i])  # the event type: a handful, worth a label
            i += 1
            hide = 1  # /send/{type}/{txn}, /state/{type}/{key}
        elif part in ("redact", "download", "thumbnail"):
            hide = 2  # /redact/{event}/{txn}, /download/{server}/{media}
        else:
            hide = 0
        for _ in range(min(hide, len(parts) - i)):
            out.append("{}" if parts[i] else "")
            i += 1
    return "/".join(out)


def trace_config() -> aiohttp.TraceConfig:
    """Times every request of the session it is given to, by endpoint."""
    trace = aiohttp.TraceConfig()

    async def start(_: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.started = time.monotonic()

    async def end(_: Any, ctx: SimpleNamespace, params: Any) -> None:
        method, where = params.method, endpoint(params.url.path)
        HOMESERVER.labels(method, where).observe(time.monotonic() - ctx.started)
        if params.response.status >= 400:
            HOMESERVER_FAILURES.labels(method, where, str(params.response.status)).inc()

    async def failed(_: Any, ctx: SimpleNamespace, params: Any) -> None:
        method, where = params.method, endpoint(params.url.path)
        HOMESERVER.labels(method, where).observe(time.monotonic() - ctx.started)
        HOMESERVER_FAILURES.labels(method, where, "connection").inc()

    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace


class MetricsServer:
    """Prometheus text at `/metrics`; `refresh` reads the database's gauges first."""

    def __init__(self, host: str, port: int, refresh: Callable[[], Awaitable[None]]) -> None:
        self.host, self.port = host, port
        self.refresh = refresh
        self.app = web.Application()
        self.app.router.add_get("/metrics", self.metrics)
        self._runner: web.AppRunner | None = None

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            await self.refresh()
        except Exception as e:  # the counters are still worth a scrape
            log.warning("could not read the database's gauges: %s", type(e).__name__)
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
