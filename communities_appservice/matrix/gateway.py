"""The few Matrix actions the service uses, behind one seam.

`Gateway` is the protocol the service depends on; `MatrixGateway` implements it with mautrix
against the homeserver, acting as the bot user through the appservice token. Unit tests plug a
recording gateway into the same seam. Errors from the homeserver surface as `MatrixError`
with the Matrix errcode, so callers decide without parsing text.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from aiohttp import ClientSession
from mautrix.api import MediaPath, Method, Path
from mautrix.client import Client
from mautrix.client.state_store import MemoryStateStore
from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.errors import DecryptionError, MatrixRequestError
from mautrix.types import ContentURI, EventID, RoomID, UserID

from .crypto import BotCrypto
from .errors import MatrixError

log = logging.getLogger("communities.gateway")

http_log = logging.getLogger("communities.gateway.http")  # bodies filtered: see ..logs
HOMESERVER_CALLS = 32


class Gateway(Protocol):
    bot: UserID
    server_name: str

    async def create_room(self, request: dict[str, Any]) -> RoomID: ...
    async def get_state(
        self, room_id: RoomID, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None: ...
    async def get_create(self, room_id: RoomID) -> dict[str, Any]: ...
    async def send_state(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> EventID: ...
    async def send_message(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], txn_id: str = ""
    ) -> EventID: ...
    async def redact(self, room_id: RoomID, event_id: EventID, reason: str = "") -> EventID: ...
    async def invite(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None: ...
    async def kick(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None: ...
    async def ban(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None: ...
    async def unban(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None: ...
    async def join(self, room_id: RoomID, reason: str | None = None) -> RoomID: ...
    async def leave(self, room_id: RoomID, reason: str | None = None) -> None: ...
    async def joined_members(self, room_id: RoomID) -> set[UserID]: ...
    async def members(self, room_id: RoomID) -> dict[UserID, str]: ...
    async def membership_events(self, room_id: RoomID) -> dict[UserID, tuple[str, UserID]]: ...
    async def room_state(self, room_id: RoomID) -> list[dict[str, Any]]: ...
    async def space_children(self, space_id: RoomID) -> dict[RoomID, dict[str, Any]]: ...
    async def membership(self, room_id: RoomID, user_id: UserID) -> str | None: ...
    async def resolve_alias(self, alias: str) -> RoomID | None: ...
    async def create_alias(self, alias: str, room_id: RoomID) -> None: ...
    async def delete_alias(self, alias: str) -> None: ...
    async def upload(self, data: bytes, content_type: str, filename: str) -> ContentURI: ...
    async def download(self, content: dict[str, Any]) -> bytes: ...
    async def get_event(self, room_id: RoomID, event_id: EventID) -> dict[str, Any]: ...
    async def media(
        self, room_id: RoomID, data: bytes, content_type: str, filename: str
    ) -> dict[str, Any]: ...
    async def share_history(self, room_id: RoomID, user_id: UserID) -> int: ...


def _wrap(e: MatrixRequestError) -> MatrixError:
    return MatrixError(e.errcode or "M_UNKNOWN", e.message or "", e.http_status)


class MatrixGateway:
    """The bot, acting through the appservice's token with `user_id` set to itself."""

    def __init__(
        self, base_url: str, as_token: str, bot: str, server_name: str, session: ClientSession
    ) -> None:
        self.bot = UserID(bot)
        self.server_name = server_name
        self.client = Client(
            mxid=UserID(bot),
            base_url=base_url,
            token=as_token,
            client_session=session,
            state_store=MemoryStateStore(),
            default_retry_count=4,
            log=http_log,
        )
        self.client.api.as_user_id = bot  # type: ignore[assignment]
        self.crypto: BotCrypto | None = None
        # At most this many requests of the bot's in flight; the others wait their turn.
        self._calls = asyncio.Semaphore(HOMESERVER_CALLS)

    async def _request(
        self,
        method: Method,
        path: Any,
        content: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self._calls:
                result = await self.client.api.request(method, path, content, query_params=query)
        except MatrixRequestError as e:
            raise _wrap(e) from None
        return dict(result) if isinstance(result, dict) else {"chunk": result}

    async def ensure_registered(self, displayname: str) -> None:
        """Register the bot user once (M_USER_IN_USE means done) and give it its display name."""
        localpart = self.bot[1:].split(":", 1)[0]
        try:
            await self._request(
                Method.POST,
                Path.v3.register,
                {
                    "type": "m.login.application_service",
                    "username": localpart,
                    "inhibit_login": True,
                },
            )
        except MatrixError as e:
            if e.errcode != "M_USER_IN_USE":
                raise
        # Set only when it differs: the homeserver copies a new profile name into every room,
        # over the name the bot goes by there (the community's).
        try:
            profile = await self._request(Method.GET, Path.v3.profile[self.bot].displayname)
        except MatrixError as e:
            if e.status != 404:
                raise
            profile = {}
        if profile.get("displayname") != displayname:
            await self._request(
                Method.PUT, Path.v3.profile[self.bot].displayname, {"displayname": displayname}
            )

    async def ping(self, appservice_id: str) -> None:
        """Ask the homeserver to reach us now (it also retries transactions it held back)."""
        await self._request(
            Method.POST, Path.v1.appservice[appservice_id].ping, {"transaction_id": "startup"}
        )

    async def create_room(self, request: dict[str, Any]) -> RoomID:
        result = await self._request(Method.POST, Path.v3.createRoom, request)
        return RoomID(str(result["room_id"]))

    async def get_state(
        self, room_id: RoomID, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        try:
            return await self._request(
                Method.GET, Path.v3.rooms[room_id].state[event_type][state_key]
            )
        except MatrixError as e:
            if e.errcode == "M_NOT_FOUND":
                return None
            raise

    async def get_create(self, room_id: RoomID) -> dict[str, Any]:
        """The `m.room.create` content, with `creator` filled from the sender (v11+ omit it)."""
        event = await self._request(
            Method.GET,
            Path.v3.rooms[room_id].state["m.room.create"][""],
            query={"format": "event"},
        )
        content = dict(event.get("content", event))
        content.setdefault("creator", event.get("sender"))
        return content

    async def send_state(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> EventID:
        result = await self._request(
            Method.PUT, Path.v3.rooms[room_id].state[event_type][state_key], content
        )
        return EventID(str(result["event_id"]))

    async def send_message(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], txn_id: str = ""
    ) -> EventID:
        """Send a message event, Megolm-encrypted when the room is encrypted. A `txn_id` of
        the caller's makes a retry of the same send one event (the homeserver remembers the
        transaction ids of a sender), where a new one is drawn otherwise."""
        if self.crypto is not None and await self.crypto.is_encrypted(room_id, self.get_state):
            content = await self.crypto.encrypt(
                room_id, event_type, content, lambda: self.share_targets(room_id)
            )
            event_type = "m.room.encrypted"
        txn_id = txn_id or secrets.token_hex(12)
        result = await self._request(
            Method.PUT,
            Path.v3.rooms[room_id].send[event_type][txn_id],
            content,
            query=self._as_device(),
        )
        return EventID(str(result["event_id"]))

    async def redact(self, room_id: RoomID, event_id: EventID, reason: str = "") -> EventID:
        """Take an event down (once: the transaction id is the event's)."""
        txn_id = "redact-" + event_id.lstrip("$")[:60]
        result = await self._request(
            Method.PUT,
            Path.v3.rooms[room_id].redact[event_id][txn_id],
            _with_reason({}, reason),
            query=self._as_device(),
        )
        return EventID(str(result["event_id"]))

    def _as_device(self) -> dict[str, Any] | None:
        """Sends name the bot's device: Synapse then keeps their transaction ids in its
        database for a day (`event_txn_id_device_id`), across its restarts, where a send
        without a device is remembered only in the memory of one process for 30 minutes."""
        if self.crypto is None or not self.crypto.device_id or self.crypto.device_id == "None":
            return None
        return {"device_id": self.crypto.device_id}

    async def get_event(self, room_id: RoomID, event_id: EventID) -> dict[str, Any]:
        """One event as the bot reads it: decrypted when it was encrypted (KeysMissing or
        CannotDecrypt when the bot cannot read it)."""
        event = await self._request(Method.GET, Path.v3.rooms[room_id].event[event_id])
        if event.get("type") == "m.room.encrypted" and self.crypto is not None:
            event = await self.crypto.decrypt({**event, "room_id": room_id})
        return event

    async def download(self, content: dict[str, Any]) -> bytes:
        """The bytes of a media message's file, decrypted when it came encrypted (`file`)."""
        file = content.get("file")
        url = file.get("url") if isinstance(file, dict) else content.get("url")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            raise MatrixError("M_NOT_FOUND", "the message has no media", 404)
        try:
            async with self._calls:
                data = await self.client.download_media(ContentURI(url))
        except aiohttp.ClientResponseError as e:
            raise MatrixError("M_UNKNOWN", e.message, e.status) from None
        except MatrixRequestError as e:
            raise _wrap(e) from None
        if not isinstance(file, dict):
            return bytes(data)
        try:
            return bytes(
                decrypt_attachment(
                    data, str(file["key"]["k"]), str(file["hashes"]["sha256"]), str(file["iv"])
                )
            )
        except (KeyError, TypeError, DecryptionError) as e:
            raise MatrixError("M_BAD_FILE", f"the media cannot be decrypted: {e}", 400) from None

    async def share_targets(self, room_id: RoomID) -> dict[UserID, str]:
        """Who gets the room key: joined members, and invited ones (history is `shared`),
        with their membership."""
        result = await self._request(Method.GET, Path.v3.rooms[room_id].members)
        targets: dict[UserID, str] = {}
        for event in result.get("chunk", []):
            membership = str((event.get("content") or {}).get("membership"))
            if membership in ("join", "invite"):
                targets[UserID(str(event["state_key"]))] = membership
        return targets

    async def _membership_call(
        self, action: str, room_id: RoomID, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._request(Method.POST, Path.v3.rooms[room_id][action], body)

    async def invite(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        await self._membership_call("invite", room_id, _with_reason({"user_id": user_id}, reason))

    async def kick(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        await self._membership_call("kick", room_id, _with_reason({"user_id": user_id}, reason))
        await self._rotate(room_id)

    async def ban(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        await self._membership_call("ban", room_id, _with_reason({"user_id": user_id}, reason))
        await self._rotate(room_id)

    async def _rotate(self, room_id: RoomID) -> None:
        """Someone left by the bot's hand: its next message there uses a new session, at
        once, without waiting for the membership event to come back through the router."""
        if self.crypto is not None:
            await self.crypto.rotate(room_id)

    async def unban(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        await self._membership_call("unban", room_id, _with_reason({"user_id": user_id}, reason))

    async def join(self, room_id: RoomID, reason: str | None = None) -> RoomID:
        result = await self._request(Method.POST, Path.v3.join[room_id], _with_reason({}, reason))
        return RoomID(str(result["room_id"]))

    async def leave(self, room_id: RoomID, reason: str | None = None) -> None:
        await self._membership_call("leave", room_id, _with_reason({}, reason))

    async def joined_members(self, room_id: RoomID) -> set[UserID]:
        result = await self._request(Method.GET, Path.v3.rooms[room_id].joined_members)
        return {UserID(str(u)) for u in result.get("joined", {})}

    async def members(self, room_id: RoomID) -> dict[UserID, str]:
        """Every member event of the room: user id → membership."""
        result = await self._request(Method.GET, Path.v3.rooms[room_id].members)
        return {
            UserID(str(e["state_key"])): str((e.get("content") or {}).get("membership"))
            for e in result.get("chunk", [])
        }

    async def membership_events(self, room_id: RoomID) -> dict[UserID, tuple[str, UserID]]:
        """Every member event of the room: user id → (membership, who set it)."""
        result = await self._request(Method.GET, Path.v3.rooms[room_id].members)
        return {
            UserID(str(e["state_key"])): (
                str((e.get("content") or {}).get("membership")),
                UserID(str(e.get("sender", ""))),
            )
            for e in result.get("chunk", [])
        }

    async def room_state(self, room_id: RoomID) -> list[dict[str, Any]]:
        """The room's whole current state, as events."""
        result = await self._request(Method.GET, Path.v3.rooms[room_id].state)
        return list(result["chunk"])

    async def space_children(self, space_id: RoomID) -> dict[RoomID, dict[str, Any]]:
        """The space's linked children (`m.space.child` with a `via`): room id → content.

        From the space hierarchy's first page, whose first entry is the space itself with
        every link in `children_state`; no member events come along."""
        result = await self._request(
            Method.GET,
            Path.v1.rooms[space_id].hierarchy,
            query={"max_depth": "0", "limit": "1"},
        )
        rooms = result.get("rooms") or []
        if not rooms or rooms[0].get("room_id") != space_id:
            return {}
        return {
            RoomID(str(e["state_key"])): dict(e.get("content") or {})
            for e in rooms[0].get("children_state") or []
            if e.get("type") == "m.space.child" and (e.get("content") or {}).get("via")
        }

    async def membership(self, room_id: RoomID, user_id: UserID) -> str | None:
        content = await self.get_state(room_id, "m.room.member", user_id)
        return None if content is None else str(content.get("membership"))

    async def resolve_alias(self, alias: str) -> RoomID | None:
        try:
            result = await self._request(Method.GET, Path.v3.directory.room[alias])
        except MatrixError as e:
            if e.errcode == "M_NOT_FOUND":
                return None
            raise
        return RoomID(str(result["room_id"]))

    async def create_alias(self, alias: str, room_id: RoomID) -> None:
        """Point `alias` at `room_id`; a taken alias is `M_UNKNOWN` with status 409."""
        await self._request(Method.PUT, Path.v3.directory.room[alias], {"room_id": room_id})

    async def delete_alias(self, alias: str) -> None:
        """Remove `alias`; one that does not exist (any more) counts as removed."""
        try:
            await self._request(Method.DELETE, Path.v3.directory.room[alias])
        except MatrixError as e:
            if e.errcode != "M_NOT_FOUND":
                raise

    async def share_history(self, room_id: RoomID, user_id: UserID) -> int:
        """The room's shareable history (MSC4268) to `user_id`'s devices; how many keys
        went (none without encryption)."""
        if self.crypto is None:
            return 0
        return await self.crypto.share_history(room_id, user_id, self.upload)

    async def upload(self, data: bytes, content_type: str, filename: str) -> ContentURI:
        """Put `data` in the media repository as the bot; returns its mxc:// URI."""
        try:
            async with self._calls:
                result = await self.client.api.request(
                    Method.POST,
                    MediaPath.v3.upload,
                    data,
                    headers={"Content-Type": content_type},
                    query_params={"filename": filename},
                )
        except MatrixRequestError as e:
            raise _wrap(e) from None
        return ContentURI(str(result["content_uri"]))

    async def media(
        self, room_id: RoomID, data: bytes, content_type: str, filename: str
    ) -> dict[str, Any]:
        """Upload `data` for a message in `room_id`; returns the event's media fields.

        In an encrypted room the homeserver gets only ciphertext, and the key travels in
        the (encrypted) event as `file`, as Matrix clients do; elsewhere a plain `url`."""
        if self.crypto is not None and await self.crypto.is_encrypted(room_id, self.get_state):
            ciphertext, encrypted = encrypt_attachment(data)
            encrypted.url = ContentURI(
                await self.upload(ciphertext, "application/octet-stream", filename)
            )
            return {"file": encrypted.serialize()}
        return {"url": await self.upload(data, content_type, filename)}


def _with_reason(body: dict[str, Any], reason: str | None) -> dict[str, Any]:
    if reason:
        body["reason"] = reason
    return body


def matrix_to(target: str) -> str:
    return "https://matrix.to/#/" + quote(target, safe="@:!#")
