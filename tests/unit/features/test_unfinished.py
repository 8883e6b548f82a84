"""An operation that cannot finish becomes a problem of its community after a while, and an
admin can list unfinished operations and cancel one (undone where its kind can undo)."""

from __future__ import annotations

import aiohttp
import pytest

from communities_appservice.core import operations
from communities_appservice.core.groups import Groups
from communities_appservice.core.operations import OpState, stalled_key
from communities_appservice.core.service import Service
from communities_appservice.errors import Conflict, Invalid, NotFound, Pending
from communities_appservice.features.roles import Roles
from communities_appservice.features.unfinished import Unfinished
from communities_appservice.rules.model import GroupAccess

from ...recording import RecordingGateway
from .conftest import ALICE, OWNER, CommunityMaker, Homeserver, until

DOWN = aiohttp.ClientConnectionError("the homeserver is away")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(operations, "RETRY_MAX", 0.02)
    monkeypatch.setattr(operations, "STALLED_AFTER", 0.0)


async def test_a_stalled_operation_is_reported_listed_and_undone_on_cancel(
    service: Service, gateway: RecordingGateway, create_community: CommunityMaker
) -> None:
    made = await create_community(groups=())
    gateway.fail("create_room", DOWN, times=1_000_000)
    with pytest.raises(Pending):
        await Groups(service).create(made.community, OWNER, "Stuck", "", GroupAccess.OPEN)
    [op] = await Unfinished(service).of(made.community)
    assert op.kind == "group create"

    async def reported() -> bool:
        return stalled_key(op.id) in await service.db.problems.of(made.space)

    async def told() -> bool:  # the notice follows the problem's record
        return any(f"operations cancel #{op.id}" in m["body"] for m in gateway.sent(made.admins))

    await until(reported, "the stalled operation to be a problem")
    await until(told, "the admins to be told how to cancel the stalled operation")

    said = await Unfinished(service).cancel(made.community, OWNER, f"#{op.id}")
    assert said == f"Undoing operation #{op.id} (group create)."

    async def undone() -> bool:
        got = await service.db.operations.get(op.id)
        return got is not None and got.state == OpState.UNDONE

    await until(undone, "the cancelled operation to be undone")
    assert await Unfinished(service).of(made.community) == []
    assert stalled_key(op.id) not in await service.db.problems.of(made.space)
    [entry, *_] = await service.db.audit.recent(made.space, 5)
    assert (entry.action, entry.target) == ("operation cancel", f"#{op.id}")


async def test_an_operation_that_cannot_undo_is_stopped(
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=())
    await homeserver.join(made.space, ALICE)
    gateway.fail("send_state", DOWN, times=1_000_000)
    with pytest.raises(Pending):
        await Roles(service).add_admin(made.community, OWNER, ALICE)
    [op] = await Unfinished(service).of(made.community)
    said = await Unfinished(service).cancel(made.community, OWNER, str(op.id))
    assert "will not be tried again" in said
    got = await service.db.operations.get(op.id)
    assert got is not None and got.state == OpState.FAILED
    assert got.outcome == f"cancelled by {OWNER}"
    with pytest.raises(Conflict):
        await Unfinished(service).cancel(made.community, OWNER, str(op.id))


@pytest.mark.parametrize(("ref", "error"), [("#x", Invalid), ("12a", Invalid), ("#999", NotFound)])
async def test_cancel_names_a_real_operation_of_this_community(
    service: Service, create_community: CommunityMaker, ref: str, error: type[Exception]
) -> None:
    made = await create_community(groups=())
    with pytest.raises(error):
        await Unfinished(service).cancel(made.community, OWNER, ref)
