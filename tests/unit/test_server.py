"""`matrix.server` and `matrix.router`: what the homeserver calls, over real HTTP and a real
database (SQLite, and PostgreSQL in its own pass).

The handler is a plain recording function; the router, the inbox and the dedupe table are
the real ones, so a "restart" is a new Router and server over the same database, reopened.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from mautrix.types import RoomID
from mautrix.util.async_db import Database

from communities_appservice.db import Tables, create_database
from communities_appservice.matrix import gateway as gateway_module
from communities_appservice.matrix import router as router_module
from communities_appservice.matrix.gateway import MatrixGateway
from communities_appservice.matrix.router import Router
from communities_appservice.matrix.server import AppserviceServer

HS_TOKEN = "hs-secret-token"
BOT = "@communities:example.org"
TXN = "/_matrix/app/v1/transactions/{}"
AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}


@dataclass
class Recorder:
    """The handler: remembers every event it was given; raises for events marked `boom`."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        if event.get("content", {}).get("boom"):
            raise RuntimeError("handler failure for the test")

    @property
    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.seen]


@dataclass
class Service:
    """One running router + server over a database, and a client to call it."""

    db: Database
    server: AppserviceServer
    router: Router
    client: TestClient[Any, Any]
    handled: Recorder
    interrupted: Recorder

    async def put(self, txn_id: str, events: list[dict[str, Any]]) -> int:
        response = await self.client.put(TXN.format(txn_id), json={"events": events}, headers=AUTH)
        assert await response.json() == {} or response.status != 200
        await self.router.wait_idle()
        return response.status

    async def close(self) -> None:
        await self.client.close()
        await self.router.stop()


async def _start(db: Database, *, ready: bool = True) -> Service:
    handled, interrupted = Recorder(), Recorder()
    router = Router(Tables(db), handled, interrupted)
    server = AppserviceServer(HS_TOKEN, router, BOT)
    client = TestClient(TestServer(server.app, host="127.0.0.1"))
    await client.start_server()
    if ready:  # as App.start does once the service can handle events
        server.ready.set()
        await router.resume()
    return Service(db, server, router, client, handled, interrupted)


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[Database]:
    """The database at `url`, open: what one run of the process sees."""
    db = create_database(url)
    await db.start()
    try:
        yield db
    finally:
        await db.stop()


@asynccontextmanager
async def _running(url: str) -> AsyncIterator[Service]:
    """One run of the process: the database opened, the service started, both stopped."""
    async with _opened(url) as db:
        running = await _start(db)
        try:
            yield running
        finally:
            await running.close()


@pytest.fixture
async def service(tables: Tables) -> AsyncIterator[Service]:
    running = await _start(tables.db)
    try:
        yield running
    finally:
        await running.close()


def _event(event_id: str, room_id: str = "!room:example.org", **content: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": room_id,
        "type": "m.room.message",
        "sender": "@alice:example.org",
        "content": {"msgtype": "m.text", **content},
    }


# --- authentication ----------------------------------------------------------------------

