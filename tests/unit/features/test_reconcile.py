"""Reconciliation through the recording gateway: drift repaired, and one community's
failure never stops the pass over the others."""

from __future__ import annotations

import logging

import pytest

from communities_appservice.core.reconcile import Reconciler
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.tasks import Tasks

from ...recording import RecordingGateway
from .conftest import CommunityMaker, Made


def unlink_announcements(gateway: RecordingGateway, made: Made) -> None:
    """Someone with the power to do it removed the announcement room from the space."""
    gateway.rooms[made.space].state[("m.space.child", made.announcements)] = {}


def linked(gateway: RecordingGateway, made: Made) -> bool:
    content = gateway.rooms[made.space].state.get(("m.space.child", made.announcements))
    return bool(content and content.get("via"))


async def test_a_removed_link_is_repaired(
    service: Service, gateway: RecordingGateway, create_community: CommunityMaker
) -> None:
    made = await create_community("Parents")
    unlink_announcements(gateway, made)
    findings = await Reconciler(service).community(made.community)
    assert linked(gateway, made)
    assert any("the link to" in r for r in findings.repairs), findings


async def test_one_community_failing_does_not_stop_the_others(
    service: Service,
    gateway: RecordingGateway,
    create_community: CommunityMaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = await create_community("First", groups=())
    second = await create_community("Second", groups=())
    for made in (first, second):
        unlink_announcements(gateway, made)
    gateway.fail("space_children", RuntimeError("a bug in one community's pass"))

    failed = await Reconciler(service).everything()

    assert len(failed) == 1, failed
    [broken] = [m for m in (first, second) if m.space in failed]
    [healthy] = [m for m in (first, second) if m is not broken]
    assert linked(gateway, healthy)  # the other community was reconciled all the same
    assert not linked(gateway, broken)
    [record] = [r for r in caplog.records if "reconciling" in r.getMessage()]
    assert record.levelno == logging.ERROR and "ref" in record.getMessage()


async def test_the_reconciliation_loop_ends_with_the_service_that_owns_it(
    service: Service, tables: Tables, gateway: RecordingGateway
) -> None:
    owner = Tasks()  # empty, as the service's is when the service is made
    svc = Service(service.config, tables, gateway, owner)
    Reconciler(svc).start()
    [loop] = list(owner._tasks)  # the service's task is the app's (not one of its own)
    await owner.stop()
    assert loop.done() and len(owner) == 0


async def test_an_older_announcement_room_gets_the_redaction_level(
    service: Service, gateway: RecordingGateway, create_community: CommunityMaker
) -> None:
    """Made by the previous version, members could not take back their reactions there."""
    made = await create_community("Parents")
    levels = gateway.rooms[made.announcements].state[("m.room.power_levels", "")]
    del levels["events"]["m.room.redaction"]
    findings = await Reconciler(service).community(made.community)
    levels = gateway.rooms[made.announcements].state[("m.room.power_levels", "")]
    assert levels["events"]["m.room.redaction"] == 0
    assert any("Announcements" in r for r in findings.repairs), findings


async def test_the_bots_own_power_levels_are_checked_only_when_they_differ(
    service: Service, create_community: CommunityMaker
) -> None:
    """`admin add` writes power levels into every room, and each comes back as an event: one
    with what the records demand needs no reconciliation of its room; a stale one does."""
    made = await create_community("Parents")
    room = await service.db.rooms.get(made.groups["Kids"])
    assert room is not None
    wanted = await service.power_for(made.community, room)
    reconciler = Reconciler(service)

    def own(content: dict[str, object]) -> dict[str, object]:
        return {"type": "m.room.power_levels", "state_key": "", "room_id": room.room_id,
                "sender": service.bot, "content": content}  # fmt: skip

    await reconciler._own_power(room.room_id, own(wanted))
    assert reconciler._pending == {}
    stale = {**wanted, "users": {}}
    await reconciler._own_power(room.room_id, own(stale))
    assert reconciler._pending == {room.room_id: {"m.room.power_levels"}}
