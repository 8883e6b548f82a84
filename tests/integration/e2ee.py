"""A user with a real E2EE device: matrix-nio with its own Olm store, syncing for real."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginResponse,
    MegolmEvent,
    RoomEncryptedFile,
    RoomEncryptedImage,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment


class E2EEUser:
    def __init__(self, base_url: str, user_id: str, password: str, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.user_id = user_id
        self.password = password
        self.client = AsyncClient(
            base_url,
            user_id,
            store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        self.notices: list[RoomMessageNotice] = []
        self.notices_by_room: dict[str, list[str]] = {}  # room id → bodies, in order
        self.images: list[RoomEncryptedImage] = []
        self.texts: list[tuple[str, RoomMessageText]] = []  # (room, m.text message), in order
        self.room_images: list[tuple[str, RoomEncryptedImage]] = []
        self.room_files: list[tuple[str, RoomEncryptedFile]] = []
        self.undecryptable: list[MegolmEvent] = []
        self.client.add_event_callback(self._on_notice, RoomMessageNotice)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_megolm, MegolmEvent)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_image, RoomEncryptedImage)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_text, RoomMessageText)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_file, RoomEncryptedFile)  # type: ignore[arg-type]
        # Like Element, keep an encrypted event's relation in the clear (the spec's advice,
        # which matrix-nio does not follow): the homeserver and the bot see threads by it.
        encrypt = self.client.encrypt

        def encrypt_like_element(
            room_id: str, message_type: str, content: dict[str, Any]
        ) -> tuple[str, dict[str, Any]]:
            kind, sealed = encrypt(room_id, message_type, content)
            if "m.relates_to" in content:
                sealed = {**sealed, "m.relates_to": content["m.relates_to"]}
            return kind, sealed

        self.client.encrypt = encrypt_like_element  # type: ignore[method-assign]

    async def _on_file(self, room: Any, event: RoomEncryptedFile) -> None:
        self.room_files.append((str(room.room_id), event))

    async def file_in(self, room_id: str, timeout: float = 40.0) -> RoomEncryptedFile:
        """The first encrypted file (`m.file`) in `room_id`."""

        def find() -> RoomEncryptedFile | None:
            return next((e for r, e in self.room_files if r == room_id), None)

        await self.wait(lambda: find() is not None, f"a file in {room_id}", timeout)
        found = find()
        assert found is not None
        return found

    async def _on_text(self, room: Any, event: RoomMessageText) -> None:
        self.texts.append((str(room.room_id), event))

    async def text_in(self, room_id: str, text: str, timeout: float = 40.0) -> RoomMessageText:
        """The first `m.text` message in `room_id` that contains `text`, once it arrived."""

        def find() -> RoomMessageText | None:
            return next((e for r, e in self.texts if r == room_id and text in e.body), None)

        await self.wait(
            lambda: find() is not None, f"a message with {text!r} in {room_id}", timeout
        )
        found = find()
        assert found is not None
        return found

    async def image_in(self, room_id: str, timeout: float = 40.0) -> RoomEncryptedImage:
        """The first encrypted image in `room_id`."""

        def find() -> RoomEncryptedImage | None:
            return next((e for r, e in self.room_images if r == room_id), None)

        await self.wait(lambda: find() is not None, f"an image in {room_id}", timeout)
        found = find()
        assert found is not None
        return found

    async def image_bytes(self, image: RoomEncryptedImage | RoomEncryptedFile) -> bytes:
        """What an encrypted image or file holds, downloaded and decrypted as a client does."""
        response = await self.client.download(mxc=image.url)
        body = getattr(response, "body", None)
        assert isinstance(body, bytes), response
        return bytes(decrypt_attachment(body, image.key["k"], image.hashes["sha256"], image.iv))

    async def send_image(self, room_id: str, data: bytes, name: str) -> str:
        """An image sent as Element sends one in an encrypted room: the file encrypted and
        uploaded, its key in the (encrypted) event."""
        import io

        uploaded, keys = await self.client.upload(
            lambda *_: io.BytesIO(data), "image/png", name, encrypt=True, filesize=len(data)
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        assert keys is not None
        content = {
            "msgtype": "m.image",
            "body": name,
            "info": {"mimetype": "image/png", "size": len(data)},
            "file": {**keys, "url": uploaded.content_uri},
        }
        return await self.send_content(room_id, content)

    async def send_content(self, room_id: str, content: dict[str, Any]) -> str:
        await self.sync()
        response = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        assert isinstance(response, RoomSendResponse), response
        return str(response.event_id)

    async def reply(self, room_id: str, body: str, to: str) -> str:
        """A rich reply as Element sends it today (no fallback quote)."""
        return await self.send_content(
            room_id,
            {
                "msgtype": "m.text",
                "body": body,
                "m.relates_to": {"m.in_reply_to": {"event_id": to}},
            },
        )

    async def _on_notice(self, room: Any, event: RoomMessageNotice) -> None:
        self.notices.append(event)
        self.notices_by_room.setdefault(str(room.room_id), []).append(str(event.body))

    async def notice_in(self, room_id: str, text: str, timeout: float = 40.0) -> str:
        """The first notice in `room_id` that contains `text`, once it has arrived."""

        def find() -> str | None:
            return next((b for b in self.notices_by_room.get(room_id, []) if text in b), None)

        await self.wait(lambda: find() is not None, f"a notice with {text!r} in {room_id}", timeout)
        found = find()
        assert found is not None
        return found

    async def _on_image(self, room: Any, event: RoomEncryptedImage) -> None:
        self.images.append(event)
        self.room_images.append((str(room.room_id), event))

    async def _on_megolm(self, room: Any, event: MegolmEvent) -> None:
        self.undecryptable.append(event)

    async def login(self, device_name: str = "test") -> None:
        response = await self.client.login(self.password, device_name=device_name)
        assert isinstance(response, LoginResponse), response
        await self.sync()

    async def sync(self) -> None:
        await self.client.sync(timeout=300, full_state=True)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()

    async def close(self) -> None:
        await self.client.close()

    async def encrypted_dm(self, bot: str) -> str:
        response = await self.client.room_create(
            invite=[bot],
            is_direct=True,
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        room_id = str(response.room_id)  # type: ignore[union-attr]
        rooms = self.client.rooms
        await self.wait(lambda: room_id in rooms and bot in rooms[room_id].users, "the bot")
        return room_id

    async def join(self, room_id: str) -> None:
        response = await self.client.join(room_id)
        assert not isinstance(response, JoinError), response
        joined = str(response.room_id)  # the id, when joined by alias
        rooms = self.client.rooms
        # A room of another server reaches this one's sync a moment after the join returns.
        await self.wait(lambda: joined in rooms, f"{joined} in this device's sync")

    async def join_via(self, room_id: str, servers: list[str]) -> None:
        """Join a room of another server by its id, through `servers` (what Element does with
        the `via` of a space's `m.space.child`)."""
        query = "&".join(f"server_name={quote(server)}" for server in servers)
        path = f"/_matrix/client/v3/join/{quote(room_id)}?{query}"
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {self.client.access_token}"}
            async with http.post(self.client.homeserver + path, json={}, headers=headers) as r:
                assert r.status == 200, (r.status, await r.text())
        rooms = self.client.rooms
        await self.wait(lambda: room_id in rooms, f"{room_id} in this device's sync")

    async def send(self, room_id: str, body: str) -> str:
        await self.sync()
        response = await self.client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, RoomSendResponse), response
        return str(response.event_id)

    def outbound_session(self, room_id: str) -> str:
        """The id of the Megolm session this device sends with in `room_id` now."""
        assert self.client.olm is not None
        return str(self.client.olm.outbound_group_sessions[room_id].id)

    async def forward_room_key(
        self, room_id: str, session_id: str, user_id: str, device_id: str
    ) -> None:
        """Send one device the keys of a Megolm session of this device from its first
        message on, as `m.forwarded_room_key` (what answering a key request sends): keys
        that reach it late."""
        olm = self.client.olm
        assert olm is not None
        own_key = olm.account.identity_keys["curve25519"]
        group_session = olm.inbound_group_store.get(room_id, own_key, session_id)
        device = self.client.device_store[user_id][device_id]
        if olm.session_store.get(device.curve25519) is None:
            await self.client.keys_claim({user_id: [device_id]})
        olm_session = olm.session_store.get(device.curve25519)
        assert group_session is not None and olm_session is not None
        message = olm._encrypt_forwarding_key(room_id, group_session, olm_session, device)
        await self.client.to_device(message)

    async def wait(self, condition: Any, what: str, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                import sys

                for task in asyncio.all_tasks():
                    task.print_stack(limit=8, file=sys.stderr)
                raise AssertionError(f"{self.user_id} timed out waiting for {what}")
            await self.sync()
            await asyncio.sleep(0.05)

    async def reply_to(self, event_id: str, timeout: float = 40.0) -> RoomMessageNotice:
        def find() -> RoomMessageNotice | None:
            for notice in self.notices:
                relates = notice.source.get("content", {}).get("m.relates_to", {})
                if relates.get("m.in_reply_to", {}).get("event_id") == event_id:
                    return notice
            return None

        await self.wait(lambda: find() is not None, f"the reply to {event_id}", timeout)
        reply = find()
        assert reply is not None
        return reply
