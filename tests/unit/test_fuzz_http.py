"""Property-based tests of the appservice HTTP API (hypothesis): malformed JSON, wrong types,
nested and odd bodies, bad paths and tokens. No 5xx, no crash; a refused request stores
nothing, an accepted one stores exactly its events that have an event id.

The server runs in an event loop of this module's own, on a database of its own, so that
hypothesis drives plain functions; only 127.0.0.1 is contacted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communities_appservice.db import Tables, create_database
from communities_appservice.matrix.router import Router
from communities_appservice.matrix.server import AppserviceServer

from ..fuzzing import budget

HS_TOKEN = "hs-fuzz-token"
BOT = "@communities:example.org"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
EVENT = st.fixed_dictionaries(
    {"event_id": st.one_of(st.text(min_size=1, max_size=20), st.integers(), st.none())},
    optional={
        "room_id": st.one_of(st.text(max_size=20), st.integers()),
        "type": JSON,
        "content": JSON,
    },
)
BODY = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"events": st.lists(st.one_of(EVENT, JSON), max_size=5)}).map(
        lambda v: json.dumps(v).encode()
    ),
)
# Header values as a client can send them (visible ASCII; a client refuses control characters).
TOKEN = st.one_of(
    st.just(HS_TOKEN),
    st.just(""),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    st.none(),
)


@dataclass
class Http:
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]
    tables: Tables
    router: Router
    handled: list[dict[str, Any]]


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Http]:
    loop = asyncio.new_event_loop()
    db = create_database(f"sqlite:{tmp_path_factory.mktemp('fuzz') / 'http.db'}")
    loop.run_until_complete(db.start())
    tables = Tables(db)
    handled: list[dict[str, Any]] = []

    async def handler(event: dict[str, Any]) -> None:
        handled.append(event)

    async def start() -> tuple[Router, TestClient[Any, Any]]:
        router = Router(tables, handler)
        server = AppserviceServer(HS_TOKEN, router, BOT)
        server.ready.set()
        client: TestClient[Any, Any] = TestClient(TestServer(server.app, host="127.0.0.1"))
        await client.start_server()
        return router, client

    router, client = loop.run_until_complete(start())
    try:
        yield Http(loop, client, tables, router, handled)
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(router.stop())
        loop.run_until_complete(db.stop())
        loop.close()


async def _stored(tables: Tables) -> tuple[int, int]:
    inbox = await tables.db.fetchval("SELECT COUNT(*) FROM inbox")
    txns = await tables.db.fetchval("SELECT COUNT(*) FROM handled_txn")
    return int(inbox), int(txns)


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=budget(200),
)


@FUZZ
@given(BODY, TOKEN, st.text(min_size=1, max_size=30))
def test_transactions_never_crash_and_store_only_what_they_accept(
    http: Http, body: bytes, token: str | None, txn: str
) -> None:
    async def put() -> tuple[int, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        path = f"/_matrix/app/v1/transactions/{quote(txn, safe='')}"
        await http.router.wait_idle()  # what earlier examples stored is handled and gone
        before = await _stored(http.tables)
        response = await http.client.put(path, data=body, headers=headers)
        after = await _stored(http.tables)
        return response.status, (before, after)

    status, (before, after) = http.loop.run_until_complete(put())
    assert status < 500, status
    if token != HS_TOKEN:
        assert status in (401, 403) and after == before
    elif status != 200:
        assert status in (400, 404) and after == before  # malformed, or a path like "."
    else:
        parsed = json.loads(body)
        events = parsed.get("events", []) if isinstance(parsed, dict) else []
        with_ids = {
            e["event_id"]
            for e in events
            if isinstance(e, dict) and isinstance(e.get("event_id"), str)
        }
        assert after[0] - before[0] <= len(with_ids)


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["GET", "POST", "PUT", "DELETE"]), TOKEN)
def test_any_path_is_answered_without_a_server_error(
    http: Http, path: str, method: str, token: str | None
) -> None:
    async def call() -> int:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        url = "/" + quote(path.lstrip("/"), safe="/")  # "//x" would name another host
        response = await http.client.request(method, url, headers=headers)
        return response.status

    assert http.loop.run_until_complete(call()) < 500
