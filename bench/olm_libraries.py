"""Benchmark: the Olm and Megolm primitives the bot uses, python-olm (libolm) vs vodozemac.

For each library that imports, it measures, in one process and with no network:

- Olm session creation: N outbound sessions (default 1,000), each from a different peer
  account's Curve25519 identity key and one signed one-time key, both given as the base64
  strings a /keys/claim answer carries (the peer accounts, their keys and the signatures
  are made beforehand and not timed);
- Olm encryption: one m.room_key-sized plaintext (~300 bytes of JSON) with each of those
  sessions (their first message, a pre-key message), down to the base64 body an
  `m.olm.v1.curve25519-aes-sha2` event carries;
- Megolm: creating an outbound group session (100 of them, per-operation time), then
  encrypting M messages of ~1 KB (default 1,000) with one of them, down to base64;
- pickling and unpickling an Olm session (each of the N, after its message) and an inbound
  Megolm session (one, N times), the way the crypto store does: python-olm with the
  configured `pickle_key` string as passphrase, vodozemac with a 32-byte key (its native
  format needs exactly 32 bytes; here the SHA-256 of the same string);
- with both libraries there, the migration path: vodozemac's `from_libolm_pickle` on the
  N libolm Olm session pickles and on the inbound Megolm pickle.

Untimed checks make sure the work is real: a peer decrypts a message of every library, the
Megolm messages decrypt and unpickled sessions keep their ids. It prints microseconds per
operation, the median of the rounds, and the ratio python-olm / vodozemac (above 1: the
Rust library is faster). A library that does not import is said so and left out.

Both are in the test environment (python-olm is the project's dependency, vodozemac comes
with matrix-nio). The script imports only olm, vodozemac and the standard library:

    python bench/olm_libraries.py [--n 1000] [--messages 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import importlib
import importlib.metadata
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

PICKLE_KEY = "Gz4kQ0c7vN2pLr8sXw1yTb5eHj9mUa3dFo6iKq0tWz2xCv7nBl4gYh8uEr1sJp5k"  # 64 chars
NATIVE_KEY = hashlib.sha256(PICKLE_KEY.encode()).digest()
ROOM_ID = "!Bq3wS9tLkPzXn4Rd:example.org"
GROUP_SESSIONS = 100  # outbound Megolm sessions created for the creation time


def padded(template: dict[str, Any], size: int) -> str:
    """`template` as JSON, its "pad" field grown until the whole is `size` bytes."""
    text = json.dumps(template, separators=(",", ":"))
    template = {**template, "pad": "A" * max(0, size - len(text.encode()))}
    return json.dumps(template, separators=(",", ":"))


ROOM_KEY = padded(  # the shape of an m.room_key plaintext; size as asked, ~300 bytes
    {
        "type": "m.room_key",
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "room_id": ROOM_ID},
        "sender": "@bot:example.org",
        "pad": "",
    },
    300,
)
MESSAGE = padded(  # an m.room.message as Megolm encrypts it, ~1 KB
    {
        "type": "m.room.message",
        "content": {"msgtype": "m.notice", "body": ""},
        "room_id": ROOM_ID,
        "pad": "",
    },
    1024,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@contextmanager
def timed(into: dict[str, float], op: str, count: int) -> Iterator[None]:
    """Adds the block's microseconds per operation (of `count`) to `into[op]`."""
    gc.collect()
    gc.disable()
    start = time.perf_counter_ns()
    try:
        yield
    finally:
        elapsed = time.perf_counter_ns() - start
        gc.enable()
        into[op] = elapsed / count / 1000


Peer = tuple[Any, str, str]  # the peer's account, its identity key, its one-time key
OPS = [
    "Olm outbound session (identity key + OTK)",
    "Olm encrypt ~300 B (pre-key message)",
    "Megolm outbound session create",
    "Megolm encrypt ~1 KB",
    "Olm session pickle",
    "Olm session unpickle",
    "Megolm inbound session pickle",
    "Megolm inbound session unpickle",
]
MIGRATION_OPS = [
    "Olm session from_libolm_pickle",
    "Megolm inbound from_libolm_pickle",
]


def signed_key(key: str, sign: Callable[[str], str]) -> dict[str, Any]:
    """A signed_curve25519 one-time key as /keys/claim gives it (the signature is made, not
    checked: checking it is the same Ed25519 work for either library's user)."""
    return {"key": key, "signatures": {"@peer:example.org": {"ed25519:PEER": sign(key)}}}


