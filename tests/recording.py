"""The one recording gateway: the outgoing Matrix edge, in memory, for unit tests.

`RecordingGateway` implements every call of `matrix.gateway.Gateway` against a small model
of a homeserver (rooms with their state and members, an alias directory, a media store), so a
feature's use cases run unchanged on a real SQLite (or PostgreSQL) database with no Synapse.
Every call is recorded in `calls` as `(method, args…)`; `sent(room)` lists the messages a room
received. `fail(method, error, times=1)` makes the next calls of `method` raise `error` (a
`MatrixError` with a status, an `aiohttp.ClientError`, …), to test refusals and outages.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from mautrix.types import ContentURI, EventID, RoomID, UserID

from communities_appservice.matrix.errors import MatrixError
from communities_appservice.matrix.gateway import Gateway

Call = tuple[Any, ...]


@dataclass
class Room:
    room_id: RoomID
    creator: UserID
    version: str
    state: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    members: dict[UserID, str] = field(default_factory=dict)  # user → membership
    member_senders: dict[UserID, UserID] = field(default_factory=dict)
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: dict[EventID, dict[str, Any]] = field(default_factory=dict)  # every message, by id


class RecordingGateway:
    """Acts as `bot` on a homeserver called `server_name` that exists only in memory."""

    def __init__(self, bot: str, server_name: str) -> None:
        self.bot = UserID(bot)
        self.server_name = server_name
        self.rooms: dict[RoomID, Room] = {}
        self.aliases: dict[str, RoomID] = {}
        self.uploads: list[tuple[bytes, str, str]] = []
        self.media_store: dict[str, bytes] = {}  # mxc URI → what a download returns
        self.redacted: list[tuple[RoomID, EventID]] = []
        self.calls: list[Call] = []
        self.encrypted_media = False
        self.txns: dict[tuple[RoomID, str], EventID] = {}  # (room, txn id) → the event sent
        self._failures: dict[str, list[BaseException]] = {}
        self._ids = itertools.count(1)

    # --- test controls -----------------------------------------------------------------------

    def fail(self, method: str, error: BaseException, times: int = 1) -> None:
        """The next `times` calls of `method` raise `error` (and change nothing)."""
        self._failures.setdefault(method, []).extend([error] * times)

    def sent(self, room_id: str) -> list[dict[str, Any]]:
        """The contents of the messages sent to a room, in order."""
        return [content for _, content in self.rooms[RoomID(room_id)].messages]

    def post(self, room_id: str, sender: str, content: dict[str, Any]) -> EventID:
        """A message someone sent in a room (the bot can read it with `get_event`)."""
        room = self._room(RoomID(room_id))
        event_id = self._event_id()
        room.events[event_id] = {
            "type": "m.room.message",
            "room_id": room_id,
            "sender": sender,
            "event_id": event_id,
            "content": content,
        }
        return event_id

    def add_room(
        self,
        creator: str,
        *,
        version: str = "12",
        members: dict[str, str] | None = None,
        state: dict[tuple[str, str], dict[str, Any]] | None = None,
    ) -> RoomID:
        """A room someone else made (to adopt, say); the bot is in it only if `members` says."""
        room_id = self._new_room(UserID(creator), version)
        room = self.rooms[room_id]
        room.state[("m.room.create", "")] = {"room_version": version, "creator": creator}
        room.state.update(state or {})
        for user, membership in (members or {creator: "join"}).items():
            self._set_member(room, UserID(user), membership, UserID(creator))
        return room_id

    def _new_room(self, creator: UserID, version: str) -> RoomID:
        room_id = RoomID(f"!r{next(self._ids)}:{self.server_name}")
        self.rooms[room_id] = Room(room_id, creator, version)
        return room_id

    def _event_id(self) -> EventID:
        return EventID(f"$e{next(self._ids)}")

    def _record(self, method: str, *args: Any) -> None:
        self.calls.append((method, *args))
        failures = self._failures.get(method)
        if failures:
            raise failures.pop(0)

    def _room(self, room_id: RoomID) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise MatrixError("M_NOT_FOUND", "Unknown room", 404)
        return room

    def _visible(self, room_id: RoomID) -> Room:
        """A room the bot is in (or was invited to), as the homeserver requires."""
        room = self._room(room_id)
        if room.members.get(self.bot) not in ("join", "invite"):
            raise MatrixError("M_FORBIDDEN", "You are not in the room", 403)
        return room

    def _set_member(self, room: Room, user: UserID, membership: str, sender: UserID) -> None:
        room.members[user] = membership
        room.member_senders[user] = sender
        room.state[("m.room.member", user)] = {"membership": membership}

    # --- Gateway -----------------------------------------------------------------------------

    async def create_room(self, request: dict[str, Any]) -> RoomID:
        self._record("create_room", request)
        alias_name = request.get("room_alias_name")
        alias = f"#{alias_name}:{self.server_name}" if alias_name else None
        if alias is not None and alias in self.aliases:
            raise MatrixError("M_ROOM_IN_USE", "Room alias already taken", 400)
        room_id = self._new_room(self.bot, str(request.get("room_version", "12")))
        room = self.rooms[room_id]
        create = {"room_version": room.version, "creator": str(self.bot)}
        create.update(request.get("creation_content") or {})
        room.state[("m.room.create", "")] = create
        self._set_member(room, self.bot, "join", self.bot)
        if "power_level_content_override" in request:
            room.state[("m.room.power_levels", "")] = dict(request["power_level_content_override"])
        for key in ("name", "topic"):
            if request.get(key):
                room.state[(f"m.room.{key}", "")] = {key: request[key]}
        for event in request.get("initial_state", []):
            room.state[(event["type"], event.get("state_key", ""))] = dict(event["content"])
        for user in request.get("invite", []):
            self._set_member(room, UserID(user), "invite", self.bot)
        if alias is not None:
            self.aliases[alias] = room_id
        return room_id

    async def get_state(
        self, room_id: RoomID, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        self._record("get_state", room_id, event_type, state_key)
        content = self._visible(room_id).state.get((event_type, state_key))
        return None if content is None else dict(content)

    async def get_create(self, room_id: RoomID) -> dict[str, Any]:
        self._record("get_create", room_id)
        return dict(self._visible(room_id).state[("m.room.create", "")])

    async def send_state(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> EventID:
        self._record("send_state", room_id, event_type, content, state_key)
        room = self._visible(room_id)
        room.state[(event_type, state_key)] = dict(content)
        return self._event_id()

    async def send_message(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], txn_id: str = ""
    ) -> EventID:
        self._record("send_message", room_id, event_type, content)
        room = self._visible(room_id)
        if txn_id and (room_id, txn_id) in self.txns:  # a retry: the homeserver remembers
            return self.txns[(room_id, txn_id)]
        room.messages.append((event_type, content))
        event_id = self._event_id()
        room.events[event_id] = {
            "type": event_type,
            "room_id": room_id,
            "sender": self.bot,
            "event_id": event_id,
            "content": content,
            "origin_server_ts": int(time.time() * 1000),
        }
        if txn_id:
            self.txns[(room_id, txn_id)] = event_id
        return event_id

    async def redact(self, room_id: RoomID, event_id: EventID, reason: str = "") -> EventID:
        self._record("redact", room_id, event_id, reason)
        room = self._visible(room_id)
        self.redacted.append((room_id, event_id))
        room.events.pop(event_id, None)
        return self._event_id()

    async def invite(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        self._record("invite", room_id, user_id, reason)
        room = self._visible(room_id)
        if room.members.get(user_id) in ("join", "ban"):
            raise MatrixError("M_FORBIDDEN", f"{user_id} is {room.members[user_id]}", 403)
        self._set_member(room, user_id, "invite", self.bot)

    async def kick(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        self._record("kick", room_id, user_id, reason)
        room = self._visible(room_id)
        if room.members.get(user_id) not in ("join", "invite", "knock"):
            raise MatrixError("M_FORBIDDEN", "The target user is not in the room", 403)
        self._set_member(room, user_id, "leave", self.bot)

    async def ban(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        self._record("ban", room_id, user_id, reason)
        self._set_member(self._visible(room_id), user_id, "ban", self.bot)

    async def unban(self, room_id: RoomID, user_id: UserID, reason: str | None = None) -> None:
        self._record("unban", room_id, user_id, reason)
        room = self._visible(room_id)
        if room.members.get(user_id) != "ban":
            raise MatrixError("M_FORBIDDEN", "The target user is not banned", 403)
        self._set_member(room, user_id, "leave", self.bot)

    async def join(self, room_id: RoomID, reason: str | None = None) -> RoomID:
        self._record("join", room_id, reason)
        room = self._room(room_id)
        if room.members.get(self.bot) == "ban":
            raise MatrixError("M_FORBIDDEN", "You are banned from this room", 403)
        self._set_member(room, self.bot, "join", self.bot)
        return room_id

    async def leave(self, room_id: RoomID, reason: str | None = None) -> None:
        self._record("leave", room_id, reason)
        self._set_member(self._room(room_id), self.bot, "leave", self.bot)

    async def joined_members(self, room_id: RoomID) -> set[UserID]:
        self._record("joined_members", room_id)
        room = self._visible(room_id)
        return {user for user, membership in room.members.items() if membership == "join"}

    async def members(self, room_id: RoomID) -> dict[UserID, str]:
        self._record("members", room_id)
        return dict(self._visible(room_id).members)

    async def membership_events(self, room_id: RoomID) -> dict[UserID, tuple[str, UserID]]:
        self._record("members", room_id)
        room = self._visible(room_id)
        return {user: (m, room.member_senders.get(user, user)) for user, m in room.members.items()}

    async def room_state(self, room_id: RoomID) -> list[dict[str, Any]]:
        self._record("room_state", room_id)
        room = self._visible(room_id)
        events = []
        for (event_type, key), content in room.state.items():
            event: dict[str, Any] = {"type": event_type, "state_key": key, "content": content}
            if event_type == "m.room.member":
                event["sender"] = room.member_senders.get(UserID(key), key)
            events.append(event)
        return events

    async def space_children(self, space_id: RoomID) -> dict[RoomID, dict[str, Any]]:
        self._record("space_children", space_id)
        room = self._visible(space_id)
        return {
            RoomID(key): dict(content)
            for (event_type, key), content in room.state.items()
            if event_type == "m.space.child" and content.get("via")
        }

    async def membership(self, room_id: RoomID, user_id: UserID) -> str | None:
        self._record("membership", room_id, user_id)
        return self._visible(room_id).members.get(user_id)

    async def resolve_alias(self, alias: str) -> RoomID | None:
        self._record("resolve_alias", alias)
        return self.aliases.get(alias)

    async def create_alias(self, alias: str, room_id: RoomID) -> None:
        self._record("create_alias", alias, room_id)
        if alias in self.aliases:
            raise MatrixError("M_UNKNOWN", "Room alias already taken", 409)
        self.aliases[alias] = room_id

    async def delete_alias(self, alias: str) -> None:
        self._record("delete_alias", alias)
        self.aliases.pop(alias, None)

    async def share_history(self, room_id: RoomID, user_id: UserID) -> int:
        self._record("share_history", room_id, user_id)
        return 0

    async def upload(self, data: bytes, content_type: str, filename: str) -> ContentURI:
        self._record("upload", content_type, filename)
        self.uploads.append((data, content_type, filename))
        uri = f"mxc://{self.server_name}/media{len(self.uploads)}"
        self.media_store[uri] = data
        return ContentURI(uri)

    async def download(self, content: dict[str, Any]) -> bytes:
        file = content.get("file")
        url = str(file.get("url") if isinstance(file, dict) else content.get("url"))
        self._record("download", url)
        if url not in self.media_store:
            raise MatrixError("M_NOT_FOUND", "Not found", 404)
        return self.media_store[url]

    async def get_event(self, room_id: RoomID, event_id: EventID) -> dict[str, Any]:
        self._record("get_event", room_id, event_id)
        room = self._visible(room_id)
        if event_id not in room.events:
            raise MatrixError("M_NOT_FOUND", "Event not found", 404)
        return dict(room.events[event_id])

    async def media(
        self, room_id: RoomID, data: bytes, content_type: str, filename: str
    ) -> dict[str, Any]:
        self._record("media", room_id, content_type, filename)
        if self.encrypted_media:
            uri = await self.upload(b"ciphertext", "application/octet-stream", filename)
            return {"file": {"url": uri, "v": "v2"}}
        return {"url": await self.upload(data, content_type, filename)}


def _conforms(gateway: RecordingGateway) -> Gateway:
    """mypy checks here that the recording gateway is a complete `Gateway`."""
    return gateway
