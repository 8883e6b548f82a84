"""The pieces of key sharing that need no homeserver: chunking and bounded concurrency."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mautrix.types import DeviceID, UserID

from communities_appservice.matrix import olm
from communities_appservice.matrix.olm import bounded, chunks, split_messages

messages_strategy = st.dictionaries(
    st.text(min_size=1, max_size=5).map(lambda s: UserID("@" + s)),
    st.dictionaries(st.text(min_size=1, max_size=5).map(DeviceID), st.integers(), max_size=6),
    max_size=30,
)


@given(messages_strategy, st.integers(min_value=1, max_value=10))
def test_split_messages_keeps_every_message_once_within_the_size(
    messages: dict[UserID, dict[DeviceID, int]], size: int
) -> None:
    parts = split_messages(messages, size)
    assert all(0 < sum(len(d) for d in part.values()) <= size for part in parts)
    rebuilt: dict[UserID, dict[DeviceID, int]] = {}
    for part in parts:
        for user, devices in part.items():
            for device, content in devices.items():
                assert device not in rebuilt.get(user, {})
                rebuilt.setdefault(user, {})[device] = content
    assert rebuilt == {u: d for u, d in messages.items() if d}
    total = sum(len(d) for d in messages.values())
    assert len(parts) == -(-total // size)


def test_chunks_cut_in_order() -> None:
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunks([], 3) == []


async def test_bounded_keeps_at_most_the_allowed_requests_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(olm, "PARALLEL_REQUESTS", 3)
    in_flight = most = 0
    release = asyncio.Event()

    async def call(n: int) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return n

    task = asyncio.ensure_future(bounded(call(n) for n in range(10)))
    for _ in range(100):  # the scheduler starts the calls it lets through
        if most == 3:
            break
        await asyncio.sleep(0)
    assert in_flight == 3
    release.set()
    assert await task == list(range(10))
    assert most == 3


async def test_bounded_raises_the_first_failure_after_every_call_ended() -> None:
    ended: list[int] = []

    async def call(n: int) -> int:
        await asyncio.sleep(0)
        ended.append(n)
        if n == 2:
            raise RuntimeError("chunk 2 refused")
        return n

    with pytest.raises(RuntimeError, match="chunk 2"):
        await bounded(call(n) for n in range(6))
    assert sorted(ended) == list(range(6))
