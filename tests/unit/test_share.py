"""The pieces of key sharing that need no homeserver: chunking, bounded concurrency and
signature checks."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mautrix.crypto.signature import verify_signature_json
from mautrix.errors import DeviceValidationError
from mautrix.types import (
    DeviceID,
    DeviceIdentity,
    DeviceKeys,
    EncryptionKeyAlgorithm,
    IdentityKey,
    KeyID,
    SigningKey,
    TrustState,
    UserID,
)
from olm.account import Account

from communities_appservice import tasks
from communities_appservice.matrix import batches
from communities_appservice.matrix.batches import bounded, chunks, in_parts, split_messages
from communities_appservice.matrix.devices import checked_device, signed_by
from communities_appservice.matrix.olm import OlmBatch

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
    monkeypatch.setattr(batches, "PARALLEL_REQUESTS", 3)
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


@pytest.mark.parametrize("run", [bounded, in_parts], ids=["calls", "parts"])
async def test_the_first_failure_is_raised_after_every_call_ended(run: Any) -> None:
    ended: list[int] = []

    async def call(n: int) -> int:
        await asyncio.sleep(0)
        ended.append(n)
        if n == 2:
            raise RuntimeError("chunk 2 refused")
        return n

    with pytest.raises(RuntimeError, match="chunk 2"):
        await run(call(n) for n in range(6))
    assert sorted(ended) == list(range(6))
    assert batches._REQUESTS.get() is None  # a failed job leaves no shared limit behind


@pytest.mark.parametrize(
    "run", [bounded, in_parts, tasks.bounded], ids=["calls", "parts", "bulk calls"]
)
async def test_a_job_cancelled_twice_leaves_no_call_unstarted_and_unclosed(run: Any) -> None:
    """Cancelled while its first calls are still winding down, and cancelled again: every
    call whose turn never came is closed (else Python reports it as never awaited)."""
    winding_down, release = asyncio.Event(), asyncio.Event()
    started = 0

    async def call(n: int) -> int:
        nonlocal started
        started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            winding_down.set()
            await release.wait()
            raise
        return n

    calls = [call(n) for n in range(12)]
    job = asyncio.ensure_future(run(iter(calls)))
    while started == 0:
        await asyncio.sleep(0)
    job.cancel()
    await winding_down.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    release.set()
    async with asyncio.timeout(10):  # a guard: the calls close as soon as they wind down
        while any(inspect.getcoroutinestate(c) != inspect.CORO_CLOSED for c in calls):
            await asyncio.sleep(0)
    assert 0 < started < len(calls)


async def test_parts_of_one_job_share_its_request_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "SHARE_PARTS", 3)
    monkeypatch.setattr(batches, "SHARE_REQUESTS", 2)
    requests = most_requests = parts = most_parts = 0

    async def request() -> None:
        nonlocal requests, most_requests
        requests += 1
        most_requests = max(most_requests, requests)
        for _ in range(3):
            await asyncio.sleep(0)
        requests -= 1

    async def part() -> None:
        nonlocal parts, most_parts
        parts += 1
        most_parts = max(most_parts, parts)
        await bounded(request() for _ in range(3))
        await bounded(request() for _ in range(2))
        parts -= 1

    await in_parts(part() for _ in range(5))
    assert most_parts == 3 and most_requests == 2
    monkeypatch.setattr(batches, "PARALLEL_REQUESTS", 1)  # never more than any batch
    most_requests = 0
    await in_parts(part() for _ in range(2))
    assert most_requests == 1
    assert batches._REQUESTS.get() is None  # outside a job, each call has its own limit


async def test_the_gate_lets_the_lowest_rank_in_first_and_equals_in_order() -> None:
    gate = batches.Gate(1)
    order: list[str] = []

    async def hold(name: str, rank: int) -> None:
        async with gate.held(rank):
            order.append(name)
            await asyncio.sleep(0)

    held = gate.held(9)
    await held.__aenter__()  # the test holds the gate while the others line up
    waiting = [("late 2", 2), ("early a", 0), ("late 1", 1), ("early b", 0)]
    others = [asyncio.ensure_future(hold(name, rank)) for name, rank in waiting]
    await asyncio.sleep(0)
    await held.__aexit__(None, None, None)
    await asyncio.gather(*others)
    assert order == ["early a", "early b", "late 1", "late 2"]


async def test_a_waiter_cancelled_as_its_turn_came_passes_the_turn_on() -> None:
    gate = batches.Gate(1)
    entered: list[str] = []

    async def hold(name: str) -> None:
        async with gate.held():
            entered.append(name)

    held = gate.held()
    await held.__aenter__()
    cancelled_waiting = asyncio.ensure_future(hold("cancelled while waiting"))
    cancelled_at_turn = asyncio.ensure_future(hold("cancelled at its turn"))
    last = asyncio.ensure_future(hold("last"))
    await asyncio.sleep(0)  # all three wait
    cancelled_waiting.cancel()
    await held.__aexit__(None, None, None)  # the turn goes to the second waiter...
    cancelled_at_turn.cancel()  # ...which is cancelled before it resumes
    await last
    for task in (cancelled_waiting, cancelled_at_turn):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert entered == ["last"]
    async with asyncio.timeout(1), gate.held():  # the gate is free again
        pass


async def test_requests_of_earlier_parts_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four parts of three requests each, one request in flight: a part asks for its next
    request as soon as one is answered, and gets it before any later part's waiting one."""
    monkeypatch.setattr(batches, "SHARE_PARTS", 4)
    monkeypatch.setattr(batches, "SHARE_REQUESTS", 1)
    sent: list[tuple[int, int]] = []

    async def request(part: int, step: int) -> None:
        sent.append((part, step))
        await asyncio.sleep(0)

    async def part(n: int) -> None:
        for step in range(3):
            await bounded([request(n, step)])

    await in_parts(part(n) for n in range(4))
    assert sorted(sent) == [(n, s) for n in range(4) for s in range(3)]
    # Part 0 is done before parts 2 and 3 begin (in arrival order they would go round).
    assert sent.index((0, 2)) < sent.index((2, 0)) < sent.index((3, 0))


