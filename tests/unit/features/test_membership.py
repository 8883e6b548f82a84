"""The membership listeners end to end, from raw `m.room.member` events through
`Events.handle` to the recording gateway: joining the space (a member, invited to the
announcements), joining a group, leaving the space (out of the announcements and, with
`leave_space_leaves_groups`, of this community's groups only), a group admin leaving their
group, and the bot's own invitations (accepted from permitted users, declined otherwise)."""

from __future__ import annotations

import pytest
from mautrix.types import RoomID

from communities_appservice.core.events import Events
from communities_appservice.core.reconcile import Reconciler
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.features.membership import FIXES_PER_PASS
from communities_appservice.features.roles import Roles
from communities_appservice.rules.model import AdminRole

from ...recording import RecordingGateway
from .conftest import (
    ALICE,
    BOB,
    BOT,
    OWNER,
    STRANGER,
    CommunityMaker,
    Homeserver,
    Made,
    make_config,
    power_users,
)


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids", "Teens"])


async def test_joining_the_space(
    made: Made, homeserver: Homeserver, tables: Tables, gateway: RecordingGateway
) -> None:
    await homeserver.join(made.space, ALICE, event=True)
    assert await tables.members.is_member(made.space, ALICE)
    assert homeserver.membership(made.announcements, ALICE) == "invite"
    assert ("invite", made.announcements, ALICE, "Member of Parents") in gateway.calls
    assert homeserver.membership(made.groups["Kids"], ALICE) is None  # groups: by choice


async def test_an_admin_joining_the_space_is_invited_to_every_group(
    made: Made, homeserver: Homeserver, tables: Tables
) -> None:
    await tables.admins.put(made.space, ALICE, AdminRole.ADMIN, 0)
    await homeserver.join(made.groups["Teens"], ALICE)  # there already: not invited again
    await homeserver.join(made.space, ALICE, event=True)
    assert homeserver.membership(made.groups["Kids"], ALICE) == "invite"
    assert homeserver.membership(made.groups["Teens"], ALICE) == "join"
    assert homeserver.membership(made.announcements, ALICE) == "invite"


async def test_joining_the_space_again_invites_nobody_twice(
    made: Made, homeserver: Homeserver, gateway: RecordingGateway
) -> None:
    await homeserver.join(made.announcements, ALICE)
    await homeserver.join(made.space, ALICE, event=True)
    assert [c for c in gateway.calls if c[0] == "invite"] == []


async def test_joining_a_group(made: Made, homeserver: Homeserver) -> None:
    await homeserver.join(made.groups["Kids"], ALICE, event=True)
    assert homeserver.membership(made.space, ALICE) == "invite"
    assert homeserver.membership(made.announcements, ALICE) == "invite"


async def _member_everywhere(homeserver: Homeserver, made: Made) -> None:
    for room_id in (made.space, made.announcements, *made.groups.values()):
        await homeserver.join(room_id, ALICE)


async def test_leaving_the_space(
    made: Made, homeserver: Homeserver, tables: Tables, gateway: RecordingGateway
) -> None:
    await _member_everywhere(homeserver, made)
    await tables.members.add(made.space, ALICE, 1)
    await homeserver.set(made.space, ALICE, "leave", event=True)
    assert not await tables.members.is_member(made.space, ALICE)
    for room_id in (made.announcements, *made.groups.values()):
        assert homeserver.membership(room_id, ALICE) == "leave"
        assert ("kick", room_id, ALICE, "Left Parents") in gateway.calls


async def test_leaving_the_space_keeps_the_groups_when_configured(
    made: Made, tables: Tables, gateway: RecordingGateway
) -> None:
    keep = Service(make_config(leave_space_leaves_groups=False), tables, gateway)
    homeserver = Homeserver(gateway, Events(keep))
    await _member_everywhere(homeserver, made)
    await homeserver.set(made.space, ALICE, "leave", event=True)
    assert homeserver.membership(made.announcements, ALICE) == "leave"
    for room_id in made.groups.values():
        assert homeserver.membership(room_id, ALICE) == "join"


