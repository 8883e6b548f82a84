"""One execution of an operation (`Run`): its typed parameters, its memoised steps, and the
one step a plain retry would repeat, creating a room, made safe by a tag alias.

Creating a room is the one step a plain retry would repeat (a crash between the homeserver's
answer and our save would leave an orphan room). `Run.create_room` therefore tags each new
room with an alias named after the operation and the step, in the service's exclusive alias
namespace; a resumed step finds the room through the alias instead of making a second one.
The aliases are removed when the operation is over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar, get_type_hints

from mautrix.types import RoomID, UserID

from ..db import Tables, now_ms
from ..db.community import Community
from ..db.operation import Operation
from ..errors import Conflict
from ..matrix.errors import MatrixError, Transient, is_transient
from ..matrix.gateway import Gateway
from ..tasks import bounded

log = logging.getLogger("communities.operations")
T = TypeVar("T")
# How long to wait for a room an interrupted `createRoom` is still making (about 10 s).
SETTLE_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.5, 3.0, 4.0)
TAG_PREFIX = "op"  # temporary room aliases: #<alias_prefix>op<id>_<step>:<domain>


class Params:
    """Base of an operation kind's parameters: a frozen dataclass, stored as JSON."""

    def to_json(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self)
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The parameters as recorded; enum fields get their enum back."""
        assert dataclasses.is_dataclass(cls)
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value, hint = data[f.name], hints.get(f.name)
            if isinstance(hint, type) and issubclass(hint, enum.Enum) and value is not None:
                value = hint(value)
            values[f.name] = value
        return cls(**values)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Naming:
    """What tagged room creation needs to name its aliases."""

    alias_prefix: str
    server_name: str
    bot: UserID


class RoomInTheMaking(Transient):
    """A room the homeserver has not finished creating yet (try again later)."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"{room_id} is still being created")


class Run(Generic[P]):
    """One execution of an operation: its parameters, and the results of the steps done."""

    def __init__(
        self,
        tables: Tables,
        gateway: Gateway,
        naming: Naming,
        op: Operation,
        params: P,
        steps: dict[str, Any],
    ) -> None:
        self.db = tables
        self.gw = gateway
        self.naming = naming
        self.op = op
        self.params = params
        self._steps = steps

    async def step(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()` once: its saved result if it already ran, else call it and save the result.

        `fn` must be safe to call again if the process dies before the save (idempotent on
        the homeserver and in the database); `create_room` covers the one case that is not."""
        if key in self._steps:
            return self._steps[key]  # type: ignore[no-any-return]
        result = await fn()
        await self.db.operations.save_step(self.op.id, key, result, now_ms())
        self._steps[key] = result
        return result

    async def keep(self, key: str, value: T) -> T:
        """`value` the first time, and the value kept then on every resumed run."""

        async def first() -> T:
            return value

        return await self.step(key, first)

    def result(self, key: str) -> Any:
        return self._steps.get(key)

    def results(self, prefix: str) -> dict[str, Any]:
        return {k: v for k, v in self._steps.items() if k.startswith(prefix)}

    def tag(self, key: str) -> str:
        prefix = self.naming.alias_prefix
        safe = "".join(c if c.isalnum() else "-" for c in key.lower())
        return f"#{prefix}{TAG_PREFIX}{self.op.id}_{safe}:{self.naming.server_name}"

    async def create_room(self, key: str, request: dict[str, Any]) -> RoomID:
        """Create a room for step `key` exactly once, even across a crash mid-request."""

        async def create() -> RoomID:
            alias = self.tag(key)
            # Only an earlier attempt can have made the room (`attempts` counts those).
            existing = await self.gw.resolve_alias(alias) if self.op.attempts else None
            if existing:
                log.info("operation %d: found room %s made before a restart", self.op.id, key)
                return await self._finished(existing, request)
            localpart = alias[1:].split(":", 1)[0]
            # The tag stays out of the room's canonical alias (an appservice deleting an
            # alias does not update that event, so a stale address would remain).
            no_canonical = {"type": "m.room.canonical_alias", "state_key": "", "content": {}}
            state = [*request.get("initial_state", []), no_canonical]
            try:
                return await self.gw.create_room(
                    {**request, "room_alias_name": localpart, "initial_state": state}
                )
            except MatrixError as e:
                # The HTTP client retried a request the homeserver had carried out.
                if e.errcode != "M_ROOM_IN_USE":
                    raise
                found = await self.gw.resolve_alias(alias)
                if found is None:
                    raise
                return await self._finished(found, request)

        return await self.step(f"room:{key}", create)

    async def _finished(self, room_id: RoomID, request: dict[str, Any]) -> RoomID:
        """A room found by its tag may still be in the making: the homeserver carries on
        with a `createRoom` whose caller died, and it creates the alias before the room's
        first events and sends the invitations last. Wait until the bot is in the room and
        everyone invited has a membership, so that what follows (a link, an encrypted
        notice) reaches them; a room still unfinished then is tried again later."""
        invited = list(request.get("invite", []))
        for delay in SETTLE_DELAYS:
            try:
                members = await self.gw.members(room_id)
            except MatrixError as e:
                if is_transient(e) or e.status not in (403, 404):
                    raise
                members = {}  # the bot is not in it yet
            if members.get(self.naming.bot) == "join" and all(u in members for u in invited):
                return room_id
            await asyncio.sleep(delay)
        raise RoomInTheMaking(room_id)

    def rooms(self) -> dict[str, RoomID]:
        """The rooms this operation has made so far, by step key."""
        return {k.removeprefix("room:"): RoomID(str(v)) for k, v in self.results("room:").items()}

    async def find_rooms(self, keys: list[str]) -> dict[str, RoomID]:
        """The rooms made for these step keys, including any whose creation a failure or a
        crash interrupted after the homeserver had carried it out (found by their tag)."""
        found = self.rooms()
        for key in keys:
            if key not in found:
                room_id = await self.gw.resolve_alias(self.tag(key))
                if room_id:
                    found[key] = room_id
        return found

    async def release_tags(self, keys: list[str] | None = None) -> None:
        """Remove the temporary aliases of the rooms this operation made (or of `keys`)."""

        async def release(key: str) -> None:
            try:
                await self.gw.delete_alias(self.tag(key))
            except MatrixError as e:
                if is_transient(e):
                    raise

        await bounded(release(key) for key in (keys or list(self.rooms())))

    async def community(self) -> Community:
        """The operation's community, which must still exist for it to go on."""
        community = await self.db.communities.get(self.op.space_id)
        if community is None:
            raise Conflict("The community no longer exists.")
        return community

    async def set_space(self, space_id: RoomID) -> None:
        if self.op.space_id != space_id:
            await self.db.operations.set_space(self.op.id, space_id)
            self.op.space_id = space_id
