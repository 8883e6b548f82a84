"""Olm work for many devices at once: what mautrix's `OlmMachine` does one device at a time.

`OlmBatch` reads the devices and Olm sessions of all recipients in a few batched queries,
writes each stage in one transaction, sends `/keys/query`, `/keys/claim` and
`/sendToDevice` in chunks, a few at a time, creates Olm sessions (and checks the one-time
keys' signatures) in worker threads, and gives the event loop back every few dozen devices of
the CPU work left on it (using Olm sessions), so the bot's other rooms are served meanwhile.
Every Olm message it sends carries `sender_device_keys`, the bot's signed device
keys. What is shared, with whom and when is `share.py`'s; MSC4268 bundles `history.py`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.crypto import OlmMachine, PgCryptoStore
from mautrix.errors import DeviceValidationError
from mautrix.types import (
    DeviceID,
    DeviceIdentity,
    DeviceKeys,
    EncryptionAlgorithm,
    EncryptionKeyAlgorithm,
    EventType,
    IdentityKey,
    QueryKeysResponse,
    SessionID,
    SyncToken,
    TrustState,
    UserID,
)

from .batches import SQL_CHUNK, bounded, chunks, in_list, split_messages
from .devices import checked_device, signed_by
from .tracker import Tracker
from .vodozemac_olm import Account, Session

log = logging.getLogger("communities.crypto.olm")

# Requests to the homeserver are cut into chunks of this many users (a key query or claim)
# or messages (a to-device send); `batches.PARALLEL_REQUESTS` of them are in flight at once.
QUERY_CHUNK_USERS = 100
CLAIM_CHUNK_USERS = 100
TO_DEVICE_CHUNK_MESSAGES = 100
# A room key is shared with this many users per part (each part one query, one claim).
SHARE_CHUNK_USERS = 100
# How long the homeserver may wait for other servers in a key query or claim (ms).
REMOTE_TIMEOUT_MS = 10_000
SIGNED_CURVE25519 = EncryptionKeyAlgorithm.SIGNED_CURVE25519.value
OLM_V1 = EncryptionAlgorithm.OLM_V1.value
# Devices handled between two returns to the event loop.
CPU_SLICE = 32
NO_TOKEN = SyncToken("")


@dataclass
class Reach:
    """The devices an Olm session reaches, those sessions, and which of them were made just
    now from a claimed one-time key (stored with their first message)."""

    devices: list[DeviceIdentity]
    sessions: dict[IdentityKey, Session]
    new: set[IdentityKey] = field(default_factory=set)


class OlmBatch(OlmMachine):
    def __init__(self, client: Client, store: PgCryptoStore, state: Any) -> None:
        super().__init__(client, store, state)
        self.pg = store
        self._own_keys: dict[str, Any] | None = None
        self._own_keys_lock = asyncio.Lock()
        self.tracker = Tracker(self._fetch_new, store.filter_tracked_users)

    @property
    def olm(self) -> Account:
        assert self.account is not None, "the account is loaded at start-up"
        return self.account

    async def load(self) -> None:
        """The stored account, or a new one (vodozemac's, as every account is now)."""
        self.account = await self.crypto_store.get_account()
        if self.account is None:
            self.account = Account()  # type: ignore[assignment]
            await self.crypto_store.put_account(self.account)  # type: ignore[arg-type]

    @staticmethod
    async def _validate_device(
        user_id: UserID,
        device_id: DeviceID,
        device_keys: DeviceKeys,
        existing: DeviceIdentity | None = None,
    ) -> DeviceIdentity:
        """mautrix's checks of a device's keys, with the faster signature check."""
        return checked_device(user_id, device_id, device_keys.serialize(), existing)

    async def _fetch_keys(
        self, users: list[UserID], since: SyncToken = NO_TOKEN, include_untracked: bool = False
    ) -> dict[UserID, dict[DeviceID, DeviceIdentity]]:
        """A key query in chunks, a few at a time; each chunk's answer is stored in one
        transaction. A server that fails to answer is logged and its users get nothing."""
        if not include_untracked:
            users = await self.crypto_store.filter_tracked_users(users)
        wanted = sorted(set(users))
        found: dict[UserID, dict[DeviceID, DeviceIdentity]] = {}

        async def query(chunk: Sequence[UserID]) -> None:
            body: dict[str, Any] = {"device_keys": {u: [] for u in chunk}}
            body["timeout"] = REMOTE_TIMEOUT_MS
            if since:
                body["token"] = since
            raw = await self.client.api.request(Method.POST, Path.v3.keys.query, body)
            for server, error in (raw.get("failures") or {}).items():
                log.warning("key query: %s did not answer (%s)", server, error)
            answered: dict[UserID, Any] = raw.get("device_keys") or {}
            masters = raw.get("master_keys") or {}
            tracked = set(await self.crypto_store.filter_tracked_users(list(chunk)))
            first = [u for u in answered if u not in tracked and u not in masters]
            async with self.crypto_store.transaction():
                found.update(await self._store_first_seen(answered, first))
                rest = [u for u in answered if u not in found]
                if not rest:
                    return
                # mautrix's path (cross-signing, changed devices) reads its own types
                resp = QueryKeysResponse.deserialize(raw)
                for user_id in rest:
                    devices = resp.device_keys.get(user_id, {})
                    found[user_id] = await self._process_fetched_keys(user_id, devices, resp)

        await bounded(query(c) for c in chunks(wanted, QUERY_CHUNK_USERS))
        return found

    async def _fetch_new(self, users: list[UserID]) -> dict[UserID, dict[DeviceID, DeviceIdentity]]:
        return await self._fetch_keys(users, include_untracked=True)

    async def _store_first_seen(
        self, answered: dict[UserID, Any], users: list[UserID]
    ) -> dict[UserID, dict[DeviceID, DeviceIdentity]]:
        """Users seen for the first time, without cross-signing keys: their devices (as the
        homeserver's JSON answered them) checked as mautrix checks them and stored, with the
        devices' own signatures, in a few statements instead of several per user. The
        caller holds a transaction."""
        found: dict[UserID, dict[DeviceID, DeviceIdentity]] = {}
        devices: list[tuple[Any, ...]] = []
        signatures: list[tuple[Any, ...]] = []
        for n, user_id in enumerate(users):
            valid: dict[DeviceID, DeviceIdentity] = {}
            served = answered[user_id]
            for device_id, keys in served.items() if isinstance(served, dict) else ():
                try:
                    device = checked_device(user_id, device_id, keys)
                except DeviceValidationError as e:
                    log.warning("device %s of %s left out: %s", device_id, user_id, e)
                    continue
                valid[device_id] = device
                devices.append(
                    (user_id, device_id, device.identity_key, device.signing_key)
                    + (int(device.trust), False, device.name)
                )
                signature = keys["signatures"][user_id][f"ed25519:{device_id}"]
                key = device.signing_key
                signatures.append((user_id, key, user_id, key, signature))
            found[user_id] = valid
            if n % CPU_SLICE == CPU_SLICE - 1:
                await asyncio.sleep(0)
        if not found:
            return found
        rows: list[tuple[str]] = [(u,) for u in found]
        db: Any = self.pg.db  # one connection: the caller's transaction
        async with db.acquire() as conn:
            await conn.executemany(
                "INSERT INTO crypto_tracked_user (user_id) VALUES ($1)"
                " ON CONFLICT (user_id) DO NOTHING",
                rows,
            )
            await conn.executemany("DELETE FROM crypto_device WHERE user_id=$1", rows)
            await conn.executemany(
                "INSERT INTO crypto_device (user_id, device_id, identity_key, signing_key,"
                " trust, deleted, name) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                devices,
            )
            await conn.executemany(
                "INSERT INTO crypto_cross_signing_signatures (signed_user_id, signed_key,"
                " signer_user_id, signer_key, signature) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (signed_user_id, signed_key, signer_user_id, signer_key)"
                " DO UPDATE SET signature=excluded.signature",
                signatures,
            )
        return found

    async def devices_of(self, users: list[UserID]) -> list[DeviceIdentity]:
        """The stored devices of `users`; users never queried are queried first."""
        db = self.pg.db
        tracked: set[str] = set()
        rows: list[Any] = []
        for part in chunks(sorted(set(users)), SQL_CHUNK):
            where, args = in_list(db.scheme, part, 1)
            tracked.update(
                r["user_id"]
                for r in await db.fetch(
                    f"SELECT user_id FROM crypto_tracked_user WHERE user_id {where}", *args
                )
            )
            rows.extend(
                await db.fetch(
                    "SELECT user_id, device_id, identity_key, signing_key, trust, deleted, name"
                    f" FROM crypto_device WHERE user_id {where}",
                    *args,
                )
            )
        devices = [
            DeviceIdentity(
                user_id=UserID(r["user_id"]),
                device_id=DeviceID(r["device_id"]),
                identity_key=IdentityKey(r["identity_key"]),
                signing_key=r["signing_key"],
                trust=TrustState(r["trust"]),
                deleted=bool(r["deleted"]),
                name=r["name"],
            )
            for r in rows
        ]
        untracked = [u for u in set(users) if u not in tracked]
        if untracked:
            # Not behind mautrix's lock of device-list refreshes: a refresh of thousands of
            # users (or one waiting for a slow server) never holds up this room's message.
            fetched = await self.tracker.fetch(untracked)
            devices.extend(d for user in fetched.values() for d in user.values())
        return devices

    async def olm_sessions(self, devices: list[DeviceIdentity]) -> dict[IdentityKey, Session]:
        """The latest Olm session with each device, through the store's cache."""
        store, db = self.pg, self.pg.db
        cache: Any = store._olm_cache  # the cache decryption uses too
        found: dict[IdentityKey, Session] = {}
        keys = sorted({d.identity_key for d in devices})
        for part in chunks(keys, SQL_CHUNK):
            where, args = in_list(db.scheme, part, 2)
            rows = await db.fetch(
                "SELECT sender_key, session_id, session, created_at, last_encrypted,"
                " last_decrypted FROM crypto_olm_session"
                f" WHERE account_id=$1 AND sender_key {where} ORDER BY last_decrypted DESC",
                store.account_id,
                *args,
            )
            for i, row in enumerate(rows):
                key = IdentityKey(row["sender_key"])
                if key in found:
                    continue
                cached = cache[key].get(row["session_id"])
                if cached is None:
                    cached = Session.from_pickle(
                        row["session"],
                        passphrase=store.pickle_key,
                        creation_time=row["created_at"],
                        last_encrypted=row["last_encrypted"],
                        last_decrypted=row["last_decrypted"],
                    )
                    cache[key][SessionID(cached.id)] = cached
                found[key] = cached
                if i % CPU_SLICE == CPU_SLICE - 1:
                    await asyncio.sleep(0)
        return found

    async def sessions_with(self, devices: list[DeviceIdentity]) -> Reach:
        """The devices an Olm session reaches (stored, or made from a claimed one-time key;
        a device without one left out), and those sessions."""
        sessions = await self.olm_sessions(devices)
        missing = [d for d in devices if d.identity_key not in sessions]
        made = await self.claim_sessions(missing) if missing else {}
        sessions.update(made)
        reached = [d for d in devices if d.identity_key in sessions]
        return Reach(reached, sessions, set(made))

    async def claim_sessions(self, devices: list[DeviceIdentity]) -> dict[IdentityKey, Session]:
        """New Olm sessions from claimed one-time keys, made in worker threads; not stored
        yet (`encrypt_olm_many` stores them with their first message)."""
        by_user: defaultdict[UserID, dict[DeviceID, DeviceIdentity]] = defaultdict(dict)
        for device in devices:
            by_user[device.user_id][device.device_id] = device
        made: dict[IdentityKey, Session] = {}

        async def claim(part: Sequence[UserID]) -> None:
            request = {u: {d: SIGNED_CURVE25519 for d in by_user[u]} for u in part}
            body = {"one_time_keys": request, "timeout": REMOTE_TIMEOUT_MS}
            raw = await self.client.api.request(Method.POST, Path.v3.keys.claim, body)
            for server, error in (raw.get("failures") or {}).items():
                log.warning("key claim: %s did not answer (%s)", server, error)
            claimed: list[tuple[DeviceIdentity, Any]] = []
            for user_id, keys in (raw.get("one_time_keys") or {}).items():
                for device_id, one_time_keys in keys.items():
                    device = by_user.get(user_id, {}).get(device_id)
                    if device is not None and one_time_keys:
                        claimed.append((device, next(iter(one_time_keys.values()))))
            made.update(await asyncio.to_thread(self._new_sessions, claimed))

        await bounded(claim(c) for c in chunks(sorted(by_user), CLAIM_CHUNK_USERS))
        if len(made) < len(devices):
            log.info("no one-time key for %d of %d devices", len(devices) - len(made), len(devices))
        return made

    def _new_sessions(
        self, claimed: list[tuple[DeviceIdentity, Any]]
    ) -> dict[IdentityKey, Session]:
        """In a worker thread: Olm sessions from signed one-time keys (reading only the
        account's identity keys, which never change)."""
        made: dict[IdentityKey, Session] = {}
        for device, data in claimed:
            if not signed_by(data, device.user_id, device.device_id, device.signing_key):
                log.warning(
                    "invalid one-time key signature of %s/%s", device.user_id, device.device_id
                )
                continue
            made[device.identity_key] = self.olm.new_outbound_session(
                device.identity_key, data["key"]
            )
        return made

    async def own_device_keys(self) -> dict[str, Any]:
        """The bot's device keys as the homeserver serves them (signatures included)."""
        async with self._own_keys_lock:
            if self._own_keys is None:
                mxid, device = self.client.mxid, self.client.device_id
                # counted with the job's other requests (the parts of a share)
                (resp,) = await bounded([self.client.query_keys({mxid: [device]})])
                keys = resp.device_keys.get(mxid, {}).get(device)
                own = keys or self.olm.get_device_keys(mxid, device)
                self._own_keys = dict(own.serialize())
            return self._own_keys

    async def encrypt_olm_many(
        self, reach: Reach, event_type: EventType, content: dict[str, Any]
    ) -> dict[UserID, dict[DeviceID, dict[str, Any]]]:
        """Olm-encrypt one event for each device `reach` reaches, as the JSON of
        `m.room.encrypted` contents (not mautrix's types, which would be serialised again);
        the sessions are saved (the new ones stored) in one transaction."""
        own_keys = await self.own_device_keys()
        messages: defaultdict[UserID, dict[DeviceID, dict[str, Any]]] = defaultdict(dict)
        async with self._olm_lock:
            for i, device in enumerate(reach.devices):
                session = reach.sessions[device.identity_key]
                plaintext = {
                    "sender": self.client.mxid,
                    "sender_device": self.client.device_id,
                    "keys": {"ed25519": self.olm.signing_key},
                    "sender_device_keys": own_keys,
                    "recipient": device.user_id,
                    "recipient_keys": {"ed25519": device.signing_key},
                    "type": event_type.serialize(),
                    "content": content,
                }
                ciphertext = session.encrypt(json.dumps(plaintext))
                messages[device.user_id][device.device_id] = {
                    "algorithm": OLM_V1,
                    "ciphertext": {
                        device.identity_key: {"type": int(ciphertext.type), "body": ciphertext.body}
                    },
                    "sender_key": self.olm.identity_key,
                }
                if i % CPU_SLICE == CPU_SLICE - 1:
                    await asyncio.sleep(0)
            await self._save_sessions(reach)
        return dict(messages)

    async def _save_sessions(self, reach: Reach) -> None:
        """The used sessions saved and the new ones stored (and cached, as mautrix's store
        does), in two statements of one transaction."""
        store = self.pg
        new, old = [], []
        for device in reach.devices:
            key = device.identity_key
            session = reach.sessions[key]
            pickle = session.pickle(store.pickle_key)
            if key in reach.new:
                new.append(
                    (SessionID(session.id), key, pickle, session.creation_time)
                    + (session.last_encrypted, session.last_decrypted, store.account_id)
                )
            else:
                old.append(
                    (pickle, session.last_encrypted, session.last_decrypted, session.id)
                    + (store.account_id,)
                )
        db: Any = store.db
        async with self.crypto_store.transaction(), db.acquire() as conn:
            if new:
                await conn.executemany(
                    "INSERT INTO crypto_olm_session (session_id, sender_key, session,"
                    " created_at, last_encrypted, last_decrypted, account_id)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    new,
                )
            if old:
                await conn.executemany(
                    "UPDATE crypto_olm_session SET session=$1, last_encrypted=$2,"
                    " last_decrypted=$3 WHERE session_id=$4 AND account_id=$5",
                    old,
                )
        for key in reach.new:
            cache: Any = store._olm_cache[key]
            cache[SessionID(reach.sessions[key].id)] = reach.sessions[key]
        reach.new.clear()

    async def send_to_devices(
        self, event_type: EventType, messages: dict[UserID, dict[DeviceID, Any]]
    ) -> None:
        """`/sendToDevice` in chunks of at most TO_DEVICE_CHUNK_MESSAGES messages."""
        parts = split_messages(messages, TO_DEVICE_CHUNK_MESSAGES)
        await bounded(self.client.send_to_device(event_type, part) for part in parts)
