"""The Olm account and sessions on vodozemac, read from a store the libolm version wrote: the
same identity, its one-time keys, and sessions that go on working both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import olm
import pytest
from mautrix.crypto import PgCryptoStore
from mautrix.crypto.account import OlmAccount
from mautrix.types import DeviceID, IdentityKey, OlmCiphertext, OlmMsgType, UserID
from mautrix.util.async_db import Database
from olm.session import OlmSessionError

from communities_appservice.matrix.vodozemac_olm import Account, Session, Store, migrate

BOT = UserID("@communities:example.org")
KEY = "the pickle key"


@pytest.fixture
async def crypto_db(database_url: str) -> AsyncIterator[Database]:
    db = Database.create(database_url, upgrade_table=PgCryptoStore.upgrade_table)
    await db.start()
    yield db
    await db.stop()


def olm_text(message: olm.OlmMessage | olm.OlmPreKeyMessage) -> OlmCiphertext:
    kind = OlmMsgType.PREKEY if isinstance(message, olm.OlmPreKeyMessage) else OlmMsgType.MESSAGE
    return OlmCiphertext(type=kind, body=message.ciphertext)


async def test_a_libolm_store_is_migrated_and_keeps_working(crypto_db: Database) -> None:
    # What the libolm version wrote: its account, with published one-time keys, and an
    # Olm session with a peer that has answered.
    old = PgCryptoStore(BOT, KEY, crypto_db)
    await old.open()
    await old.put_device_id(DeviceID("BOTDEVICE"))
    libolm = OlmAccount()
    libolm.generate_one_time_keys(2)
    published = list(libolm.one_time_keys["curve25519"].values())
    libolm.mark_keys_as_published()
    await old.put_account(libolm)
    peer = olm.Account()
    peer.generate_one_time_keys(1)
    peer_key = IdentityKey(peer.identity_keys["curve25519"])
    sent = libolm.new_outbound_session(peer_key, list(peer.one_time_keys["curve25519"].values())[0])
    first = sent.encrypt("before the upgrade")
    await old.add_session(peer_key, sent)
    at_peer = olm.InboundSession(peer, olm.OlmPreKeyMessage(first.body), libolm.identity_key)
    assert at_peer.decrypt(olm.OlmPreKeyMessage(first.body)) == "before the upgrade"
    answer = at_peer.encrypt("an answer in flight")
    # A second peer starts a session with one of the bot's published one-time keys.
    other = olm.Account()
    other_key = IdentityKey(other.identity_keys["curve25519"])
    started = olm.OutboundSession(other, libolm.identity_key, published[0])
    opening = started.encrypt("hello after the upgrade")

    store = Store(BOT, KEY, crypto_db)
    await store.open()
    assert await migrate(store) == 2
    assert await migrate(store) == 0

    account = await store.get_account()
    assert isinstance(account, Account)
    assert account.identity_keys == libolm.identity_keys
    sessions = await store.get_sessions(peer_key)
    assert [s.id for s in sessions] == [sent.id]
    assert sessions[0].decrypt(olm_text(answer)) == "an answer in flight"
    reply = sessions[0].encrypt("after the upgrade")
    assert at_peer.decrypt(olm.OlmMessage(reply.body)) == "after the upgrade"

    inbound = account.new_inbound_session(other_key, opening.ciphertext)
    assert inbound.matches(opening.ciphertext)
    assert inbound.decrypt(olm_text(opening)) == "hello after the upgrade"
    back = inbound.encrypt("welcome")
    assert started.decrypt(olm.OlmMessage(back.body)) == "welcome"
    assert account.one_time_keys["curve25519"] == {}  # published, and the used one is gone


async def test_new_accounts_and_sessions_round_trip_through_the_store(
    crypto_db: Database,
) -> None:
    store = Store(BOT, KEY, crypto_db)
    await store.open()
    await store.put_device_id(DeviceID("BOTDEVICE"))
    account = Account()
    await store.put_account(account)  # type: ignore[arg-type]
    peer = olm.Account()
    peer.generate_one_time_keys(1)
    peer_key = IdentityKey(peer.identity_keys["curve25519"])
    session = account.new_outbound_session(
        peer_key, list(peer.one_time_keys["curve25519"].values())[0]
    )
    message = session.encrypt("stored")
    await store.add_session(peer_key, session)  # type: ignore[arg-type]

    fresh = Store(BOT, KEY, crypto_db)
    await fresh.open()
    again = await fresh.get_account()
    assert again is not None and again.identity_keys == account.identity_keys
    latest = await fresh.get_latest_session(peer_key)
    assert latest is not None and latest.id == session.id
    at_peer = olm.InboundSession(peer, olm.OlmPreKeyMessage(message.body), account.identity_key)
    assert at_peer.decrypt(olm.OlmPreKeyMessage(message.body)) == "stored"
    assert await migrate(fresh) == 0


def test_a_message_that_does_not_decrypt_raises_what_mautrix_catches() -> None:
    peer = olm.Account()
    peer.generate_one_time_keys(1)
    key = list(peer.one_time_keys["curve25519"].values())[0]
    session = Account().new_outbound_session(IdentityKey(peer.identity_keys["curve25519"]), key)
    with pytest.raises(OlmSessionError):
        session.decrypt(OlmCiphertext(type=OlmMsgType.MESSAGE, body="bm90IGFuIG9sbSBtZXNzYWdl"))
    assert not session.matches("bm90IGEgcHJlLWtleSBtZXNzYWdl")


def test_a_pickle_needs_its_key() -> None:
    session = Account().new_outbound_session(
        IdentityKey(olm.Account().identity_keys["curve25519"]),
        olm.Account().identity_keys["curve25519"],
    )
    pickle = session.pickle(KEY)
    assert Session.from_pickle(pickle, KEY, session.creation_time).id == session.id
    with pytest.raises(OlmSessionError):
        Session.from_pickle(pickle, "another key", session.creation_time)