async def test_leaving_one_space_leaves_only_its_groups(
    made: Made, create_community: CommunityMaker, homeserver: Homeserver
) -> None:
    other = await create_community(name="Neighbours", groups=["Garden"])
    await _member_everywhere(homeserver, made)
    await homeserver.join(other.space, ALICE)
    await homeserver.join(other.groups["Garden"], ALICE)
    await homeserver.set(made.space, ALICE, "leave", event=True)
    assert homeserver.membership(made.groups["Kids"], ALICE) == "leave"
    assert homeserver.membership(other.groups["Garden"], ALICE) == "join"


async def test_a_declined_invitation_to_the_space_removes_nothing(
    made: Made, homeserver: Homeserver, gateway: RecordingGateway
) -> None:
    await homeserver.join(made.groups["Kids"], ALICE)
    await homeserver.set(made.space, ALICE, "invite", sender=OWNER)
    await homeserver.set(made.space, ALICE, "leave", event=True)  # rejected, never joined
    assert homeserver.membership(made.groups["Kids"], ALICE) == "join"
    assert [c for c in gateway.calls if c[0] == "kick"] == []


async def test_a_group_admin_who_leaves_is_no_longer_its_admin(
    made: Made,
    service: Service,
    homeserver: Homeserver,
    tables: Tables,
    gateway: RecordingGateway,
) -> None:
    kids = await service.find_group(made.community, "Kids")
    await homeserver.join(kids.room_id, BOB)
    await Roles(service).add_group_admin(made.community, kids, OWNER, BOB)
    await homeserver.set(kids.room_id, BOB, "leave", event=True)
    assert await tables.group_admins.of_room(kids.room_id) == []
    assert BOB not in power_users(gateway, kids.room_id)
    [entry] = await tables.audit.recent(made.space, 1)
    assert (entry.action, entry.actor, entry.detail) == ("group admin left", BOB, "Kids")


# --- the bot's own invitations ------------------------------------------------------------


async def test_the_bot_accepts_an_invitation_from_a_permitted_user(
    homeserver: Homeserver, gateway: RecordingGateway
) -> None:
    room_id = gateway.add_room(ALICE)
    await homeserver.set(room_id, BOT, "invite", sender=ALICE, event=True)
    assert homeserver.membership(room_id, BOT) == "join"
    assert ("join", room_id, None) in gateway.calls


async def test_the_bot_declines_others(homeserver: Homeserver, gateway: RecordingGateway) -> None:
    room_id: RoomID = gateway.add_room(STRANGER)
    await homeserver.set(room_id, BOT, "invite", sender=STRANGER, event=True)
    assert homeserver.membership(room_id, BOT) == "leave"
    assert ("leave", room_id, "You are not allowed to use this service.") in gateway.calls
    assert [c for c in gateway.calls if c[0] == "join"] == []


# --- drift: the sweep of one member list per pass ------------------------------------------


async def sweep(service: Service, made: Made, passes: int) -> list[str]:
    """`passes` reconciliation passes over the community; every repair they made."""
    reconciler = Reconciler(service)
    repairs: list[str] = []
    for _ in range(passes):
        repairs += (await reconciler.community(made.community)).repairs
    return repairs


async def test_a_member_never_invited_to_the_announcements_is_invited(
    made: Made, homeserver: Homeserver, tables: Tables, service: Service
) -> None:
    await homeserver.join(made.space, ALICE)  # the router never saw it (its event was lost)
    assert homeserver.membership(made.announcements, ALICE) is None
    repairs = await sweep(service, made, 2)  # the space's list, then the announcements'
    assert await tables.members.is_member(made.space, ALICE)
    assert homeserver.membership(made.announcements, ALICE) == "invite"
    assert repairs == [
        "📢 Parents · Announcements: members of the space invited who never had been: 1"
    ]


