"""Property-based tests of the dispatcher (hypothesis): whatever a message says, the bot
answers once, in a line or two, never with "something went wrong"; and whatever a member
without rights types, no admin's change happens.

The community lives in a database of its own, in an event loop of this module's own (the
examples run one after the other in it), so that hypothesis drives plain functions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mautrix.types import UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core.service import Service
from communities_appservice.db import Tables, create_database
from communities_appservice.features.structure import Structure
from communities_appservice.rules.model import JoinMode

from ...fuzzing import budget
from ...recording import RecordingGateway
from .conftest import BOT, OWNER, SERVER, make_config

MEMBER = UserID("@member:example.org")
STRANGER = UserID("@stranger:elsewhere.net")
WORDS = st.sampled_from(
    [
        "info",
        "rename",
        "describe",
        "admin",
        "add",
        "remove",
        "group",
        "create",
        "ban",
        "unban",
        "link",
        "reset",
        "--qr",
        "join",
        "open",
        "rules",
        "set",
        "welcome",
        "log",
        "--limit",
        "requests",
        "approve",
        "deny",
        "operations",
        "cancel",
        "common",
        "owner",
        "transfer",
        "help",
        "suggest",
        "pending",
        "accept",
        "reject",
        "--group",
        "--page",
        "--community",
        "—description",
        '"',
        "“",
        "@member:example.org",
        "#1",
        "Kids",
        "∞",
        "שלום",
        "日本",
        "' OR 1=1",
        "<b>x</b>",
        "\n",
        "",
    ]
)
COMMANDS = st.lists(st.one_of(WORDS, st.text(max_size=20)), max_size=8).map(" ".join)


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    service: Service
    gateway: RecordingGateway
    room: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    loop = asyncio.new_event_loop()
    db = create_database(f"sqlite:{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    loop.run_until_complete(db.start())
    gateway = RecordingGateway(BOT, SERVER)
    service = Service(make_config(), Tables(db), gateway)

    async def build() -> str:
        community = await Structure(service).create_community(
            OWNER, "Fuzzed", "", JoinMode.OPEN, ["Kids"]
        )
        await service.db.members.add(community.space_id, MEMBER, 1)
        return community.space_id

    space = loop.run_until_complete(build())
    try:
        yield World(loop, service, gateway, space)
    finally:
        loop.run_until_complete(service.ops.stop())
        loop.run_until_complete(service.tasks.stop())
        loop.run_until_complete(db.stop())
        loop.close()


def _say(world: World, sender: UserID, text: str) -> list[str]:
    """Send `!community TEXT` in the space as `sender`; the replies' bodies."""
    dispatcher = Dispatcher(world.service)
    event = {
        "type": "m.room.message",
        "sender": sender,
        "room_id": world.room,
        "event_id": f"$fuzz{len(world.gateway.calls)}",
        "content": {"msgtype": "m.text", "body": f"!community {text}"},
    }
    incoming = dispatcher.parse_incoming(event)
    if incoming is None:
        return []
    before = len(world.gateway.sent(world.room))
    world.loop.run_until_complete(dispatcher.handle(incoming))
    return [str(m.get("body")) for m in world.gateway.sent(world.room)[before:]]


def _audit(world: World) -> list[str]:
    entries = world.loop.run_until_complete(world.service.db.audit.recent(world.room, 200))
    return [e.action for e in entries]


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=budget(150),
)


@FUZZ
@given(COMMANDS)
def test_a_stranger_gets_one_refusal_and_changes_nothing(world: World, text: str) -> None:
    before = _audit(world)
    replies = _say(world, STRANGER, text)
    assert len(replies) <= 1
    for body in replies:
        assert body.startswith("⚠️") and "went wrong" not in body, body
    assert _audit(world) == before


@FUZZ
@given(COMMANDS)
def test_a_member_is_answered_and_changes_no_admin_records(world: World, text: str) -> None:
    before = _audit(world)
    replies = _say(world, MEMBER, text)
    assert len(replies) <= 2  # the answer, and an image for `link --qr` (refused here)
    for body in replies:
        assert "went wrong" not in body, body
    added = _audit(world)[: len(_audit(world)) - len(before)]
    assert set(added) <= {"group suggest"}, added  # the one change a member may make
