"""Device keys fetched ahead: batching of joins, one query per user at a time, failures left
to the next send."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mautrix.types import DeviceID, DeviceIdentity, IdentityKey, SigningKey, TrustState, UserID

from communities_appservice.matrix import tracker
from communities_appservice.matrix.tracker import Found, Tracker


def device(user: UserID) -> DeviceIdentity:
    return DeviceIdentity(
        user_id=user,
        device_id=DeviceID("D"),
        identity_key=IdentityKey("c"),
        signing_key=SigningKey("s"),
        trust=TrustState.UNVERIFIED,
        deleted=False,
        name="",
    )


class Homeserver:
    """Answers queries (each one recorded) and remembers whom it answered, as the store does;
    a query is held until `release` is set, and fails while `failing` is."""

    def __init__(self) -> None:
        self.queries: list[list[UserID]] = []
        self.stored: set[UserID] = set()
        self.release = asyncio.Event()
        self.release.set()
        self.failing = False

    async def query(self, users: list[UserID]) -> Found:
        self.queries.append(list(users))
        await self.release.wait()
        if self.failing:
            raise ConnectionError("homeserver away")
        self.stored.update(users)
        return {u: {DeviceID("D"): device(u)} for u in users}

    async def known(self, users: list[UserID]) -> list[UserID]:
        return [u for u in users if u in self.stored]


def users(*names: str) -> list[UserID]:
    return [UserID(f"@{n}:hs") for n in names]


@pytest.fixture
async def hs() -> Homeserver:
    return Homeserver()


async def test_a_burst_of_joins_is_one_query_and_stored_users_none(
    hs: Homeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker, "BATCH_USERS", 3)
    hs.stored.add(UserID("@known:hs"))
    ahead = Tracker(hs.query, hs.known)
    ahead.start()
    try:
        for user in users("a", "known", "b", "c", "d"):
            ahead.want([user])
        await ahead.settled()
    finally:
        await ahead.stop()
    assert hs.queries == [users("a", "b"), users("c", "d")]


async def test_a_send_waits_for_the_query_under_way_and_asks_only_the_rest(
    hs: Homeserver,
) -> None:
    ahead = Tracker(hs.query, hs.known)
    hs.release.clear()
    first = asyncio.create_task(ahead.fetch(users("a", "b")))
    while not hs.queries:
        await asyncio.sleep(0)
    second = asyncio.create_task(ahead.fetch(users("b", "c")))
    while len(hs.queries) < 2:
        await asyncio.sleep(0)
    assert hs.queries == [users("a", "b"), users("c")]
    hs.release.set()
    found = await second
    assert set(found) == set(users("b", "c"))
    assert set(await first) == set(users("a", "b"))


async def test_a_failed_query_is_asked_again_by_whoever_waited(hs: Homeserver) -> None:
    ahead = Tracker(hs.query, hs.known)
    hs.release.clear()
    hs.failing = True
    first = asyncio.create_task(ahead.fetch(users("a")))
    while not hs.queries:
        await asyncio.sleep(0)
    second = asyncio.create_task(ahead.fetch(users("a")))
    await asyncio.sleep(0)
    hs.release.set()
    with pytest.raises(ConnectionError):
        await first
    hs.failing = False
    assert set(await second) == set(users("a"))
    assert hs.queries == [users("a"), users("a")]


async def test_a_send_takes_over_users_still_waiting(hs: Homeserver) -> None:
    ahead = Tracker(hs.query, hs.known)  # not started: the users only wait
    ahead.want(users("a", "b"))
    assert set(await ahead.fetch(users("a"))) == set(users("a"))
    ahead.start()
    try:
        await ahead.settled()
    finally:
        await ahead.stop()
    assert hs.queries == [users("a"), users("b")]


async def test_a_failed_background_query_is_logged_and_left(
    hs: Homeserver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "communities.crypto.tracker")
    hs.failing = True
    ahead = Tracker(hs.query, hs.known)
    ahead.start()
    try:
        ahead.want(users("a"))
        await ahead.settled()
    finally:
        await ahead.stop()
    assert hs.stored == set()
    assert "devices of 1 members not fetched ahead: homeserver away" in caplog.text