async def test_a_member_who_left_the_announcements_is_left_alone(
    made: Made, homeserver: Homeserver, tables: Tables, service: Service
) -> None:
    await homeserver.join(made.space, ALICE)
    await tables.members.add(made.space, ALICE, 1)
    await homeserver.set(made.announcements, ALICE, "leave")  # their own choice
    assert await sweep(service, made, 4) == []
    assert homeserver.membership(made.announcements, ALICE) == "leave"


async def test_someone_gone_from_the_space_is_removed_from_announcements_and_groups(
    made: Made, homeserver: Homeserver, tables: Tables, service: Service
) -> None:
    await _member_everywhere(homeserver, made)
    await tables.members.add(made.space, ALICE, 1)
    await homeserver.set(made.space, ALICE, "leave")  # the router never saw this either
    repairs = await sweep(service, made, 4)  # space, announcements, Kids, Teens
    assert not await tables.members.is_member(made.space, ALICE)
    for room_id in (made.announcements, *made.groups.values()):
        assert homeserver.membership(room_id, ALICE) == "leave"
    assert len(repairs) == 3 and all(r.endswith("who had left the community: 1") for r in repairs)


async def test_groups_are_not_swept_when_leaving_the_space_keeps_them(
    made: Made, homeserver: Homeserver, tables: Tables, gateway: RecordingGateway
) -> None:
    svc = Service(make_config(leave_space_leaves_groups=False), tables, gateway)
    await _member_everywhere(homeserver, made)
    await homeserver.set(made.space, ALICE, "leave")
    await sweep(svc, made, 6)
    assert homeserver.membership(made.announcements, ALICE) == "leave"
    for room_id in made.groups.values():
        assert homeserver.membership(room_id, ALICE) == "join"


async def test_one_pass_reads_one_member_list_and_fixes_a_bounded_number(
    made: Made, homeserver: Homeserver, tables: Tables, service: Service, gateway: RecordingGateway
) -> None:
    newcomers = [f"@new{i:03}:example.org" for i in range(FIXES_PER_PASS + 5)]
    for user in newcomers:
        await homeserver.join(made.space, user)
    await sweep(service, made, 1)
    assert [c for c in gateway.calls if c[0] == "members"] == [("members", made.space)]
    gateway.calls.clear()
    await sweep(service, made, 1)
    invited = [c for c in gateway.calls if c[0] == "invite"]
    assert len(invited) == FIXES_PER_PASS  # the other 5 on a later pass
    assert [c for c in gateway.calls if c[0] == "members"] == [("members", made.announcements)]


async def test_someone_the_router_has_not_recorded_yet_is_not_removed(
    made: Made, homeserver: Homeserver, service: Service
) -> None:
    await _member_everywhere(homeserver, made)  # in the space, but not in the record yet
    reconciler = Reconciler(service)
    await reconciler.community(made.community)  # would record them: skip that turn
    await service.db.members.remove(made.space, ALICE)
    await reconciler.community(made.community)  # announcements: joined, unrecorded
    assert homeserver.membership(made.announcements, ALICE) == "join"


async def test_a_member_back_after_the_bot_removed_them_is_invited_again(
    made: Made, homeserver: Homeserver, tables: Tables, service: Service
) -> None:
    """They left the space (the bot removed them from the announcements), came back, and a
    crash cut that join short: the sweep invites them; who left by themselves stays out."""
    await homeserver.join(made.space, ALICE)
    await homeserver.join(made.space, BOB)
    for user in (ALICE, BOB):
        await tables.members.add(made.space, user, 1)
    await homeserver.set(made.announcements, ALICE, "leave", sender=BOT)
    await homeserver.set(made.announcements, BOB, "leave")
    await sweep(service, made, 2)
    assert homeserver.membership(made.announcements, ALICE) == "invite"
    assert homeserver.membership(made.announcements, BOB) == "leave"
