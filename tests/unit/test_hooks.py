"""Listeners through `Events.handle`: a listener that raises is isolated (the others still
run; the failure is logged with a reference), a membership change reaches only the listeners
of its change and room role (or the bot's own listeners), and `rules.membership.classify`.

The registry `core.hooks.HOOKS` is global: each test here runs on an empty one (the features'
own listeners set aside) and registers its listeners through the real decorators; the
registry is put back afterwards."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mautrix.types import RoomID, UserID

from communities_appservice import config
from communities_appservice.core import hooks
from communities_appservice.core.events import Events
from communities_appservice.core.hooks import MemberEvent, RawEvent, on_event, on_membership
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.db.community import Community
from communities_appservice.db.room import CommunityRoom
from communities_appservice.rules.membership import Change, classify
from communities_appservice.rules.model import CommunityState, Role

from .. import postgres
from ..recording import RecordingGateway

BOT = UserID("@communities:example.org")
ALICE = UserID("@alice:example.org")
BOB = UserID("@bob:example.org")
SPACE = RoomID("!space:example.org")
GROUP = RoomID("!group:example.org")
ELSEWHERE = RoomID("!elsewhere:example.org")
CONFIG = config.parse(
    {
        "homeserver": {"address": "http://127.0.0.1:8008", "domain": "example.org"},
        "appservice": {"as_token": "AS", "hs_token": "HS"},
    },
    env={},
)


# --- the registry, set aside -------------------------------------------------------------


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> hooks.Hooks:
    """An empty `HOOKS` for the test; monkeypatch puts the features' listeners back."""
    for name in ("events", "interrupted", "members", "jobs"):
        monkeypatch.setattr(hooks.HOOKS, name, type(getattr(hooks.HOOKS, name))())
    return hooks.HOOKS


@pytest.fixture(scope="module", params=postgres.backends())
async def module_tables(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Tables]:
    async with postgres.tables_on(
        request.param, tmp_path_factory.mktemp("db"), "communities_hooks"
    ) as t:
        yield t


@pytest.fixture
async def tables(module_tables: Tables) -> Tables:
    await module_tables.db.execute("DELETE FROM community_room")
    await module_tables.db.execute("DELETE FROM community")
    return module_tables


async def _community(tables: Tables, state: str = CommunityState.ACTIVE) -> None:
    await tables.communities.insert(Community(SPACE, "Parents", "", "open", ALICE, state, "12", 1))
    for room_id, role, position in ((SPACE, Role.SPACE, 0), (GROUP, Role.GROUP, 2)):
        await tables.rooms.insert(
            CommunityRoom(room_id, SPACE, role, str(role), "open", False, position, 1)
        )


@pytest.fixture
def events(tables: Tables) -> Events:
    return Events(Service(CONFIG, tables, RecordingGateway(BOT, "example.org")))


def member(
    room_id: str, user: str, new: str, prev: str = "", sender: str | None = None
) -> RawEvent:
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": sender or user,
        "room_id": room_id,
        "event_id": "$m",
        "content": {"membership": new, "reason": "why"},
        "unsigned": {"prev_content": {"membership": prev}} if prev else {},
    }


# --- isolation ------------------------------------------------------------------------------


