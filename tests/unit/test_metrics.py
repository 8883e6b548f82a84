"""Metrics: labels stay few (ids are taken out of endpoints), every homeserver request is
timed by endpoint, transactions and events are counted, and `/metrics` serves them with the
database's gauges read at scrape time (SQLite, and PostgreSQL in its own pass)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from communities_appservice import metrics
from communities_appservice.db import Tables
from communities_appservice.matrix.router import Router
from communities_appservice.matrix.server import AppserviceServer


@pytest.mark.parametrize(
    ("path", "label"),
    [
        (
            "/_matrix/client/v3/rooms/!abc:example.org/send/m.room.encrypted/txn-1",
            "/_matrix/client/v3/rooms/{}/send/m.room.encrypted/{}",
        ),
        (
            "/_matrix/client/v3/rooms/!abc:example.org/state/m.room.power_levels/",
            "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
        ),
        (
            "/_matrix/client/v3/rooms/!abc:example.org/state/m.room.member/@bob:example.org",
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        ),
        (
            "/_matrix/client/v3/rooms/!abc:example.org/state/m.space.child/!def:example.org",
            "/_matrix/client/v3/rooms/{}/state/m.space.child/{}",
        ),
        (
            "/_matrix/client/v3/rooms/!a:example.org/redact/$event/txn-2",
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
        ),
        (
            "/_matrix/client/v1/media/download/example.org/AbCdEf123",
            "/_matrix/client/v1/media/download/{}/{}",
        ),
        (
            "/_matrix/client/v3/sendToDevice/m.room.encrypted/txn-3",
            "/_matrix/client/v3/sendToDevice/m.room.encrypted/{}",
        ),
        ("/_matrix/client/v3/keys/claim", "/_matrix/client/v3/keys/claim"),
        (
            "/_matrix/client/v3/profile/@communities:example.org/displayname",
            "/_matrix/client/v3/profile/{}/displayname",
        ),
        (
            "/_matrix/client/v3/directory/room/#communities_x:example.org",
            "/_matrix/client/v3/directory/room/{}",
        ),
        ("/_matrix/client/v3/join/%21abc%3Aexample.org", "/_matrix/client/v3/join/{}"),
        ("/_matrix/client/v3/rooms/!a:x/send", "/_matrix/client/v3/rooms/{}/send"),
    ],
)
def test_an_endpoint_label_has_no_ids(path: str, label: str) -> None:
    assert metrics.endpoint(path) == label


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"type": "m.room.message"}, "message"),
        ({"type": "m.room.encrypted"}, "encrypted"),
        ({"type": "m.room.member", "state_key": "@a:x"}, "member"),
        ({"type": "org.matrix.msc3381.poll.response"}, "poll"),
        ({"type": "m.room.topic", "state_key": ""}, "state"),
        ({"type": "com.example.anything"}, "other"),
        ({}, "other"),
    ],
)
def test_an_event_kind_is_one_of_a_few(event: dict[str, Any], kind: str) -> None:
    assert metrics.kind_of(event) == kind


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_homeserver_requests_are_timed_by_endpoint_and_failures_counted() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({})

    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_LIMIT_EXCEEDED"}, status=429)

    app = web.Application()
    app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", ok)
    app.router.add_post("/_matrix/client/v3/keys/claim", limited)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    send = "/_matrix/client/v3/rooms/{}/send/m.room.message/{}"
    claim = "/_matrix/client/v3/keys/claim"
    sent_before = _value(
        "communities_homeserver_request_seconds_count", method="PUT", endpoint=send
    )
    failed_before = _value(
        "communities_homeserver_request_failures_total", method="POST", endpoint=claim, reason="429"
    )
    try:
        async with aiohttp.ClientSession(trace_configs=[metrics.trace_config()]) as http:
            for n in range(3):
                url = server.make_url(f"/_matrix/client/v3/rooms/!r{n}:x/send/m.room.message/t{n}")
                async with http.put(url, json={}) as response:
                    assert response.status == 200
            async with http.post(server.make_url(claim), json={}) as response:
                assert response.status == 429
    finally:
        await server.close()
    sent = _value("communities_homeserver_request_seconds_count", method="PUT", endpoint=send)
    assert sent - sent_before == 3  # three rooms, one label
    failed = _value(
        "communities_homeserver_request_failures_total", method="POST", endpoint=claim, reason="429"
    )
    assert failed - failed_before == 1


async def test_metrics_are_served_with_the_databases_gauges(tables: Tables) -> None:
    release = asyncio.Event()

    async def held(event: dict[str, Any]) -> None:
        await release.wait()  # the room's worker is busy: the inbox keeps its rows

    router = Router(tables, held)
    appservice = AppserviceServer("hs-token", router, "@communities:example.org")
    appservice.ready.set()
    accepted = _value("communities_transactions_total", outcome="accepted")
    messages = _value("communities_events_received_total", kind="message")
    events = [
        {"type": "m.room.message", "room_id": "!r:x", "event_id": f"$m{n}", "content": {}}
        for n in range(4)
    ]
    hs = TestServer(appservice.app, host="127.0.0.1")
    await hs.start_server()

    async def gauges() -> None:
        backlog = await tables.backlog()
        metrics.INBOX.set(backlog["inbox"])

    served = metrics.MetricsServer("127.0.0.1", 0, gauges)
    scrape = TestServer(served.app, host="127.0.0.1")
    await scrape.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": "Bearer hs-token"}
            url = hs.make_url("/_matrix/app/v1/transactions/t1")
            async with http.put(url, json={"events": events}, headers=auth) as response:
                assert response.status == 200
            async with http.put(url, json={"events": events}, headers=auth) as response:
                assert response.status == 200  # a retry: counted as one
            async with http.get(scrape.make_url("/metrics")) as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                text = await response.text()
    finally:
        release.set()
        await router.wait_idle()
        await scrape.close()
        await hs.close()
        await router.stop()
    assert "communities_inbox_events 4.0" in text.splitlines()
    assert _value("communities_transactions_total", outcome="accepted") - accepted == 1
    assert _value("communities_events_received_total", kind="message") - messages == 4
    assert "# TYPE communities_handler_seconds histogram" in text
