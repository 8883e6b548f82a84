"""The leader's lease of an active/standby pair: a PostgreSQL advisory lock. One instance
leads; the other waits and takes over the moment the leader's connection goes; a leader
that loses its connection is told at once. And a standby refuses transactions quickly."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from communities_appservice.db import Tables
from communities_appservice.db.lease import Lease, lock_key
from communities_appservice.matrix.router import Router
from communities_appservice.matrix.server import AppserviceServer


@pytest.fixture
def url(db_backend: str, database_url: str) -> str:
    if db_backend != "postgres":
        pytest.skip("the lease is PostgreSQL's (config refuses high_availability on SQLite)")
    return database_url


def test_each_appservice_has_its_own_lock() -> None:
    assert lock_key("communities") == lock_key("communities")
    assert lock_key("communities") != lock_key("communities-staging")


async def test_the_standby_takes_over_when_the_leader_goes(url: str) -> None:
    leader, standby = Lease(url, "communities"), Lease(url, "communities")
    await leader.acquire()
    waiting = asyncio.create_task(standby.acquire(every=0.05))
    try:
        await asyncio.sleep(0.3)  # several tries, each refused
        assert not waiting.done() and not standby.leading
        await leader.release()  # as a dying process's connection closes
        await asyncio.wait_for(waiting, 10)
        assert standby.leading
        other = Lease(url, "other-service")  # another appservice on the same database
        await asyncio.wait_for(other.acquire(), 10)
        await other.release()
    finally:
        waiting.cancel()
        await standby.release()


async def test_a_leader_that_loses_its_connection_is_told(url: str) -> None:
    leader = Lease(url, "communities")
    await leader.acquire()
    lost = asyncio.Event()
    watching = asyncio.create_task(leader.watch(lost.set, every=0.05))
    admin = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype='advisory' AND pid <> pg_backend_pid()"
        )
        await asyncio.wait_for(lost.wait(), 10)
        assert not leader.leading
        successor = Lease(url, "communities")
        await asyncio.wait_for(successor.acquire(every=0.05), 10)  # the lock is free
        await successor.release()
    finally:
        watching.cancel()
        await admin.close()
        await leader.release()


async def test_a_standby_refuses_transactions_and_is_not_ready(tables: Tables) -> None:
    handled: list[dict[str, Any]] = []

    async def handle(event: dict[str, Any]) -> None:
        handled.append(event)

    router = Router(tables, handle)
    server = AppserviceServer("hs", router, "@communities:example.org")
    server.standby = True
    client = TestClient(TestServer(server.app, host="127.0.0.1"))
    await client.start_server()
    try:
        event = {"type": "m.room.message", "room_id": "!r:x", "event_id": "$e", "content": {}}
        response = await client.put(
            "/_matrix/app/v1/transactions/1",
            json={"events": [event]},
            headers={"Authorization": "Bearer hs"},
        )
        assert response.status == 503  # at once, not after waiting to be ready
        assert (await response.json())["errcode"] == "M_UNKNOWN"
        assert (await client.get("/_matrix/mau/ready")).status == 503
        assert (await client.get("/_matrix/mau/live")).status == 200
        assert await tables.inbox.pending() == [] and handled == []
    finally:
        await client.close()
        await router.stop()
