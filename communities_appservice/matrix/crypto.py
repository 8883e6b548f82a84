"""The bot as a full Megolm participant: its own device, keys, encryption and decryption.

The device (MSC4190 device management, or appservice login on homeservers without it) and
its Olm account, Olm and Megolm sessions live in the service's own database, in mautrix's
crypto store, pickled with `encryption.pickle_key`; a restart keeps the same device and
identity keys. The device is cross-signed by the bot's own master key (the recovery key is
not kept: it is never needed, and a secret not kept cannot leak).

To-device events, device-list changes and one-time-key counts arrive in appservice
transactions (MSC2409/MSC3202) or, with `encryption.appservice: false`, through the bot
syncing its own device. Nothing decrypted and no key is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from mautrix.client import Client
from mautrix.client.state_store.asyncpg import PgStateStore
from mautrix.crypto import PgCryptoStore, RejectKeyShare
from mautrix.errors import (
    DecryptionError,
    EncryptionError,
    MatrixRequestError,
    SessionNotFound,
)
from mautrix.types import (
    JSON,
    ASToDeviceEvent,
    DeviceID,
    DeviceIdentity,
    DeviceLists,
    DeviceOTKCount,
    EncryptedEvent,
    EventFilter,
    EventType,
    Filter,
    LoginType,
    RequestedKeyInfo,
    RoomEventFilter,
    RoomFilter,
    RoomID,
    RoomKeyWithheldCode,
    SessionID,
    StateEvent,
    StateFilter,
    TrustState,
    UserID,
)
from mautrix.util.async_db import Database

from .. import metrics
from .errors import is_transient, persistently
from .history import History, Upload
from .members import MemberLists
from .share import Machine
from .vodozemac_olm import Store, migrate

log = logging.getLogger("communities.crypto")
DEVICE_NAME = "Communities"


class CannotDecrypt(Exception):
    """An encrypted event the bot cannot read."""


class KeysMissing(CannotDecrypt):
    """An encrypted event whose Megolm session has not reached the bot (yet)."""

    def __init__(self, event_id: str, session_id: str) -> None:
        super().__init__(event_id)
        self.session_id = session_id


class BotCrypto:
    def __init__(
        self,
        client: Client,
        db: Database,
        pickle_key: str,
        *,
        appservice_mode: bool,
    ) -> None:
        self.client = client
        self.appservice_mode = appservice_mode
        # The crypto and state stores keep their own schema versions but share the service's
        # connection pool: on SQLite, two pools on one file would lock each other out.
        self.crypto_db = Database.create(
            db.url,
            upgrade_table=PgCryptoStore.upgrade_table,
            log=logging.getLogger("communities.crypto.db"),
        )
        self.state_db = Database.create(
            db.url,
            upgrade_table=PgStateStore.upgrade_table,
            log=logging.getLogger("communities.crypto.state"),
        )
        self.crypto_db.override_pool(db)
        self.state_db.override_pool(db)
        self.store = Store(client.mxid, pickle_key, self.crypto_db)
        self.state = PgStateStore(self.state_db)
        self.machine = Machine(client, self.store, self.state)
        self.history = History(self.machine)
        self.machine.on_shareable = self.history.mark_shareable
        self.machine.allow_key_share = self._allow_key_share
        self.machine.share_keys_min_trust = TrustState.UNVERIFIED
        self.machine.send_keys_min_trust = TrustState.UNVERIFIED
        self._sharing: dict[str, asyncio.Lock] = {}
        self.members = MemberLists(self.state, client.mxid)
        self._sync_task: asyncio.Future[Any] | None = None
        self._made_device = ""  # the device an earlier, failed set-up attempt made

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    @property
    def identity_key(self) -> str:
        assert self.machine.account is not None
        return str(self.machine.account.identity_key)

    async def start(self) -> None:
        """Open the stores, then set up the device; an outage of the homeserver (or the
        database) is waited out with backoff, never a failed start-up."""
        await self.crypto_db.start()
        await self.state_db.start()
        await self.store.open()
        await migrate(self.store)
        await persistently("the encryption's set-up", self._set_up)
        self.machine.tracker.start()
        if not self.appservice_mode:
            self._sync_task = self.client.start(self._sync_filter())
        log.info(
            "encryption ready: device %s (%s mode)",
            self.client.device_id,
            "appservice" if self.appservice_mode else "sync",
        )

    async def _set_up(self) -> None:
        """Every step may be repeated: a device made by an attempt that failed later is the
        one the next attempt uses (never a second device)."""
        stored = await self.store.get_device_id()
        await self._ensure_device(stored or self._made_device)
        self._made_device = str(self.client.device_id)
        await self.machine.load()
        await self.machine.forget_outbound_sessions()
        if not stored:
            await self.store.put_device_id(self.client.device_id)
            log.info("created bot device %s", self.client.device_id)
        await self.machine.share_keys()
        await self._cross_sign()

    async def _ensure_device(self, device_id: str) -> None:
        """MSC4190 when the homeserver allows it, else appservice login (same device id)."""
        try:
            await self.client.create_device_msc4190(
                device_id=DeviceID(device_id),
                initial_display_name=DEVICE_NAME,
            )
            return
        except MatrixRequestError as e:
            if is_transient(e):
                raise
            log.info(
                "MSC4190 device management unavailable (%s); using appservice login", e.errcode
            )
        self.client.api.as_device_id = None
        await self.client.login(
            login_type=LoginType.APPSERVICE,
            device_name=DEVICE_NAME,
            device_id=device_id or None,
            store_access_token=True,
            update_hs_url=False,
        )
        self.client.api.as_user_id = None

    async def _cross_sign(self) -> None:
        """Sign the device with a fresh cross-signing identity, unless the server shows it
        already signed by the bot's current self-signing key (the identity stays stable).

        Replacing an identity the homeserver already has is said in the log (users who
        verified the bot see the change); where the homeserver wants interactive auth for
        it, nothing is replaced: the device works unsigned and the log says what to do."""
        signed, known = await self._device_is_cross_signed()
        if signed:
            return
        try:
            await self.machine.generate_recovery_key()  # the key itself is deliberately dropped
        except MatrixRequestError as e:
            if e.http_status != 401:
                raise
            log.error(
                "the homeserver wants interactive authentication before the bot's cross-signing"
                " keys are replaced, so they were not: the bot's device %s works but clients"
                " show it as not verified by its owner. To let the service replace them, a"
                " server admin calls POST /_synapse/admin/v1/users/%s"
                "/_allow_cross_signing_replacement_without_uia and restarts the service"
                " within 10 minutes",
                self.client.device_id,
                self.client.mxid,
            )
            return
        if known:
            log.warning(
                "replaced the bot's cross-signing identity (its device %s was not signed by the"
                " one the homeserver had): users who had verified the bot see it as changed",
                self.client.device_id,
            )
        else:
            log.info("cross-signed the bot's device")

    async def _device_is_cross_signed(self) -> tuple[bool, bool]:
        """Whether the device is signed by the bot's current self-signing key, and whether
        the homeserver has a cross-signing identity for the bot at all."""
        mxid, device = self.client.mxid, self.client.device_id
        keys = await self.client.query_keys([mxid])
        self_signing = keys.self_signing_keys.get(mxid)
        mine = keys.device_keys.get(mxid, {}).get(device)
        known = mxid in keys.master_keys
        if self_signing is None or mine is None or not known:
            return False, known
        signed_by = {str(key_id.key_id) for key_id in mine.signatures.get(mxid, {})}
        return any(str(key) in signed_by for key in self_signing.keys.values()), known

    def _sync_filter(self) -> Filter:
        nothing = EventFilter(not_types=[EventType("*", EventType.Class.UNKNOWN)])
        return Filter(
            presence=nothing,
            account_data=nothing,
            room=RoomFilter(
                rooms=[],
                state=StateFilter(lazy_load_members=True),
                timeline=RoomEventFilter(limit=0),
                ephemeral=RoomEventFilter(limit=0),
                account_data=RoomEventFilter(limit=0),
            ),
        )

    async def stop(self) -> None:
        await self.machine.tracker.stop()
        if self._sync_task is not None:
            self.client.stop()
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
            self._sync_task = None
        await self.crypto_db.stop()
        await self.state_db.stop()

    # --- appservice transaction extensions ----------------------------------------------

    async def handle_transaction(self, body: dict[str, Any]) -> None:
        """Keys first: to-device events and device lists are handled before the PDUs."""
        to_device = _either(body, "to_device", "de.sorunome.msc2409.to_device") or []
        for raw in to_device:
            try:
                await self.machine.handle_as_to_device_event(
                    cast(ASToDeviceEvent, ASToDeviceEvent.deserialize(raw))
                )
            except Exception:
                log.exception("to-device event of type %s failed", raw.get("type"))
        lists = _either(body, "device_lists", "org.matrix.msc3202.device_lists")
        if lists:
            await self.machine.handle_as_device_lists(DeviceLists.deserialize(lists))
        counts = _either(
            body, "device_one_time_keys_count", "org.matrix.msc3202.device_one_time_keys_count"
        )
        # Synapse also counts keys of the cross-signing keys it stores as hidden devices.
        own = (counts or {}).get(self.client.mxid, {}).get(self.client.device_id)
        if own is not None:
            await self.machine.handle_otk_count(DeviceOTKCount.deserialize(own))

    async def track_state(self, raw: dict[str, Any]) -> None:
        """Membership and encryption state: device tracking and session rotation."""
        event = StateEvent.deserialize(cast(JSON, raw))
        await self.state.update_state(event)
        if event.type == EventType.ROOM_MEMBER:
            self.members.seen(event)
            await self.machine.handle_member_event(event)

    # --- encrypting --------------------------------------------------------------------

    async def is_encrypted(self, room_id: str, fetch: Any) -> bool:
        known = await self.state.is_encrypted(RoomID(room_id))
        if known is None:
            content = await fetch(room_id, "m.room.encryption")
            if content:
                marker = {
                    "type": "m.room.encryption",
                    "room_id": room_id,
                    "state_key": "",
                    "content": content,
                    "event_id": "$local",
                    "sender": self.client.mxid,
                    "origin_server_ts": 0,
                }
                await self.state.update_state(StateEvent.deserialize(cast(JSON, marker)))
            else:
                # Rooms are never un-encrypted; an unencrypted room is asked again next time.
                return False
            return True
        return bool(known)

    async def encrypt(
        self, room_id: str, event_type: str, content: dict[str, Any], members: Any
    ) -> dict[str, Any]:
        """Megolm-encrypt. The room's session is shared first if it has to be: a new one with
        every device of `await members()` (the room's first in this process; later ones, of
        the member list kept since), or the current one with newcomers' devices."""
        room, etype = RoomID(room_id), EventType.find(event_type)

        async def everyone() -> list[UserID]:
            return await self.members.of(room, members)

        # One share per room at a time; whoever waited finds the session ready.
        async with self._sharing.setdefault(room_id, asyncio.Lock()):
            for _ in range(3):
                await self.machine.prepare(room, everyone)
                try:
                    encrypted = await self.machine.encrypt_megolm_event(room, etype, content)
                except EncryptionError:
                    continue  # a departure rotated the session meanwhile
                return dict(encrypted.serialize())
        raise EncryptionError(f"no session could be kept for {room_id}: members keep leaving")

    async def rotate(self, room_id: RoomID) -> None:
        """Forget the room's outgoing Megolm session: the next message starts a new one,
        shared with the members of that moment. Called as soon as the bot itself removes
        someone, so that its next message in the room (the reply to `remove`, say) is not
        readable with a session the removed person still holds."""
        await self.machine.rotate(room_id)

    async def share_history(self, room_id: str, user_id: str, upload: Upload) -> int:
        """MSC4268: the room's shareable keys to `user_id`'s cross-signed devices."""
        return await self.history.share(RoomID(room_id), UserID(user_id), upload)

    async def _allow_key_share(self, device: DeviceIdentity, request: RequestedKeyInfo) -> bool:
        """Room keys go to the bot's own other devices only (mautrix's default rule), never
        to another user: forwarding a member's session would hand its history to whoever
        asks, a late joiner or someone merely invited. They are told `m.unauthorised`."""
        if device.user_id != self.client.mxid:
            log.info(
                "refused a room key request from %s/%s in %s",
                device.user_id,
                device.device_id,
                request.room_id,
            )
            raise RejectKeyShare(
                f"key request from another user ({device.user_id})",
                code=RoomKeyWithheldCode.UNAUTHORIZED,
                reason="This device shares room keys with its own devices only",
            )
        return bool(await self.machine.default_allow_key_share(device, request))

    # --- decrypting --------------------------------------------------------------------

    async def decrypt(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The decrypted event as a plain dict, at once: KeysMissing when its Megolm session
        has not reached the bot (yet), CannotDecrypt when it never will decrypt."""
        event = EncryptedEvent.deserialize(cast(JSON, raw))
        try:
            decrypted = await self.machine.decrypt_megolm_event(event)
        except SessionNotFound as e:
            raise KeysMissing(str(event.event_id), str(e.session_id)) from None
        except DecryptionError as e:
            metrics.UNDECRYPTABLE.labels("cannot_decrypt").inc()
            raise CannotDecrypt(str(event.event_id)) from e
        result = dict(decrypted.serialize())
        result["room_id"] = raw["room_id"]
        result["event_id"] = raw["event_id"]
        result["sender"] = raw["sender"]
        return result

    async def has_session(self, room_id: str, session_id: str) -> bool:
        return bool(await self.store.has_group_session(RoomID(room_id), SessionID(session_id)))

    async def ask_for_keys(self, raw: dict[str, Any]) -> None:
        """Ask the sending device for an event's keys; the answer is not waited for."""
        event = EncryptedEvent.deserialize(cast(JSON, raw))
        content = event.content
        await self.machine.request_room_key(
            event.room_id,
            content.sender_key,
            content.session_id,
            {event.sender: [content.device_id]},
            timeout=0,
        )


def _either(body: dict[str, Any], stable: str, unstable: str) -> Any:
    return body.get(stable) if stable in body else body.get(unstable)
