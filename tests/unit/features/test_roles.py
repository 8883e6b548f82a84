"""The roles feature end to end on the recording gateway: promoting and dismissing admins
(power levels written in every room, the admins room's membership), the `max_admins` limit,
the owner who cannot be dismissed, handing ownership on, and group admins (power in their
group only)."""

from __future__ import annotations

import pytest
from mautrix.types import UserID

from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.errors import Conflict, Forbidden, LimitReached
from communities_appservice.features.roles import Roles
from communities_appservice.rules.model import AdminRole

from ...recording import RecordingGateway
from .conftest import (
    ALICE,
    BOB,
    CAROL,
    MAX_ADMINS,
    OWNER,
    CommunityMaker,
    Homeserver,
    Made,
    actions,
    power_users,
)


@pytest.fixture
async def made(create_community: CommunityMaker, homeserver: Homeserver) -> Made:
    """A community whose space Alice, Bob and Carol have joined."""
    made = await create_community(groups=["Kids", "Teens"])
    for user in (ALICE, BOB, CAROL):
        await homeserver.join(made.space, user)
    return made


async def test_add_admin_everywhere(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    assert await Roles(service).add_admin(made.community, OWNER, ALICE) == []
    for room_id in made.rooms:
        assert power_users(gateway, room_id) == {OWNER: 100, ALICE: 100}
    assert gateway.rooms[made.admins].members[ALICE] == "invite"
    assert await tables.admins.roles(made.space) == {OWNER: "owner", ALICE: "admin"}
    assert (await actions(tables, made.space))[-1] == "admin add"


async def test_a_new_admin_is_shown_the_way_into_the_admins_room(
    made: Made, service: Service, gateway: RecordingGateway
) -> None:
    await Roles(service).add_admin(made.community, OWNER, ALICE)
    dm = await service.db.bot_dms.get(ALICE)
    assert dm is not None
    [told] = gateway.sent(dm)
    assert "You are now an admin of" in told["body"]
    assert f'href="https://matrix.to/#/{made.admins}"' in told["formatted_body"]


async def test_add_admin_needs_a_member(made: Made, service: Service, tables: Tables) -> None:
    with pytest.raises(Conflict, match="has not joined"):
        await Roles(service).add_admin(made.community, OWNER, UserID("@dave:example.org"))
    assert await tables.admins.roles(made.space) == {OWNER: "owner"}


async def test_remove_admin_everywhere(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    roles = Roles(service)
    await roles.add_admin(made.community, OWNER, ALICE)
    await roles.remove_admin(made.community, OWNER, ALICE)
    for room_id in made.rooms:
        assert power_users(gateway, room_id) == {OWNER: 100}
    assert gateway.rooms[made.admins].members[ALICE] == "leave"  # the invitation withdrawn
    assert await tables.admins.roles(made.space) == {OWNER: "owner"}
    assert (await actions(tables, made.space))[-2:] == ["admin add", "admin remove"]


async def test_the_admin_limit(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    roles = Roles(service)
    await roles.add_admin(made.community, OWNER, ALICE)
    await roles.add_admin(made.community, OWNER, BOB)
    assert len(await tables.admins.roles(made.space)) == MAX_ADMINS
    before = len(gateway.calls)
    with pytest.raises(LimitReached, match="already has 3 admins"):
        await roles.add_admin(made.community, OWNER, CAROL)
    assert [c[0] for c in gateway.calls[before:]] == ["membership"]  # looked, changed nothing
    assert CAROL not in await tables.admins.roles(made.space)
    assert CAROL not in power_users(gateway, made.space)


async def test_the_owner_cannot_be_removed(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    before = len(gateway.calls)
    with pytest.raises(Forbidden, match="owner cannot be removed"):
        await Roles(service).remove_admin(made.community, ALICE, OWNER)
    assert len(gateway.calls) == before
    assert await tables.admins.roles(made.space) == {OWNER: "owner"}


async def test_transfer_owner(made: Made, service: Service, tables: Tables) -> None:
    roles = Roles(service)
    await roles.add_admin(made.community, OWNER, ALICE)
    await roles.transfer_owner(made.community, OWNER, ALICE)
    assert await tables.admins.roles(made.space) == {
        OWNER: AdminRole.ADMIN,
        ALICE: AdminRole.OWNER,
    }
    community = await tables.communities.get(made.space)
    assert community is not None and community.owner == ALICE
    assert made.community.owner == ALICE
    [entry] = await tables.audit.recent(made.space, 1)
    assert (entry.action, entry.target, entry.detail) == ("owner transfer", ALICE, f"from {OWNER}")
    # The old owner is an admin now, and can be dismissed like one.
    await roles.remove_admin(made.community, ALICE, OWNER)
    assert await tables.admins.roles(made.space) == {ALICE: AdminRole.OWNER}


async def test_transfer_owner_only_to_an_admin(
    made: Made, service: Service, tables: Tables
) -> None:
    with pytest.raises(Conflict, match="make them an admin first"):
        await Roles(service).transfer_owner(made.community, OWNER, BOB)
    community = await tables.communities.get(made.space)
    assert community is not None and community.owner == OWNER


async def test_group_admins(
    made: Made,
    service: Service,
    gateway: RecordingGateway,
    tables: Tables,
    homeserver: Homeserver,
) -> None:
    kids = await service.find_group(made.community, "Kids")
    await homeserver.join(kids.room_id, BOB)
    roles = Roles(service)
    await roles.add_group_admin(made.community, kids, OWNER, BOB)
    assert power_users(gateway, kids.room_id) == {OWNER: 100, BOB: 50}
    for room_id in made.rooms:  # nowhere else
        if room_id != kids.room_id:
            assert BOB not in power_users(gateway, room_id)
    assert await tables.group_admins.of_room(kids.room_id) == [BOB]
    await roles.remove_group_admin(made.community, kids, OWNER, BOB)
    assert power_users(gateway, kids.room_id) == {OWNER: 100}
    assert (await actions(tables, made.space))[-2:] == ["group admin add", "group admin remove"]


async def test_group_admin_refusals(
    made: Made, service: Service, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    kids = await service.find_group(made.community, "Kids")
    roles = Roles(service)
    with pytest.raises(Conflict, match="has not joined Kids"):
        await roles.add_group_admin(made.community, kids, OWNER, BOB)
    await homeserver.join(kids.room_id, OWNER)
    with pytest.raises(Conflict, match="outranks a group admin"):
        await roles.add_group_admin(made.community, kids, OWNER, OWNER)
    with pytest.raises(Conflict, match="is not an admin of Kids"):
        await roles.remove_group_admin(made.community, kids, OWNER, BOB)
    assert power_users(gateway, kids.room_id) == {OWNER: 100}