def signed(account: Account, user: str, key_name: str, data: dict[str, Any]) -> Any:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signature = account.sign(body)
    return {**data, "signatures": {user: {f"ed25519:{key_name}": signature}}}


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in ("signatures", "unsigned")),
        st.one_of(st.text(max_size=20), st.integers(-(2**40), 2**40), st.booleans()),
        max_size=6,
    )
)
def test_signature_checks_agree_with_mautrix(data: dict[str, Any]) -> None:
    account = Account()
    key = account.identity_keys["ed25519"]
    good = signed(account, "@u:x", "DEV", data)
    good_with_unsigned = {**good, "unsigned": {"device_display_name": "ignored"}}
    for obj in (good, good_with_unsigned):
        assert signed_by(obj, "@u:x", "DEV", key)
        assert verify_signature_json(obj, UserID("@u:x"), "DEV", key)
    tampered = {**good, "extra": "added after signing"}
    assert not signed_by(tampered, "@u:x", "DEV", key)
    assert not verify_signature_json(tampered, UserID("@u:x"), "DEV", key)
    other = Account().identity_keys["ed25519"]
    assert not signed_by(good, "@u:x", "DEV", other)
    assert not signed_by(good, "@v:x", "DEV", key)  # signed by someone else
    assert not signed_by(good, "@u:x", "OTHER", key)
    assert not signed_by({**good, "signatures": "junk"}, "@u:x", "DEV", key)
    assert not signed_by(good, "@u:x", "DEV", "not a key")


def device_keys(account: Account, user: str, device: str) -> DeviceKeys:
    data = {
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device}": account.identity_keys["curve25519"],
            f"ed25519:{device}": account.identity_keys["ed25519"],
        },
    }
    return DeviceKeys.deserialize(signed(account, user, device, data))


async def test_device_keys_are_checked_as_mautrix_checks_them() -> None:
    account = Account()
    keys = device_keys(account, "@u:x", "DEV")
    device = await OlmBatch._validate_device(UserID("@u:x"), DeviceID("DEV"), keys)
    assert device.signing_key == account.identity_keys["ed25519"]
    assert device.identity_key == account.identity_keys["curve25519"]
    assert device.name == "DEV"
    with pytest.raises(DeviceValidationError, match="served as"):
        await OlmBatch._validate_device(UserID("@v:x"), DeviceID("DEV"), keys)
    with pytest.raises(DeviceValidationError, match="signing key changed"):
        await OlmBatch._validate_device(UserID("@u:x"), DeviceID("DEV"), keys, identity(Account()))
    forged = device_keys(account, "@u:x", "DEV")
    forged.keys[KeyID(EncryptionKeyAlgorithm.CURVE25519, DeviceID("DEV"))] = IdentityKey(
        Account().identity_keys["curve25519"]
    )
    with pytest.raises(DeviceValidationError, match="invalid signature"):
        await OlmBatch._validate_device(UserID("@u:x"), DeviceID("DEV"), forged)


def identity(account: Account) -> DeviceIdentity:
    return DeviceIdentity(
        user_id=UserID("@u:x"),
        device_id=DeviceID("DEV"),
        identity_key=IdentityKey(account.identity_keys["curve25519"]),
        signing_key=SigningKey(account.identity_keys["ed25519"]),
        trust=TrustState.UNVERIFIED,
        deleted=False,
        name="DEV",
    )


def test_device_keys_as_served_are_checked_without_mautrix_types() -> None:
    account = Account()
    keys = device_keys(account, "@u:x", "DEV").serialize()
    keys["new_field"] = "signed too"  # a field mautrix's types do not know, signed
    unsigned = {k: v for k, v in keys.items() if k not in ("signatures", "unsigned")}
    keys = signed(account, "@u:x", "DEV", unsigned)
    device = checked_device(UserID("@u:x"), DeviceID("DEV"), keys)
    assert device.signing_key == account.identity_keys["ed25519"]
    for broken in (
        "junk",
        {**keys, "keys": "junk"},
        {**keys, "keys": {}},
        {k: v for k, v in keys.items() if k != "user_id"},
        {**keys, "new_field": "changed"},
    ):
        with pytest.raises(DeviceValidationError):
            checked_device(UserID("@u:x"), DeviceID("DEV"), broken)
