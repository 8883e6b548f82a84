"""An event whose work fails for a transient reason (the homeserver answers 502, the
database is locked for a moment) is tried again, in its room's order, until it is done;
what was already done is not done twice, and a restart goes on with it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from communities_appservice.core.events import Events
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.db.inbox import content_digest
from communities_appservice.features.welcome import Welcome
from communities_appservice.matrix import router as router_module
from communities_appservice.matrix.errors import MatrixError
from communities_appservice.matrix.router import Router
from communities_appservice.rules.model import JoinMode

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, OWNER, CommunityMaker, Homeserver, Made, calls_of, until

BAD_GATEWAY = MatrixError("M_UNKNOWN", "Bad Gateway", 502)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(router_module, "RETRY_MAX", 0.05)


@pytest.fixture
async def router(tables: Tables, events: Events) -> AsyncIterator[Router]:
    running = Router(tables, events.handle, events.interrupted, gave_up=events.gave_up)
    await running.resume()
    yield running
    await running.stop()


async def deliver(router: Router, txn: str, *events: dict[str, Any]) -> None:
    """What the HTTP server does with a transaction; then wait until all of it is handled."""
    await router.accept(txn, list(events), content_digest(list(events)))
    await router.wait_idle()


async def joined(homeserver: Homeserver, made: Made, user: str = ALICE) -> dict[str, Any]:
    """`user` joins the space; the raw event, not yet delivered."""
    return await homeserver.set(made.space, user, "join")


def invites_to(gateway: RecordingGateway, room_id: str, user: str) -> int:
    return sum(1 for c in calls_of(gateway, "invite") if c[0] == room_id and c[1] == user)


async def test_an_invitation_lost_to_an_outage_is_retried(
    router: Router,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
    tables: Tables,
) -> None:
    made = await create_community(groups=())
    gateway.fail("invite", BAD_GATEWAY, times=2)
    await deliver(router, "t1", await joined(homeserver, made))
    assert homeserver.membership(made.announcements, ALICE) == "invite"
    assert invites_to(gateway, made.announcements, ALICE) == 3  # two refused, one done
    assert await tables.members.is_member(made.space, ALICE)
    assert await tables.inbox.pending() == []


async def test_what_was_done_is_not_done_again(
    router: Router,
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    """The welcome DM fails once: it is sent once in the end, and the invitation that had
    succeeded is not sent a second time."""
    made = await create_community(groups=())
    await Welcome(service).set_welcome(made.community, OWNER, "Hello!")
    real_send = gateway.send_message
    failed: list[str] = []

    async def send_message(room_id: Any, event_type: str, content: Any, txn_id: str = "") -> Any:
        if "Hello!" in str(content.get("body")) and not failed:
            failed.append(txn_id)
            raise BAD_GATEWAY
        return await real_send(room_id, event_type, content, txn_id)

    gateway.send_message = send_message  # type: ignore[method-assign]
    await deliver(router, "t1", await joined(homeserver, made))
    [dm] = await service.db.db.fetch("SELECT room_id FROM bot_dm WHERE user_id=$1", ALICE)
    welcomes = [c for c in gateway.sent(dm["room_id"]) if "Hello!" in c["body"]]
    assert len(welcomes) == 1 and failed
    assert await service.db.welcomed.has(made.space, ALICE)
    assert invites_to(gateway, made.announcements, ALICE) == 1


async def test_a_knock_is_announced_once_when_its_notice_fails_once(
    router: Router,
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=(), join_mode=JoinMode.APPROVAL)
    before = len(gateway.sent(made.admins))
    gateway.fail("send_message", BAD_GATEWAY)
    knock = await homeserver.set(made.space, ALICE, "knock", reason="hi")
    await deliver(router, "t1", knock)
    announced = gateway.sent(made.admins)[before:]
    assert len(announced) == 1 and ALICE in announced[0]["body"]
    assert await service.db.join_requests.get(made.space, ALICE) is not None


async def test_a_retry_goes_on_after_a_restart(
    tables: Tables,
    events: Events,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=())
    gateway.fail("invite", BAD_GATEWAY, times=10_000)
    first = Router(tables, events.handle, events.interrupted)
    await first.resume()
    event = await joined(homeserver, made)
    await first.accept("t1", [event], content_digest([event]))

    async def retrying() -> bool:
        return any(item.retrying for item in await tables.inbox.pending())

    await until(retrying, "the event to be marked for retry")
    await first.stop()  # the process goes down while the homeserver is still failing

    gateway._failures.clear()  # the homeserver is back
    interrupted: list[dict[str, Any]] = []

    async def told(event: dict[str, Any]) -> None:
        interrupted.append(event)

    second = Router(tables, events.handle, told)
    await second.resume()
    await second.wait_idle()
    await second.stop()
    assert homeserver.membership(made.announcements, ALICE) == "invite"
    assert interrupted == []  # retried, not reported as cut short
    assert await tables.inbox.pending() == []


async def test_a_database_error_does_not_drop_the_rooms_queue(
    router: Router,
    tables: Tables,
    homeserver: Homeserver,
    create_community: CommunityMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = await create_community(groups=())
    real_done = tables.inbox.done
    locked: list[int] = []

    async def done(seq: int) -> None:
        if not locked:
            locked.append(seq)
            raise sqlite3.OperationalError("database is locked")
        await real_done(seq)

    monkeypatch.setattr(tables.inbox, "done", done)
    first = await joined(homeserver, made, ALICE)
    second = await homeserver.set(made.space, OWNER, "leave")
    await deliver(router, "t1", first, second)
    assert locked and await tables.inbox.pending() == []
    assert homeserver.membership(made.announcements, ALICE) == "invite"


async def test_an_event_failing_for_an_hour_is_given_up_and_reported(
    router: Router,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(router_module, "RETRY_FOR", 0.05)  # an hour, in this test
    made = await create_community(groups=())
    before = len(gateway.sent(made.admins))
    gateway.fail("invite", BAD_GATEWAY, times=10_000)
    await deliver(router, "t1", await joined(homeserver, made))
    [report] = gateway.sent(made.admins)[before:]
    assert "failed (reference " in report["body"]
    assert report["m.mentions"] == {}


async def test_work_refused_for_good_is_reported_once_an_hour(
    router: Router,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=())
    before = len(gateway.sent(made.admins))
    refused = MatrixError("M_FORBIDDEN", "no", 403)
    gateway.fail("invite", refused, times=2)  # the invitation to the announcements
    await deliver(router, "t1", await joined(homeserver, made, ALICE))
    await deliver(router, "t2", await joined(homeserver, made, BOB))
    reports = gateway.sent(made.admins)[before:]
    assert len(reports) == 1 and "reference" in reports[0]["body"]
