"""The bot's Olm account and Olm sessions on vodozemac, in place of mautrix's libolm ones.

mautrix's `OlmAccount` and `Session` subclass python-olm's classes; vodozemac's cannot be
subclassed, so `Account` and `Session` here wrap them and offer the methods mautrix's
`OlmMachine` calls (and only those). Megolm sessions and the cross-signing keys stay on
python-olm. Errors are raised as python-olm's, which is what mautrix catches.

Pickles: vodozemac's need a 32-byte key, derived from `encryption.pickle_key`. A pickle
written by libolm (every store before this module) is read with the key as it is and
written back in vodozemac's format the next time it is saved; `migrate` converts a whole
store at start-up in one transaction. Nothing converts back: a rollback needs a backup.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

import vodozemac as vz
from mautrix.crypto import PgCryptoStore
from mautrix.crypto.signature import sign_olm
from mautrix.types import (
    DeviceID,
    DeviceKeys,
    EncryptionAlgorithm,
    EncryptionKeyAlgorithm,
    IdentityKey,
    KeyID,
    OlmCiphertext,
    OlmMsgType,
    SessionID,
    Signature,
    SigningKey,
    UserID,
)
from olm.account import OlmAccountError
from olm.session import OlmSessionError
from unpaddedbase64 import decode_base64, encode_base64

log = logging.getLogger("communities.crypto.olm")

_KEY_CONTEXT = b"communities-appservice vodozemac pickle key\x00"


def native_key(pickle_key: str) -> bytes:
    """The 32-byte key vodozemac's pickles are encrypted with."""
    return hashlib.sha256(_KEY_CONTEXT + pickle_key.encode()).digest()


def _text(pickle: bytes | str) -> str:
    return pickle.decode() if isinstance(pickle, bytes) else pickle


def _session_error(error: Exception) -> OlmSessionError:
    return OlmSessionError(f"{type(error).__name__}: {error}")


class Session:
    """An Olm session as mautrix's `Session` is used: encrypt, decrypt, match, pickle."""

    def __init__(self, inner: vz.Session, creation_time: datetime | None = None) -> None:
        self.inner = inner
        self.creation_time = creation_time or datetime.now()
        self.last_encrypted = self.creation_time
        self.last_decrypted = self.creation_time
        # vodozemac decrypts the pre-key message that creates an inbound session at once;
        # mautrix decrypts it again on the new session, and gets the plaintext from here.
        self._first: tuple[str, str] | None = None

    @property
    def id(self) -> str:
        return self.inner.session_id

    @property
    def expired(self) -> bool:
        return False

    def describe(self) -> str:
        return f"vodozemac Olm session {self.id}"

    def matches(self, ciphertext: str) -> bool:
        try:
            return self.inner.session_matches(vz.PreKeyMessage.from_base64(ciphertext))
        except ValueError:
            return False

    def decrypt(self, ciphertext: OlmCiphertext) -> str:
        if self._first is not None and self._first[0] == ciphertext.body:
            plaintext = self._first[1]
            self._first = None
        else:
            try:
                message = vz.AnyOlmMessage.from_parts(
                    int(ciphertext.type), decode_base64(ciphertext.body)
                )
                plaintext = self.inner.decrypt(message).decode()
            except (ValueError, UnicodeDecodeError) as e:
                raise _session_error(e) from None
        self.last_decrypted = datetime.now()
        return plaintext

    def encrypt(self, plaintext: str) -> OlmCiphertext:
        self.last_encrypted = datetime.now()
        kind, body = self.inner.encrypt(plaintext.encode()).to_parts()
        return OlmCiphertext(type=OlmMsgType(kind), body=encode_base64(body))

    def pickle(self, passphrase: str) -> bytes:
        return self.inner.pickle(native_key(passphrase)).encode()

    @classmethod
    def from_pickle(
        cls,
        pickle: bytes | str,
        passphrase: str,
        creation_time: datetime,
        last_encrypted: datetime | None = None,
        last_decrypted: datetime | None = None,
    ) -> Session:
        session = cls(read_session(pickle, passphrase)[0], creation_time)
        session.last_encrypted = last_encrypted or creation_time
        session.last_decrypted = last_decrypted or creation_time
        return session