ENDPOINTS = [
    ("PUT", TXN.format("t1")),
    ("PUT", "/transactions/t1"),  # the legacy path
    ("GET", f"/_matrix/app/v1/users/{BOT}"),
    ("GET", "/_matrix/app/v1/rooms/%23alias:example.org"),
    ("POST", "/_matrix/app/v1/ping"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    ("query", "headers", "status", "errcode"),
    [
        pytest.param({}, {}, 401, "M_UNAUTHORIZED", id="no-token"),
        pytest.param({}, {"Authorization": "Bearer "}, 401, "M_UNAUTHORIZED", id="empty-bearer"),
        pytest.param({"access_token": ""}, {}, 401, "M_UNAUTHORIZED", id="empty-query"),
        pytest.param({}, {"Authorization": "Bearer wrong"}, 403, "M_FORBIDDEN", id="wrong-header"),
        pytest.param({"access_token": "wrong"}, {}, 403, "M_FORBIDDEN", id="wrong-query"),
        pytest.param({"access_token": HS_TOKEN[:-1]}, {}, 403, "M_FORBIDDEN", id="prefix"),
        pytest.param({"access_token": HS_TOKEN + "x"}, {}, 403, "M_FORBIDDEN", id="longer"),
        pytest.param({"access_token": "ünïcode"}, {}, 403, "M_FORBIDDEN", id="non-ascii"),
    ],
)
async def test_refused_without_the_token(
    service: Service,
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    status: int,
    errcode: str,
) -> None:
    response = await service.client.request(
        method, path, params=query, headers=headers, json={"events": [_event("$x")]}
    )
    assert response.status == status
    body = await response.json()
    assert body["errcode"] == errcode
    assert body["error"]
    await service.router.wait_idle()
    assert service.handled.seen == []


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param({"access_token": HS_TOKEN}, {}, id="query"),
        pytest.param({}, AUTH, id="header"),
    ],
)
async def test_accepted_with_the_token(
    service: Service, query: dict[str, str], headers: dict[str, str]
) -> None:
    response = await service.client.put(
        TXN.format("t1"), params=query, headers=headers, json={"events": [_event("$a")]}
    )
    assert response.status == 200
    await service.router.wait_idle()
    assert service.handled.ids == ["$a"]


@pytest.mark.parametrize(
    "path", ["/_communities/health", "/_matrix/mau/ready", "/_matrix/mau/live"]
)
async def test_health_needs_no_token(service: Service, path: str) -> None:
    response = await service.client.get(path)
    assert response.status == 200
    assert await response.json() == {"ok": True}


