"""Announcement history for newcomers: MSC4268 room key bundles (Matrix 1.19).

The bot invites every new member of a community to its announcement room, the case the
spec serves: the inviter shares the room's history with the invitee. Room keys of an
announcement room are marked `shared_history` when the bot makes them (and recorded as
shareable); so are the keys admins' clients send it with that mark. At an invitation the
bot puts every shareable key of the room, exported at its first known index, into a bundle,
encrypts it as an attachment, uploads it, and sends `m.room_key_bundle` (and the unstable
`io.element.msc4268.room_key_bundle`) to the invitee's cross-signed devices over Olm, with
its own device keys in the plaintext (`sender_device_keys`), as the spec requires.

A key never marked shareable (a group's, the admins room's, one an admin's client did not
mark) never goes into a bundle; nothing but a bundle ever forwards a key to another user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mautrix.crypto.attachments import encrypt_attachment
from mautrix.errors import GroupSessionWithheldError
from mautrix.types import (
    ContentURI,
    EncryptionAlgorithm,
    EventType,
    RoomID,
    SessionID,
    TrustState,
    UserID,
)

from .share import Machine

log = logging.getLogger("communities.crypto.history")

BUNDLE_TYPES = ("m.room_key_bundle", "io.element.msc4268.room_key_bundle")
# A bundle goes to devices their owner cross-signed (the spec's identity-based rule).
MIN_TRUST = TrustState.CROSS_SIGNED_TOFU

Upload = Callable[[bytes, str, str], Awaitable[str]]


class History:
    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.db = machine.pg.db

    async def mark_shareable(self, room_id: RoomID, session_id: SessionID) -> None:
        await self.db.execute(
            "INSERT INTO shared_history_key (room_id, session_id) VALUES ($1, $2)"
            " ON CONFLICT (room_id, session_id) DO NOTHING",
            room_id,
            session_id,
        )

    async def shareable(self, room_id: RoomID) -> list[SessionID]:
        rows = await self.db.fetch(
            "SELECT session_id FROM shared_history_key WHERE room_id=$1 ORDER BY session_id",
            room_id,
        )
        return [SessionID(r["session_id"]) for r in rows]

    async def bundle(self, room_id: RoomID) -> list[dict[str, Any]]:
        """Every shareable key of the room the bot holds, at its first known index."""
        keys = []
        for session_id in await self.shareable(room_id):
            try:
                session = await self.machine.pg.get_group_session(room_id, session_id)
            except GroupSessionWithheldError:
                continue
            if session is None:
                continue
            keys.append(
                {
                    "algorithm": EncryptionAlgorithm.MEGOLM_V1.value,
                    "room_id": room_id,
                    "sender_key": session.sender_key,
                    "session_id": session.id,
                    "session_key": session.export_session(session.first_known_index),
                    "sender_claimed_keys": {"ed25519": session.signing_key},
                }
            )
        return keys

    async def share(self, room_id: RoomID, user_id: UserID, upload: Upload) -> int:
        """Send the room's history to `user_id`'s cross-signed devices; how many keys went
        (0 when there is nothing to share, or no device to share it with)."""
        machine = self.machine
        devices = []
        for device in await machine.devices_of([user_id]):
            if device.deleted or await machine.resolve_trust(device) < MIN_TRUST:
                continue
            devices.append(device)
        keys = await self.bundle(room_id) if devices else []
        if not keys:
            log.info(
                "no history of %s for %s (%d keys, %d cross-signed devices)",
                room_id,
                user_id,
                len(keys),
                len(devices),
            )
            return 0
        data = json.dumps({"room_keys": keys, "withheld": []}).encode()
        ciphertext, file = encrypt_attachment(data)
        file.url = ContentURI(
            await upload(ciphertext, "application/octet-stream", "room-key-bundle")
        )
        content = {"room_id": room_id, "file": file.serialize()}
        reach = await machine.sessions_with(devices)
        for kind in BUNDLE_TYPES:
            messages = await machine.encrypt_olm_many(
                reach, EventType.find(kind, EventType.Class.TO_DEVICE), content
            )
            await machine.send_to_devices(EventType.TO_DEVICE_ENCRYPTED, messages)
        log.info(
            "shared %d keys of %s's history with %d devices of %s",
            len(keys),
            room_id,
            len(reach.devices),
            user_id,
        )
        return len(keys)