def olm_round(olm: ModuleType, n: int, messages: int) -> tuple[dict[str, float], list[bytes]]:
    """One round with python-olm; also returns the Olm session pickles and, last, the inbound
    Megolm pickle, for the migration rows."""
    times: dict[str, float] = {}
    bot = olm.Account()
    peers: list[Peer] = []
    for _ in range(n):
        peer = olm.Account()
        peer.generate_one_time_keys(1)
        otk = next(iter(peer.one_time_keys["curve25519"].values()))
        claimed = signed_key(otk, lambda k, p=peer: p.sign(json.dumps({"key": k})))
        peers.append((peer, peer.identity_keys["curve25519"], claimed["key"]))

    with timed(times, OPS[0], n):
        sessions = [olm.OutboundSession(bot, identity, otk) for _, identity, otk in peers]
    with timed(times, OPS[1], n):
        bodies = [session.encrypt(ROOM_KEY).ciphertext for session in sessions]
    for (peer, _, _), body in zip(peers, bodies, strict=True):  # not timed
        inbound = olm.InboundSession(
            peer, olm.OlmPreKeyMessage(body), bot.identity_keys["curve25519"]
        )
        assert inbound.decrypt(olm.OlmPreKeyMessage(body)) == ROOM_KEY

    with timed(times, OPS[2], GROUP_SESSIONS):
        groups = [olm.OutboundGroupSession() for _ in range(GROUP_SESSIONS)]
    group = groups[0]
    inbound_group = olm.InboundGroupSession(group.session_key)  # shared before the first
    with timed(times, OPS[3], messages):
        sent = [group.encrypt(MESSAGE) for _ in range(messages)]
    assert inbound_group.decrypt(sent[-1]) == (MESSAGE, messages - 1)

    with timed(times, OPS[4], n):
        pickles = [session.pickle(PICKLE_KEY) for session in sessions]
    with timed(times, OPS[5], n):
        restored = [olm.Session.from_pickle(pickle, PICKLE_KEY) for pickle in pickles]
    assert [s.id for s in restored] == [s.id for s in sessions]
    with timed(times, OPS[6], n):
        for _ in range(n):
            group_pickle = inbound_group.pickle(PICKLE_KEY)
    with timed(times, OPS[7], n):
        for _ in range(n):
            olm.InboundGroupSession.from_pickle(group_pickle, PICKLE_KEY)
    assert olm.InboundGroupSession.from_pickle(group_pickle, PICKLE_KEY).id == group.id
    return times, [*pickles, group_pickle]


def vodozemac_round(vz: ModuleType, n: int, messages: int) -> dict[str, float]:
    """One round with vodozemac."""
    times: dict[str, float] = {}
    bot = vz.Account()
    peers: list[Peer] = []
    for _ in range(n):
        peer = vz.Account()
        peer.generate_one_time_keys(1)
        otk = next(iter(peer.one_time_keys.values())).to_base64()
        peer.mark_keys_as_published()
        claimed = signed_key(
            otk, lambda k, p=peer: p.sign(json.dumps({"key": k}).encode()).to_base64()
        )
        peers.append((peer, peer.curve25519_key.to_base64(), claimed["key"]))

    parse = vz.Curve25519PublicKey.from_base64
    with timed(times, OPS[0], n):
        sessions = [bot.create_outbound_session(parse(i), parse(k)) for _, i, k in peers]
    with timed(times, OPS[1], n):
        bodies = [b64(session.encrypt(ROOM_KEY.encode()).to_parts()[1]) for session in sessions]
    bot_key = bot.curve25519_key
    for (peer, _, _), body in zip(peers, bodies, strict=True):  # not timed
        message = vz.PreKeyMessage.from_base64(body)
        assert peer.create_inbound_session(bot_key, message)[1] == ROOM_KEY.encode()

    with timed(times, OPS[2], GROUP_SESSIONS):
        groups = [vz.GroupSession() for _ in range(GROUP_SESSIONS)]
    group = groups[0]
    inbound_group = vz.InboundGroupSession(group.session_key)  # shared before the first
    with timed(times, OPS[3], messages):
        sent = [group.encrypt(MESSAGE.encode()).to_base64() for _ in range(messages)]
    decrypted = inbound_group.decrypt(vz.MegolmMessage.from_base64(sent[-1]))
    assert (decrypted.plaintext, decrypted.message_index) == (MESSAGE.encode(), messages - 1)

    with timed(times, OPS[4], n):
        pickles = [session.pickle(NATIVE_KEY) for session in sessions]
    with timed(times, OPS[5], n):
        restored = [vz.Session.from_pickle(pickle, NATIVE_KEY) for pickle in pickles]
    assert [s.session_id for s in restored] == [s.session_id for s in sessions]
    with timed(times, OPS[6], n):
        for _ in range(n):
            group_pickle = inbound_group.pickle(NATIVE_KEY)
    with timed(times, OPS[7], n):
        for _ in range(n):
            vz.InboundGroupSession.from_pickle(group_pickle, NATIVE_KEY)
    restored_group = vz.InboundGroupSession.from_pickle(group_pickle, NATIVE_KEY)
    assert restored_group.session_id == group.session_id
    return times