# --- malformed bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        pytest.param(b"not json", "M_NOT_JSON", id="text"),
        pytest.param(b"", "M_NOT_JSON", id="empty"),
        pytest.param(b'{"events": [', "M_NOT_JSON", id="truncated"),
        pytest.param(b"\xff\xfe{}", "M_NOT_JSON", id="not-utf8"),
        pytest.param(b'{"events": 5}', "M_BAD_JSON", id="events-number"),
        pytest.param(b'{"events": {"a": 1}}', "M_BAD_JSON", id="events-object"),
        pytest.param(b"[1, 2]", "M_BAD_JSON", id="array"),
        pytest.param(b'"events"', "M_BAD_JSON", id="string"),
        pytest.param(b"null", "M_BAD_JSON", id="null"),
    ],
)
async def test_malformed_body(service: Service, body: bytes, errcode: str) -> None:
    response = await service.client.put(
        TXN.format("bad"), data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["errcode"] == errcode
    # a refused transaction is not remembered: the homeserver may send it again, fixed
    assert await service.put("bad", [_event("$fixed")]) == 200
    assert service.handled.ids == ["$fixed"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-events"),
        pytest.param({"events": []}, id="empty-events"),
        pytest.param({"events": [5, "x", None]}, id="non-object-events"),
        pytest.param({"events": [{"type": "m.typing"}]}, id="event-without-id"),
        pytest.param({"ephemeral": [], "de.sorunome.msc2409.to_device": []}, id="extensions"),
    ],
)
async def test_transactions_with_nothing_to_handle(service: Service, body: dict[str, Any]) -> None:
    response = await service.client.put(TXN.format("quiet"), json=body, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {}
    await service.router.wait_idle()
    assert service.handled.seen == []


# --- transactions ------------------------------------------------------------------------


async def test_transaction_events_are_handled(service: Service) -> None:
    events = [_event("$a", body="one"), _event("$b", "!other:example.org", body="two")]
    assert await service.put("t1", events) == 200
    assert sorted(service.handled.ids) == ["$a", "$b"]
    assert service.handled.seen[service.handled.ids.index("$a")] == events[0]
    assert await service.db.fetchval("SELECT COUNT(*) FROM inbox") == 0


async def test_events_of_one_room_are_handled_in_order(service: Service) -> None:
    events = [_event(f"$e{i}") for i in range(10)]
    assert await service.put("t1", events) == 200
    assert service.handled.ids == [f"$e{i}" for i in range(10)]


async def test_same_txn_id_twice_is_handled_once(service: Service) -> None:
    assert await service.put("t1", [_event("$a"), _event("$b")]) == 200
    assert await service.put("t1", [_event("$a"), _event("$b")]) == 200
    assert sorted(service.handled.ids) == ["$a", "$b"]


async def test_reused_txn_id_with_new_content_is_handled(service: Service) -> None:
    """A homeserver that lost its pending transactions numbers them from 1 again."""
    assert await service.put("t1", [_event("$a")]) == 200
    assert await service.put("t1", [_event("$c")]) == 200
    assert sorted(service.handled.ids) == ["$a", "$c"]


async def test_same_event_in_a_new_txn_is_handled_once(service: Service) -> None:
    assert await service.put("t1", [_event("$a")]) == 200
    assert await service.put("t2", [_event("$a"), _event("$b")]) == 200
    assert await service.put("t3", [_event("$b"), _event("$a")]) == 200
    assert service.handled.ids == ["$a", "$b"]


async def test_same_event_twice_in_one_txn_is_handled_once(service: Service) -> None:
    assert await service.put("t1", [_event("$a"), _event("$a")]) == 200
    assert service.handled.ids == ["$a"]


async def test_legacy_transaction_path(service: Service) -> None:
    response = await service.client.put(
        "/transactions/legacy", json={"events": [_event("$a")]}, headers=AUTH
    )
    assert response.status == 200
    await service.router.wait_idle()
    assert service.handled.ids == ["$a"]


async def test_a_failing_event_does_not_stop_the_next(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    events = [
        _event("$a"),
        _event("$boom", boom=True),
        _event("$c"),
        _event("$boom2", "!other:example.org", boom=True),
        _event("$d", "!other:example.org"),
    ]
    assert await service.put("t1", events) == 200
    assert sorted(service.handled.ids) == ["$a", "$boom", "$boom2", "$c", "$d"]
    failures = [r for r in caplog.records if r.name == "communities.router"]
    assert len(failures) == 2
    assert all("ref" in r.getMessage() for r in failures)
    # the failed event is done with: not retried by the next transaction or a resume
    assert await service.put("t2", [_event("$boom", boom=True), _event("$e")]) == 200
    assert service.handled.ids.count("$boom") == 1
    assert await service.db.fetchval("SELECT COUNT(*) FROM inbox") == 0


async def test_restart_remembers_transactions_and_events(database_url: str) -> None:
    async with _running(database_url) as first:
        assert await first.put("t1", [_event("$a"), _event("$b")]) == 200
        assert sorted(first.handled.ids) == ["$a", "$b"]

    async with _running(database_url) as second:
        assert second.handled.seen == []  # nothing left to resume
        assert await second.put("t1", [_event("$a"), _event("$b")]) == 200
        assert second.handled.seen == []
        assert await second.put("t2", [_event("$a"), _event("$d")]) == 200
        assert second.handled.ids == ["$d"]


async def test_restart_resumes_what_was_accepted_but_not_handled(database_url: str) -> None:
    async with _opened(database_url) as db:  # a crash after the 200 and before the handling
        await Tables(db).inbox.accept("t1", [_event("$a"), _event("$b")], 1)

    async with _running(database_url) as restarted:
        await restarted.router.wait_idle()
        assert restarted.handled.ids == ["$a", "$b"]
        assert await restarted.put("t1", [_event("$a")]) == 200
        assert restarted.handled.ids == ["$a", "$b"]


async def test_an_event_a_crash_interrupted_is_reported_not_run_again(database_url: str) -> None:
    async with _opened(database_url) as db:
        # $a was being handled (claimed, still in the inbox) when the process died
        tables = Tables(db)
        await tables.inbox.accept("t1", [_event("$a"), _event("$b")], 1)
        await tables.dedupe.claim_event("$a", 2)

    async with _running(database_url) as restarted:
        await restarted.router.wait_idle()
        assert restarted.handled.ids == ["$b"]
        assert restarted.interrupted.ids == ["$a"]
        # Delivered again later, it is a plain duplicate: neither run nor reported.
        assert await restarted.put("t2", [_event("$a")]) == 200
        assert restarted.handled.ids == ["$b"] and restarted.interrupted.ids == ["$a"]


async def test_transactions_wait_until_the_service_is_ready(tables: Tables) -> None:
    starting = await _start(tables.db, ready=False)
    try:
        put = asyncio.create_task(
            starting.client.put(TXN.format("early"), json={"events": [_event("$a")]}, headers=AUTH)
        )
        await asyncio.sleep(0.05)
        assert not put.done()  # the homeserver gets no 200 before the service can act
        assert starting.handled.seen == []
        # other endpoints answer meanwhile
        ping = await starting.client.post("/_matrix/app/v1/ping", json={}, headers=AUTH)
        assert ping.status == 200
        for probe in ("/_communities/health", "/_matrix/mau/ready"):
            health = await starting.client.get(probe)
            assert health.status == 503  # not ready yet: a readiness probe must say so
        assert (await starting.client.get("/_matrix/mau/live")).status == 200  # but alive
        starting.server.ready.set()
        for probe in ("/_communities/health", "/_matrix/mau/ready"):
            assert (await starting.client.get(probe)).status == 200
        response = await put
        assert response.status == 200
        await starting.router.wait_idle()
        assert starting.handled.ids == ["$a"]
    finally:
        await starting.close()


# --- queries and ping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "status"),
    [
        (BOT, 200),
        ("@alice:example.org", 404),
        ("@communities:other.org", 404),
        ("@communities2:example.org", 404),
    ],
)
async def test_user_query(service: Service, user: str, status: int) -> None:
    response = await service.client.get(f"/_matrix/app/v1/users/{user}", headers=AUTH)
    assert response.status == status
    body = await response.json()
    if status == 404:
        assert body["errcode"] == "M_NOT_FOUND"
    else:
        assert body == {}


async def test_user_query_percent_encoded(service: Service) -> None:
    response = await service.client.get(
        "/_matrix/app/v1/users/%40communities%3Aexample.org", headers=AUTH
    )
    assert response.status == 200


async def test_alias_query_is_not_found(service: Service) -> None:
    response = await service.client.get(
        "/_matrix/app/v1/rooms/%23communities_x:example.org", headers=AUTH
    )
    assert response.status == 404
    assert (await response.json())["errcode"] == "M_NOT_FOUND"


async def test_ping(service: Service) -> None:
    response = await service.client.post(
        "/_matrix/app/v1/ping", json={"transaction_id": "p1"}, headers=AUTH
    )
    assert response.status == 200
    assert await response.json() == {}


# --- big transactions and the encryption part ---------------------------------------------


async def test_a_full_synapse_transaction_is_accepted(service: Service) -> None:
    """100 events of nearly 64 KiB each: the body is about 6 MiB, far over aiohttp's 1 MiB."""
    text = "x" * 60_000
    events = [_event(f"$big{i}", body=text) for i in range(100)]
    body = io.BytesIO(json.dumps({"events": events}).encode())  # streamed, as Synapse sends
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await service.client.put(TXN.format("big"), data=body, headers=headers)
    assert response.status == 200, await response.text()
    await service.router.wait_idle()
    assert len(service.handled.ids) == 100


async def test_the_body_limit_is_the_configured_one(tables: Tables) -> None:
    router = Router(Tables(tables.db), Recorder())
    server = AppserviceServer(HS_TOKEN, router, BOT, max_body_bytes=10_000)
    client = TestClient(TestServer(server.app, host="127.0.0.1"))
    await client.start_server()
    server.ready.set()
    try:
        events = [_event("$over", body="x" * 20_000)]
        response = await client.put(TXN.format("over"), json={"events": events}, headers=AUTH)
        assert response.status == 413
        assert await tables.inbox.pending() == []
    finally:
        await client.close()
        await router.stop()


async def test_a_failing_encryption_part_is_not_acknowledged(service: Service) -> None:
    """The homeserver gets a 500 and sends the transaction again; nothing was stored, so
    the second delivery is handled in full."""
    calls: list[dict[str, Any]] = []

    async def extras(body: dict[str, Any]) -> None:
        calls.append(body)
        if len(calls) == 1:
            raise ConnectionError("the crypto store is gone for a moment")

    service.server.extras = extras
    assert await service.put("enc", [_event("$enc")]) == 500
    assert service.handled.ids == []
    assert await service.put("enc", [_event("$enc")]) == 200
    assert service.handled.ids == ["$enc"] and len(calls) == 2


async def test_old_deliveries_are_forgotten(service: Service) -> None:
    """Claimed events and transaction ids older than the retention go; recent ones stay,
    and a recent event delivered again still runs once."""
    assert await service.put("old", [_event("$old")]) == 200
    tables = service.router.db
    day = 24 * 3600 * 1000
    await tables.db.execute("UPDATE handled_event SET ts = ts - $1", 31 * day)
    await tables.db.execute("UPDATE handled_txn SET ts = ts - $1", 31 * day)
    assert await service.put("new", [_event("$new")]) == 200
    assert await service.router.forget_old() == (1, 1)
    assert await service.put("new", [_event("$new")]) == 200  # a retry: still recognised
    assert service.handled.ids == ["$old", "$new"]


# --- bounded resources --------------------------------------------------------------------


async def _until(probe: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_at_most_room_workers_rooms_are_handled_at_once(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(router_module, "ROOM_WORKERS", 3)
    release = asyncio.Event()
    active: list[str] = []
    most = 0
    handled: list[str] = []

    async def handler(event: dict[str, Any]) -> None:
        nonlocal most
        active.append(event["event_id"])
        most = max(most, len(active))
        await release.wait()
        active.remove(event["event_id"])
        handled.append(event["event_id"])

    router = Router(tables, handler)
    try:
        events = [_event(f"$r{i}", room_id=f"!room{i}:example.org") for i in range(10)]
        await router.accept("many", events, "digest-many")
        await _until(lambda: len(active) == 3, "three rooms at work")
        assert most == 3
        release.set()
        await router.wait_idle()
        assert sorted(handled) == sorted(e["event_id"] for e in events) and most == 3
    finally:
        await router.stop()


async def test_at_most_homeserver_calls_requests_are_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in homeserver on 127.0.0.1 that holds every request until released."""
    monkeypatch.setattr(gateway_module, "HOMESERVER_CALLS", 4)
    release = asyncio.Event()
    in_flight = 0
    most = 0

    async def joined(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return web.json_response({"joined": {}})

    app = web.Application()
    app.router.add_get("/_matrix/client/v3/rooms/{room}/joined_members", joined)
    homeserver = TestServer(app, host="127.0.0.1")
    await homeserver.start_server()
    session = ClientSession()
    try:
        gateway = MatrixGateway(
            str(homeserver.make_url("")), "as-token", BOT, "example.org", session
        )
        calls = [
            asyncio.ensure_future(gateway.joined_members(RoomID(f"!r{i}:example.org")))
            for i in range(10)
        ]
        await _until(lambda: in_flight == 4, "four requests in flight")
        assert most == 4
        release.set()
        assert await asyncio.gather(*calls) == [set()] * 10
        assert most == 4
    finally:
        await session.close()
        await homeserver.close()
