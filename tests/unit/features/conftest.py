"""Shared fixtures for the feature tests: every use case end to end, on a real database
(SQLite; PostgreSQL too with `COMMUNITIES_TEST_DB=postgres`) and the in-memory homeserver of
`tests.recording`, with no Synapse.

- `config`: a test config (small limits: 3 admins, 3 groups; `example.org` may create);
- `tables` (from `tests/conftest.py`): migrated tables on the pass's database, emptied
  before every test;
- `gateway`: a fresh `RecordingGateway` per test; `service`: a `Service` on both;
- `create_community`: builds a community through `Structure.create_community`, as a user's
  `create` command would, and returns its rooms (`Made`);
- `homeserver`: changes memberships in the gateway's model and, with `event=True`, hands the
  matching raw `m.room.member` event to `Events.handle`, as the inbox would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from mautrix.types import RoomID, UserID

import communities_appservice.index  # noqa: F401  (registers every feature)
from communities_appservice import config as config_module
from communities_appservice.config import Config
from communities_appservice.core.events import Events
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.db.community import Community
from communities_appservice.features.structure import Structure
from communities_appservice.rules.model import JoinMode, Role

from ...recording import RecordingGateway

SERVER = "example.org"
BOT = UserID("@communities:example.org")
OWNER = UserID("@owner:example.org")
ALICE = UserID("@alice:example.org")
BOB = UserID("@bob:example.org")
CAROL = UserID("@carol:example.org")
STRANGER = UserID("@stranger:elsewhere.net")  # not permitted to use the service
MAX_ADMINS = 3
MAX_GROUPS = 3


def make_config(**communities: Any) -> Config:
    """The test config; `communities` overrides keys of that section."""
    return config_module.parse(
        {
            "homeserver": {"address": "http://127.0.0.1:8008", "domain": SERVER},
            "appservice": {"as_token": "AS", "hs_token": "HS"},
            "communities": {"max_admins": MAX_ADMINS, "max_groups": MAX_GROUPS, **communities},
            "permissions": {SERVER: "creator"},
        },
        env={},
    )


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway(BOT, SERVER)


@pytest.fixture
async def service(
    config: Config, tables: Tables, gateway: RecordingGateway
) -> AsyncIterator[Service]:
    svc = Service(config, tables, gateway)
    yield svc
    # An operation the homeserver stalled retries in the background: never past the test.
    await svc.ops.stop()
    await svc.tasks.stop()


@pytest.fixture
def events(service: Service) -> Events:
    return Events(service)


@dataclass(frozen=True)
class Made:
    """A community built by `create_community`, and its rooms."""

    community: Community
    announcements: RoomID
    admins: RoomID
    groups: dict[str, RoomID]  # by name

    @property
    def space(self) -> RoomID:
        return self.community.space_id

    @property
    def rooms(self) -> list[RoomID]:
        """Every room of the community: space, announcements, groups, admins room."""
        return [self.space, self.announcements, *self.groups.values(), self.admins]


class CommunityMaker:
    """`await create_community(...)`: a community made as `!community create` makes it."""

    def __init__(self, service: Service) -> None:
        self.svc = service

    async def __call__(
        self,
        name: str = "Parents",
        groups: Iterable[str] = ("Kids", "Teens"),
        join_mode: JoinMode = JoinMode.APPROVAL,
        owner: UserID = OWNER,
        description: str = "",
    ) -> Made:
        community = await Structure(self.svc).create_community(
            owner, name, description, join_mode, list(groups)
        )
        return await rooms_of(self.svc, community)


async def rooms_of(svc: Service, community: Community) -> Made:
    """The rooms the records give a community."""
    rooms = await svc.db.rooms.of_community(community.space_id)
    by_role = {r.role: r.room_id for r in rooms if r.role != Role.GROUP}
    return Made(
        community=community,
        announcements=by_role[Role.ANNOUNCEMENTS],
        admins=by_role[Role.ADMINS],
        groups={r.name: r.room_id for r in rooms if r.role == Role.GROUP},
    )


@pytest.fixture
def create_community(service: Service) -> CommunityMaker:
    return CommunityMaker(service)


class Homeserver:
    """Memberships as the homeserver sees them, and the events it would send about them."""

    def __init__(self, gateway: RecordingGateway, events: Events) -> None:
        self.gw = gateway
        self.events = events
        self._ids = itertools.count(1)

    def membership(self, room_id: str, user: str) -> str | None:
        return self.gw.rooms[RoomID(room_id)].members.get(UserID(user))

    async def set(
        self,
        room_id: str,
        user: str,
        membership: str,
        *,
        sender: str | None = None,
        reason: str = "",
        event: bool = False,
    ) -> dict[str, Any]:
        """`user`'s membership in the room becomes `membership` (sent by `sender`, the user
        by default); with `event`, the raw event goes through `Events.handle`. Returns it."""
        room = self.gw.rooms[RoomID(room_id)]
        sender = sender or user
        prev = room.members.get(UserID(user))
        self.gw._set_member(room, UserID(user), membership, UserID(sender))  # the model's own
        content: dict[str, Any] = {"membership": membership}
        if reason:
            content["reason"] = reason
        raw: dict[str, Any] = {
            "type": "m.room.member",
            "state_key": user,
            "sender": sender,
            "room_id": room_id,
            "event_id": f"$member{next(self._ids)}",
            "content": content,
            "unsigned": {"prev_content": {"membership": prev}} if prev else {},
        }
        if event:
            await self.events.handle(raw)
        return raw

    async def join(self, room_id: str, user: str, *, event: bool = False) -> None:
        await self.set(room_id, user, "join", event=event)


@pytest.fixture
def homeserver(gateway: RecordingGateway, events: Events) -> Homeserver:
    return Homeserver(gateway, events)


def power_users(gateway: RecordingGateway, room_id: str) -> dict[str, int]:
    """The `users` of a room's current power levels in the gateway's model."""
    levels = gateway.rooms[RoomID(room_id)].state[("m.room.power_levels", "")]
    return dict(levels.get("users", {}))


def calls_of(gateway: RecordingGateway, method: str) -> list[tuple[Any, ...]]:
    """The recorded calls of one gateway method, their arguments only."""
    return [call[1:] for call in gateway.calls if call[0] == method]


async def actions(tables: Tables, space_id: str) -> list[str]:
    """The community's audit log, oldest first: the actions only."""
    return [e.action for e in reversed(await tables.audit.recent(RoomID(space_id), 100))]


async def until(probe: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll `probe` until it holds (what the test asserts next), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