def migration_round(vz: ModuleType, libolm_pickles: list[bytes]) -> dict[str, float]:
    """vodozemac reading python-olm's pickles (the Olm sessions', then the Megolm one)."""
    times: dict[str, float] = {}
    *session_pickles, group_pickle = [pickle.decode() for pickle in libolm_pickles]
    key = PICKLE_KEY.encode()  # libolm's key: the passphrase's bytes, any length
    n = len(session_pickles)
    with timed(times, MIGRATION_OPS[0], n):
        for pickle in session_pickles:
            vz.Session.from_libolm_pickle(pickle, key)
    with timed(times, MIGRATION_OPS[1], n):
        for _ in range(n):
            vz.InboundGroupSession.from_libolm_pickle(group_pickle, key)
    return times


def load(module: str, distribution: str) -> tuple[ModuleType | None, str]:
    try:
        lib = importlib.import_module(module)
    except ImportError as e:
        return None, f"not importable ({e})"
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return lib, version


def libolm_version() -> str:
    try:
        from _libolm import ffi, lib  # type: ignore[import-not-found]  # python-olm's cffi
    except ImportError:
        return "?"
    parts = [ffi.new("uint8_t *") for _ in range(3)]
    lib.olm_get_library_version(*parts)
    return ".".join(str(part[0]) for part in parts)


def median(rounds: list[dict[str, float]], op: str) -> float | None:
    values = [r[op] for r in rounds if op in r]
    return statistics.median(values) if values else None


def cell(value: float | None) -> str:
    return f"{value:,.2f}" if value is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="Olm sessions (and pickles)")
    parser.add_argument("--messages", type=int, default=1000, help="Megolm messages")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown")
    args = parser.parse_args()

    olm, olm_version = load("olm", "python-olm")
    vz, vz_version = load("vodozemac", "vodozemac")
    if olm is not None:
        olm_version += f" (libolm {libolm_version()})"
    print(f"python-olm: {olm_version}")
    print(f"vodozemac:  {vz_version}")
    if olm is None and vz is None:
        raise SystemExit("neither library imports: nothing to measure")
    print(
        f"N = {args.n:,} Olm sessions, {args.messages:,} Megolm messages,"
        f" Olm plaintext {len(ROOM_KEY.encode())} B, Megolm plaintext"
        f" {len(MESSAGE.encode())} B, median of {args.rounds} rounds\n"
    )

    olm_rounds: list[dict[str, float]] = []
    vz_rounds: list[dict[str, float]] = []
    migration_rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):  # the libraries alternate, so drift hits both alike
        if olm is not None:
            times, pickles = olm_round(olm, args.n, args.messages)
            olm_rounds.append(times)
            if vz is not None:
                migration_rounds.append(migration_round(vz, pickles))
        if vz is not None:
            vz_rounds.append(vodozemac_round(vz, args.n, args.messages))

    width = max(len(op) for op in OPS + MIGRATION_OPS)
    print(f"{'µs per operation':<{width}}  {'python-olm':>12}  {'vodozemac':>12}  {'olm / vz':>9}")
    for op in OPS + MIGRATION_OPS:
        old, new = median(olm_rounds, op), median(vz_rounds + migration_rounds, op)
        ratio = f"{old / new:.2f}" if old is not None and new is not None and op in OPS else ""
        print(f"{op:<{width}}  {cell(old):>12}  {cell(new):>12}  {ratio:>9}")
    if migration_rounds:
        print(
            "\nfrom_libolm_pickle: vodozemac reading the pickles python-olm made in the same round"
        )


if __name__ == "__main__":
    main()