def _read(kind: Any, pickle: bytes | str, passphrase: str, error: type[Exception]) -> Any:
    """A stored vodozemac object (`kind`: its class), and whether it was libolm's pickle."""
    try:
        return kind.from_pickle(_text(pickle), native_key(passphrase)), False
    except vz.PickleException:
        pass
    try:
        return kind.from_libolm_pickle(_text(pickle), passphrase.encode()), True
    except ValueError as e:
        raise error(f"{type(e).__name__}: {e}") from None


def read_session(pickle: bytes | str, passphrase: str) -> tuple[vz.Session, bool]:
    """A stored Olm session, and whether it was libolm's pickle."""
    found: tuple[vz.Session, bool] = _read(vz.Session, pickle, passphrase, OlmSessionError)
    return found


def read_account(pickle: bytes | str, passphrase: str) -> tuple[vz.Account, bool]:
    """The stored account, and whether it was libolm's pickle."""
    found: tuple[vz.Account, bool] = _read(vz.Account, pickle, passphrase, OlmAccountError)
    return found


class Account:
    """The bot's Olm account as mautrix's `OlmAccount` is used."""

    def __init__(self, inner: vz.Account | None = None, shared: bool = False) -> None:
        self.inner = inner or vz.Account()
        self.shared = shared
        self.signing_key = SigningKey(self.inner.ed25519_key.to_base64())
        self.identity_key = IdentityKey(self.inner.curve25519_key.to_base64())

    @property
    def identity_keys(self) -> dict[str, str]:
        return {"curve25519": self.identity_key, "ed25519": self.signing_key}

    @property
    def fingerprint(self) -> str:
        key = self.signing_key
        return " ".join(key[i : i + 4] for i in range(0, len(key), 4))

    def signed(self, data: dict[str, Any]) -> Signature:
        return sign_olm(data, self)

    def sign(self, message: str | bytes) -> str:
        data = message.encode() if isinstance(message, str) else message
        return self.inner.sign(data).to_base64()

    @property
    def one_time_keys(self) -> dict[str, dict[str, str]]:
        keys = self.inner.one_time_keys
        return {"curve25519": {key_id: key.to_base64() for key_id, key in keys.items()}}

    @property
    def max_one_time_keys(self) -> int:
        return self.inner.max_number_of_one_time_keys

    def generate_one_time_keys(self, count: int) -> None:
        self.inner.generate_one_time_keys(count)

    def mark_keys_as_published(self) -> None:
        self.inner.mark_keys_as_published()

    def new_outbound_session(self, target_key: IdentityKey, one_time_key: str) -> Session:
        try:
            made = self.inner.create_outbound_session(
                vz.Curve25519PublicKey.from_base64(target_key),
                vz.Curve25519PublicKey.from_base64(one_time_key),
            )
        except ValueError as e:
            raise _session_error(e) from None
        return Session(made)

    def new_inbound_session(self, sender_key: IdentityKey, ciphertext: str) -> Session:
        """The session a pre-key message starts (its one-time key is used up)."""
        try:
            made, plaintext = self.inner.create_inbound_session(
                vz.Curve25519PublicKey.from_base64(sender_key),
                vz.PreKeyMessage.from_base64(ciphertext),
            )
            session = Session(made)
            session._first = (ciphertext, plaintext.decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise _session_error(e) from None
        return session

    def get_device_keys(self, user_id: UserID, device_id: DeviceID) -> DeviceKeys:
        keys = DeviceKeys(
            user_id=user_id,
            device_id=device_id,
            algorithms=[EncryptionAlgorithm.OLM_V1, EncryptionAlgorithm.MEGOLM_V1],
            keys={
                KeyID(EncryptionKeyAlgorithm(name), device_id): key
                for name, key in self.identity_keys.items()
            },
            signatures={},
        )
        keys.signatures[user_id] = {KeyID.ed25519(device_id): self.signed(keys.serialize())}
        return keys

    def get_one_time_keys(
        self, user_id: UserID, device_id: DeviceID, current_otk_count: int
    ) -> dict[str, Any]:
        """Signed one-time keys to upload, topping the server's count up to half the most
        the account holds."""
        missing = self.max_one_time_keys // 2 - current_otk_count
        if missing > 0:
            self.generate_one_time_keys(missing)
        signer = str(KeyID.ed25519(device_id))
        return {
            str(KeyID.signed_curve25519(IdentityKey(key_id))): {
                "key": key,
                "signatures": {user_id: {signer: self.signed({"key": key})}},
            }
            for key_id, key in self.one_time_keys["curve25519"].items()
        }

    def pickle(self, passphrase: str) -> bytes:
        return self.inner.pickle(native_key(passphrase)).encode()

    @classmethod
    def from_pickle(cls, pickle: bytes | str, passphrase: str, shared: bool) -> Account:
        return cls(read_account(pickle, passphrase)[0], shared)


class Store(PgCryptoStore):
    """mautrix's crypto store, reading the account and Olm sessions as vodozemac's."""

    async def get_account(self) -> Account | None:  # type: ignore[override]
        if self._account is None:
            row = await self.db.fetchrow(
                "SELECT shared, account FROM crypto_account WHERE account_id=$1",
                self.account_id,
            )
            if row is not None:
                self._account = Account.from_pickle(  # type: ignore[assignment]
                    row["account"], self.pickle_key, row["shared"]
                )
        return self._account

    async def _olm_rows(self, key: IdentityKey, limit: str = "") -> list[Session]:
        rows = await self.db.fetch(
            "SELECT session_id, session, created_at, last_encrypted, last_decrypted"
            " FROM crypto_olm_session WHERE sender_key=$1 AND account_id=$2"
            f" ORDER BY last_decrypted DESC{limit}",
            key,
            self.account_id,
        )
        found = []
        cache: Any = self._olm_cache[key]
        for row in rows:
            session = cache.get(row["session_id"])
            if session is None:
                session = Session.from_pickle(
                    row["session"],
                    self.pickle_key,
                    row["created_at"],
                    row["last_encrypted"],
                    row["last_decrypted"],
                )
                cache[SessionID(session.id)] = session
            found.append(session)
        return found

    async def get_sessions(self, key: IdentityKey) -> list[Session]:  # type: ignore[override]
        return await self._olm_rows(key)

    async def get_latest_session(self, key: IdentityKey) -> Session | None:  # type: ignore[override]
        found = await self._olm_rows(key, " LIMIT 1")
        return found[0] if found else None


async def migrate(store: PgCryptoStore) -> int:
    """Rewrite a store's libolm account and Olm session pickles as vodozemac's, in one
    transaction; returns how many pickles were converted (0 once done)."""
    converted = 0
    db: Any = store.db
    async with store.transaction(), db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT account FROM crypto_account WHERE account_id=$1", store.account_id
        )
        if row is not None:
            account, old = read_account(row["account"], store.pickle_key)
            if old:
                await conn.execute(
                    "UPDATE crypto_account SET account=$1 WHERE account_id=$2",
                    account.pickle(native_key(store.pickle_key)).encode(),
                    store.account_id,
                )
                converted += 1
        rows = await conn.fetch(
            "SELECT session_id, session FROM crypto_olm_session WHERE account_id=$1",
            store.account_id,
        )
        updates = []
        for row in rows:
            session, old = read_session(row["session"], store.pickle_key)
            if old:
                pickle = session.pickle(native_key(store.pickle_key)).encode()
                updates.append((pickle, row["session_id"], store.account_id))
        if updates:
            await conn.executemany(
                "UPDATE crypto_olm_session SET session=$1 WHERE session_id=$2 AND account_id=$3",
                updates,
            )
        converted += len(updates)
    if converted:
        log.info("crypto store: %d libolm pickles rewritten for vodozemac", converted)
    return converted
