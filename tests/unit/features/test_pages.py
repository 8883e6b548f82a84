"""Long lists are answered a page at a time, and no page outgrows one Matrix event."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core.notices import MAX_REPLY_HTML
from communities_appservice.core.service import Service
from communities_appservice.db.join_request import JoinRequest

from ...recording import RecordingGateway
from .conftest import OWNER, CommunityMaker, Made


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=())


async def ask(dispatcher: Dispatcher, gateway: RecordingGateway, room: RoomID, text: str) -> Any:
    event = {
        "type": "m.room.message",
        "sender": OWNER,
        "room_id": room,
        "event_id": f"$ask{len(gateway.calls)}",
        "content": {"msgtype": "m.text", "body": text},
    }
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    before = len(gateway.sent(room))
    await dispatcher.handle(incoming)
    [reply] = gateway.sent(room)[before:]
    return reply


async def knocks(service: Service, made: Made, count: int, reason: str = "") -> None:
    for i in range(count):
        user = UserID(f"@knocker{i:03d}:example.org")
        await service.db.join_requests.put(JoinRequest(made.space, user, made.space, reason, i))


async def test_requests_come_a_page_at_a_time(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    await knocks(service, made, 120)
    dispatcher = Dispatcher(service)
    first = await ask(dispatcher, gateway, made.admins, "!community requests")
    assert first["body"].count("• ") == 50 and "Page 1 of 3." in first["body"]
    assert "120 waiting" in first["body"]
    last = await ask(dispatcher, gateway, made.admins, "!community requests --page 3")
    assert last["body"].count("• ") == 20 and "Page 3 of 3." in last["body"]
    assert "@knocker119:example.org" in last["body"]
    wrong = await ask(dispatcher, gateway, made.admins, "!community requests --page zero")
    assert wrong["body"].startswith("⚠️ --page must be a whole number")


async def test_a_page_stays_within_one_event(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    await knocks(service, made, 60, reason="x" * 500)
    reply = await ask(Dispatcher(service), gateway, made.admins, "!community requests")
    assert len(reply["formatted_body"]) <= MAX_REPLY_HTML
    assert "more of this page not shown" in reply["body"]
