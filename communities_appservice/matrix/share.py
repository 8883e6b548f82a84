"""Sharing a room's Megolm session with every device of its members, at community scale.

mautrix's `OlmMachine` shares a session one device after the other: a database call (and a
commit) per device at every stage, a trust check that asks the homeserver again for each
user without cross-signing keys, and one unchunked request for the claim and for the
to-device send. `Machine` keeps the rest of `OlmMachine` (decryption, key requests, the
account) and replaces the sharing:

- the Olm work for all recipients is batched and chunked (`olm.py`);
- trust is the stored device's: the bot sends keys to unverified devices (the design), so
  only a blacklisted device is left out, and nothing is fetched to find that out;
- a join, an invite or a member's new device no longer starts a new session: the next
  message shares the current one with the newcomer's devices only, at its current index
  (what was said before stays unreadable to them). A departure, a removed device or a
  restart (which forgets who holds the current session) starts a new one.
- the devices of someone who joins or is invited are fetched as the event comes
  (`tracker.py`), so that the next message finds them stored.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from mautrix.client import Client
from mautrix.crypto import PgCryptoStore
from mautrix.crypto.sessions import OutboundGroupSession
from mautrix.errors import EncryptionError
from mautrix.types import (
    DecryptedOlmEvent,
    DeviceID,
    DeviceIdentity,
    DeviceKeys,
    EncryptionAlgorithm,
    EventType,
    Membership,
    MemberStateEventContent,
    QueryKeysResponse,
    RoomID,
    RoomKeyEventContent,
    RoomKeyWithheldCode,
    SessionID,
    StateEvent,
    TrustState,
    UserID,
)

from .. import metrics
from . import olm
from .batches import chunks, in_parts
from .olm import OlmBatch

log = logging.getLogger("communities.crypto.share")

SHARE_ATTEMPTS = 5
SHARED_HISTORY_FLAGS = ("m.shared_history", "org.matrix.msc3061.shared_history")
Device = tuple[UserID, DeviceID]


class Machine(OlmBatch):
    """`OlmMachine` with the sharing described above."""

    def __init__(self, client: Client, store: PgCryptoStore, state: Any) -> None:
        super().__init__(client, store, state)
        # Who holds each outbound session, as (user, device): known for sessions shared by
        # this process only (a session found in the store after a restart is replaced).
        self._recipients: dict[str, set[Device]] = {}
        # Users who joined, were invited or added a device since the room's session was shared.
        self._pending: defaultdict[RoomID, set[UserID]] = defaultdict(set)
        # Bumped at every rotation: a share that a rotation overtook is not kept.
        self._generation: defaultdict[RoomID, int] = defaultdict(int)
        # Rooms whose keys are marked `shared_history` (the announcement rooms), and what
        # records a key as shareable: set by the service (`matrix/history.py`).
        self.history_room: Callable[[RoomID], Awaitable[bool]] | None = None
        self.on_shareable: Callable[[RoomID, SessionID], Awaitable[None]] | None = None
        self._marked: set[str] = set()  # outbound sessions marked shared_history
        self._current: dict[RoomID, str] = {}  # each room's session of this process

    # --- what starts a new session, and what only widens the current one ----------------

    async def handle_member_event(self, evt: StateEvent) -> None:
        if not await self.state_store.is_encrypted(evt.room_id):
            return
        content = cast(MemberStateEventContent, evt.content)
        before = cast(MemberStateEventContent, evt.prev_content).membership
        now = content.membership
        present, gone = (Membership.JOIN, Membership.INVITE), (Membership.LEAVE, Membership.BAN)
        if now in present and before not in present:
            self._pending[evt.room_id].add(UserID(evt.state_key))
            if evt.state_key != self.client.mxid:  # their devices, before the next message
                self.tracker.want([UserID(evt.state_key)])
        elif now in gone and before not in gone:  # also when the event does not say before
            await self.rotate(evt.room_id)

    async def _is_history_room(self, room_id: RoomID) -> bool:
        return self.history_room is not None and await self.history_room(room_id)

    async def _receive_room_key(self, evt: DecryptedOlmEvent) -> None:
        """A room key from a member's device; one it marked `shared_history`, in a room
        whose history newcomers get, is recorded as shareable."""
        await super()._receive_room_key(evt)
        content = cast(RoomKeyEventContent, evt.content)
        extra = getattr(content, "unrecognized_", None) or {}
        if not any(extra.get(flag) is True for flag in SHARED_HISTORY_FLAGS):
            return
        if self.on_shareable is not None and await self._is_history_room(content.room_id):
            await self.on_shareable(content.room_id, content.session_id)

    def waiting(self, room_id: RoomID) -> frozenset[UserID]:
        """Who gets the room's current session with its next message (joined, invited or
        with a new device since it was shared)."""
        return frozenset(self._pending.get(room_id, ()))

    async def rotate(self, room_id: RoomID) -> None:
        """The room's next message starts a new session, shared with the members of then."""
        self._generation[room_id] += 1
        self._pending.pop(room_id, None)
        await self.crypto_store.remove_outbound_group_session(room_id)

    async def forget_outbound_sessions(self) -> None:
        """At start-up: who holds the stored sessions is not known, so none is used again."""
        await self.pg.db.execute(
            "DELETE FROM crypto_megolm_outbound_session WHERE account_id=$1",
            self.pg.account_id,
        )

    async def on_devices_changed(self, user_id: UserID) -> None:
        """Handled in `_process_fetched_keys`, which knows what changed."""

    async def _process_fetched_keys(
        self, user_id: UserID, devices: dict[DeviceID, DeviceKeys], resp: QueryKeysResponse
    ) -> dict[DeviceID, DeviceIdentity]:
        before = await self.crypto_store.get_devices(user_id)
        after: dict[DeviceID, DeviceIdentity] = await super()._process_fetched_keys(
            user_id, devices, resp
        )
        if not before:  # first seen: nobody shared anything with these devices yet
            return after
        removed, added = before.keys() - after.keys(), after.keys() - before.keys()
        if removed or added:
            rooms = await self.state_store.find_shared_rooms(user_id)
            for room in rooms:
                if removed:
                    await self.rotate(room)
                else:
                    self._pending[room].add(user_id)
        return after

    # --- sharing ------------------------------------------------------------------------

    async def prepare(
        self, room_id: RoomID, members: Callable[[], Awaitable[list[UserID]]]
    ) -> None:
        """Make sure the room has an outbound session that every member's device holds.
        The caller holds the room's lock."""
        for _ in range(SHARE_ATTEMPTS):
            generation = self._generation[room_id]
            session = await self.crypto_store.get_outbound_group_session(room_id)
            known = session is not None and session.id in self._recipients
            if session and known and session.shared and not session.expired:
                newcomers = self._pending.pop(room_id, set())
                if newcomers:
                    await self._share(session, sorted(newcomers))
                return
            self._pending.pop(room_id, None)
            session = await self._new_outbound_group_session(room_id)
            self._forget(self._current.get(room_id, ""))
            self._current[room_id] = session.id
            self._recipients[session.id] = set()
            if await self._is_history_room(room_id):
                self._marked.add(session.id)
                if self.on_shareable is not None:
                    await self.on_shareable(room_id, SessionID(session.id))
            await self._share(session, await members())
            if self._generation[room_id] != generation:
                continue  # someone left meanwhile: this session may have reached them
            session.shared = True
            await self.crypto_store.add_outbound_group_session(session)
            return
        raise EncryptionError(f"the members of {room_id} kept changing while sharing a key")

    def _forget(self, session_id: str) -> None:
        self._recipients.pop(session_id, None)
        self._marked.discard(session_id)

    async def share_group_session(self, room_id: RoomID, users: list[UserID]) -> None:
        async def everyone() -> list[UserID]:
            return users

        await self.rotate(room_id)
        await self.prepare(room_id, everyone)

    async def _share(self, session: OutboundGroupSession, users: list[UserID]) -> None:
        """Send the session's key, at its current index, to the devices of `users` that do
        not hold it yet. The users go in parts, a few at a time, each part through its key
        query, claim, encryption and to-device send as soon as the step before answers: the
        bot's work on one part overlaps the homeserver's on the others."""
        content = dict(session.share_content.serialize())
        if session.id in self._marked:
            content.update(dict.fromkeys(SHARED_HISTORY_FLAGS, True))
        counts: Counter[str] = Counter()
        # The bot's own user (whose own device needs nothing) rides with the last part: a
        # part of its own would cost a claim and a to-device request for a device or none.
        others = sorted(set(users) - {self.client.mxid})
        parts = chunks(others, olm.SHARE_CHUNK_USERS)
        if self.client.mxid in users:
            parts = [*parts[:-1], [*(parts[-1] if parts else []), self.client.mxid]]
        started = time.monotonic()
        await in_parts(self._share_part(session, part, content, counts) for part in parts)
        if counts["reached"]:
            metrics.KEY_SHARE_SECONDS.observe(time.monotonic() - started)
            metrics.KEY_SHARE_DEVICES.observe(counts["reached"])
        if counts:
            log.debug(
                "shared session %s of %s with %d devices (%d without a session, %d withheld)",
                session.id,
                session.room_id,
                counts["reached"],
                counts["unreached"],
                counts["withheld"],
            )

    async def _share_part(
        self,
        session: OutboundGroupSession,
        users: Sequence[UserID],
        content: dict[str, Any],
        counts: Counter[str],
    ) -> None:
        holders = self._recipients.setdefault(session.id, set())
        me = (self.client.mxid, self.client.device_id)
        targets: list[DeviceIdentity] = []
        withheld: list[DeviceIdentity] = []
        for device in await self.devices_of(list(users)):
            key = (device.user_id, device.device_id)
            if key in holders or key == me or device.deleted:
                continue
            (withheld if device.trust == TrustState.BLACKLISTED else targets).append(device)
        if not targets and not withheld:
            return
        reach = await self.sessions_with(targets)
        messages = await self.encrypt_olm_many(reach, EventType.ROOM_KEY, content)
        await self.send_to_devices(EventType.TO_DEVICE_ENCRYPTED, messages)
        if withheld:
            await self._withhold(session, withheld)
        holders.update((d.user_id, d.device_id) for d in reach.devices + withheld)
        counts.update(
            reached=len(reach.devices),
            unreached=len(targets) - len(reach.devices),
            withheld=len(withheld),
        )

    async def _withhold(self, session: OutboundGroupSession, devices: list[DeviceIdentity]) -> None:
        content = {
            "room_id": session.room_id,
            "algorithm": EncryptionAlgorithm.MEGOLM_V1.value,
            "session_id": session.id,
            "sender_key": self.olm.identity_key,
            "code": RoomKeyWithheldCode.BLACKLISTED.value,
            "reason": "Device is blacklisted",
        }
        messages: dict[UserID, dict[DeviceID, Any]] = defaultdict(dict)
        for device in devices:
            messages[device.user_id][device.device_id] = content
        await self.send_to_devices(EventType.ROOM_KEY_WITHHELD, dict(messages))