async def test_a_listener_that_raises_is_isolated(
    events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    @on_event("org.example.test")
    async def broken(svc: Service, event: RawEvent) -> None:
        seen.append("broken")
        raise RuntimeError("boom")

    @on_event("org.example.test")
    async def fine(svc: Service, event: RawEvent) -> None:
        seen.append("fine")

    with caplog.at_level(logging.ERROR, logger="communities.events"):
        await events.handle({"type": "org.example.test", "event_id": "$1", "content": {}})
    assert seen == ["broken", "fine"]
    [record] = [r for r in caplog.records if r.name == "communities.events"]
    assert record.levelno == logging.ERROR
    assert "$1" in record.getMessage() and "(ref " in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_a_membership_listener_that_raises_is_isolated(
    events: Events, tables: Tables, caplog: pytest.LogCaptureFixture
) -> None:
    await _community(tables)
    seen: list[str] = []

    @on_membership(Change.JOIN, roles=[Role.SPACE])
    async def broken(svc: Service, event: MemberEvent) -> None:
        raise RuntimeError("boom")

    @on_membership(Change.JOIN, roles=[Role.SPACE])
    async def fine(svc: Service, event: MemberEvent) -> None:
        seen.append(event.user)

    @on_event("m.room.member")
    async def raw(svc: Service, event: RawEvent) -> None:
        seen.append("raw")

    with caplog.at_level(logging.ERROR, logger="communities.events"):
        await events.handle(member(SPACE, BOB, "join"))
    assert seen == [BOB, "raw"]
    [record] = [r for r in caplog.records if r.name == "communities.events"]
    assert "broken" in record.getMessage() and "(ref " in record.getMessage()


# --- classification and routing -----------------------------------------------------------


class Heard:
    """Which test listener heard what: (listener, change, role, prev, reason)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Change, Role | None, str, str]] = []

    def listener(self, name: str) -> Any:
        async def heard(svc: Service, event: MemberEvent) -> None:
            self.log.append((name, event.change, event.role, event.prev, event.reason))

        return heard


@pytest.fixture
def heard(registry: hooks.Hooks) -> Heard:
    """Test listeners, registered into the emptied `registry`."""
    heard = Heard()
    on_membership(Change.JOIN, roles=[Role.GROUP])(heard.listener("group join"))
    on_membership(Change.LEAVE, Change.KICK, roles=[Role.SPACE])(heard.listener("space left"))
    on_membership(Change.INVITE, bot=True)(heard.listener("bot invited"))
    on_membership(Change.JOIN, roles=[Role.SPACE], early=True)(heard.listener("early"))
    return heard


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (member(GROUP, BOB, "join"), [("group join", Change.JOIN, Role.GROUP, "", "why")]),
        (
            member(SPACE, BOB, "join", "invite"),
            [("early", Change.JOIN, Role.SPACE, "invite", "why")],
        ),
        (
            member(SPACE, BOB, "leave", "join"),
            [("space left", Change.LEAVE, Role.SPACE, "join", "why")],
        ),
        (
            member(SPACE, BOB, "leave", "join", sender=ALICE),
            [("space left", Change.KICK, Role.SPACE, "join", "why")],
        ),
        (member(GROUP, BOB, "leave", "join"), []),  # nobody listens to group leaves
        (member(SPACE, BOB, "ban", "join", sender=ALICE), []),
        (member(GROUP, BOB, "join", "join"), []),  # a new display name: no change
        (member(ELSEWHERE, BOB, "join"), []),  # not a community room
        (member(GROUP, BOT, "join"), []),  # the bot's own: only bot listeners
        (
            member(ELSEWHERE, BOT, "invite", sender=ALICE),
            [("bot invited", Change.INVITE, None, "", "why")],
        ),
        (member(SPACE, BOB, "invite", sender=ALICE), []),  # someone else's invite
    ],
)
async def test_membership_reaches_only_matching_listeners(
    events: Events, tables: Tables, heard: Heard, event: RawEvent, expected: list[Any]
) -> None:
    await _community(tables)
    await events.handle(event)
    assert heard.log == expected


async def test_early_listeners_run_first(events: Events, tables: Tables) -> None:
    await _community(tables)
    order: list[str] = []

    @on_membership(Change.JOIN, roles=[Role.SPACE])
    async def late(svc: Service, event: MemberEvent) -> None:
        order.append("late")

    @on_membership(Change.JOIN, roles=[Role.SPACE], early=True)
    async def early(svc: Service, event: MemberEvent) -> None:
        order.append("early")

    await events.handle(member(SPACE, BOB, "join"))
    assert order == ["early", "late"]


async def test_a_community_not_active_is_no_community(
    events: Events, tables: Tables, heard: Heard
) -> None:
    await _community(tables, state=CommunityState.CREATING)
    await events.handle(member(GROUP, BOB, "join"))
    await events.handle(member(GROUP, BOT, "invite", sender=ALICE))
    assert heard.log == [("bot invited", Change.INVITE, None, "", "why")]


# --- classify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prev", "new", "sender", "change"),
    [
        ("", "join", ALICE, Change.JOIN),
        ("invite", "join", ALICE, Change.JOIN),
        ("leave", "join", ALICE, Change.JOIN),
        ("join", "join", ALICE, None),  # display name or avatar
        ("", "invite", BOB, Change.INVITE),
        ("leave", "knock", ALICE, Change.KNOCK),
        ("join", "ban", BOB, Change.BAN),
        ("join", "leave", ALICE, Change.LEAVE),
        ("invite", "leave", ALICE, Change.LEAVE),  # an invitation rejected
        ("knock", "leave", ALICE, Change.LEAVE),  # a knock withdrawn
        ("join", "leave", BOB, Change.KICK),
        ("knock", "leave", BOB, Change.KICK),  # a knock denied
        ("invite", "leave", BOB, Change.KICK),  # an invitation withdrawn
        ("ban", "leave", BOB, Change.UNBAN),
        ("ban", "ban", BOB, None),
        ("join", "something", ALICE, None),  # an unknown membership
    ],
)
def test_classify(prev: str, new: str, sender: str, change: Change | None) -> None:
    assert classify(prev, new, sender, ALICE) == change
