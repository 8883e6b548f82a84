"""The structure feature end to end on the recording gateway: creating a community (each
room made once, marker, space links and power levels in the recorded state, the community
active, the audit entry), rename and describe, creating, adopting and removing groups, the
group limit, a refusal in the middle of `create` undoing everything, and an outage leaving
the operation pending."""

from __future__ import annotations

import inspect
from typing import Any

import aiohttp
import pytest
from mautrix.types import RoomID

from communities_appservice.core.groups import Groups
from communities_appservice.core.reconcile import Reconciler
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.errors import Forbidden, LimitReached, Pending, Undone
from communities_appservice.features.structure import Structure
from communities_appservice.matrix.errors import MatrixError
from communities_appservice.rules.model import (
    MARKER_EVENT,
    CommunityState,
    GroupAccess,
    JoinMode,
    Role,
)
from communities_appservice.tasks import Tasks

from ...recording import RecordingGateway
from .conftest import (
    ALICE,
    BOT,
    MAX_GROUPS,
    OWNER,
    STRANGER,
    CommunityMaker,
    Homeserver,
    actions,
    calls_of,
    power_users,
)


def state(gateway: RecordingGateway, room_id: str, event_type: str, key: str = "") -> Any:
    return gateway.rooms[RoomID(room_id)].state.get((event_type, key))


def refuse_create_room_named(
    monkeypatch: pytest.MonkeyPatch, gateway: RecordingGateway, name: str, error: Exception
) -> None:
    """The homeserver refuses the `createRoom` of the room called `name`, a later call than
    the first: `fail` makes the *next* call fail, so it is armed just before that one."""
    original = gateway.create_room

    async def create_room(request: dict[str, Any]) -> RoomID:
        if request.get("name") == name:
            gateway.fail("create_room", error)
        return await original(request)

    monkeypatch.setattr(gateway, "create_room", create_room)


# --- create -------------------------------------------------------------------------------


async def test_create_makes_each_room_once(
    create_community: CommunityMaker, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=["Kids", "Teens"])
    names = [request["name"] for (request,) in calls_of(gateway, "create_room")]
    assert names == [
        "Parents",
        "📢 Parents · Announcements",
        "Kids",
        "Teens",
        "🛡️ Parents · Admins",
    ]
    assert set(gateway.rooms) == set(made.rooms)
    assert gateway.aliases == {}  # the operation's temporary tags are released
    for room_id in made.rooms:
        assert gateway.rooms[room_id].members[BOT] == "join"
    # The owner: invited to the space and the admins room; to the space's rooms once joined.
    invited = {room_id for room_id in made.rooms if OWNER in gateway.rooms[room_id].members}
    assert invited == {made.space, made.admins}


async def test_the_owner_is_invited_to_the_spaces_rooms_once_they_join_it(
    create_community: CommunityMaker, homeserver: Homeserver
) -> None:
    made = await create_community(groups=["Kids", "Teens"])
    await homeserver.join(made.space, OWNER, event=True)
    for room_id in (made.announcements, *made.groups.values()):
        assert homeserver.membership(room_id, OWNER) == "invite"


async def test_create_records_marker_links_and_power(
    create_community: CommunityMaker, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=["Kids", "Teens"])
    space = made.space
    assert state(gateway, space, "m.room.create", "")["type"] == "m.space"
    assert state(gateway, space, MARKER_EVENT) == {"community": space, "role": "space"}
    roles = {made.announcements: Role.ANNOUNCEMENTS, made.admins: Role.ADMINS}
    roles.update({room: Role.GROUP for room in made.groups.values()})
    for room_id, role in roles.items():
        assert state(gateway, room_id, MARKER_EVENT) == {"community": space, "role": str(role)}
    # The announcements and groups hang in the space, in order; the admins room does not.
    assert state(gateway, space, "m.space.child", made.announcements)["order"] == "0"
    assert state(gateway, space, "m.space.child", made.groups["Kids"])["order"] == "g00002"
    assert state(gateway, space, "m.space.child", made.groups["Teens"])["order"] == "g00003"
    assert state(gateway, space, "m.space.child", made.admins) is None
    for room_id in (made.announcements, *made.groups.values()):
        assert state(gateway, room_id, "m.space.parent", space)["canonical"] is True
    assert state(gateway, made.admins, "m.space.parent", space) is None
    # Room version 12: the bot is the creator and outranks everyone without being listed.
    for room_id in made.rooms:
        assert power_users(gateway, room_id) == {OWNER: 100}
    assert state(gateway, made.groups["Kids"], "m.room.join_rules") == {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": space}],
    }
    assert state(gateway, space, "m.room.join_rules") == {"join_rule": "knock"}


async def test_create_records_the_community(
    create_community: CommunityMaker, tables: Tables
) -> None:
    made = await create_community(groups=["Kids"], join_mode=JoinMode.OPEN, description="Hi")
    community = await tables.communities.get(made.space)
    assert community is not None
    assert (community.name, community.description, community.join_mode) == (
        "Parents",
        "Hi",
        "open",
    )
    assert community.state == CommunityState.ACTIVE and community.owner == OWNER
    assert await tables.admins.roles(made.space) == {OWNER: "owner"}
    rooms = await tables.rooms.of_community(made.space)
    assert [(r.role, r.position) for r in rooms] == [
        ("space", 0),
        ("announcements", 1),
        ("group", 2),
        ("admins", 3),
    ]
    [entry] = await tables.audit.recent(made.space, 10)
    assert (entry.action, entry.actor, entry.detail) == ("create", OWNER, "Parents, groups: Kids")


async def test_create_needs_permission(service: Service, gateway: RecordingGateway) -> None:
    with pytest.raises(Forbidden):
        await Structure(service).create_community(STRANGER, "Parents", "", JoinMode.OPEN)
    assert gateway.calls == []


# --- rename, describe -------------------------------------------------------------------


async def test_rename(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=[])
    await Structure(service).rename(made.community, ALICE, "  Families  ")
    assert state(gateway, made.space, "m.room.name") == {"name": "Families"}
    community = await service.db.communities.get(made.space)
    space = await service.db.rooms.get(made.space)
    assert community is not None and community.name == "Families"
    assert space is not None and space.name == "Families"
    assert (await actions(service.db, made.space))[-1] == "rename"


async def test_describe(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=[])
    await Structure(service).describe(made.community, OWNER, "For parents <&> carers")
    assert state(gateway, made.space, "m.room.topic") == {"topic": "For parents <&> carers"}
    community = await service.db.communities.get(made.space)
    assert community is not None and community.description == "For parents <&> carers"
    assert (await actions(service.db, made.space))[-1] == "describe"


# --- groups -------------------------------------------------------------------------------


async def test_group_create(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=["Kids"])
    group = await Groups(service).create(
        made.community, OWNER, "Art", "Drawing", GroupAccess.APPROVAL
    )
    assert (group.role, group.name, group.access, group.position) == (
        "group",
        "Art",
        "approval",
        4,
    )
    assert state(gateway, group.room_id, "m.room.join_rules") == {"join_rule": "knock"}
    assert state(gateway, group.room_id, "m.room.topic") == {"topic": "Drawing"}
    assert state(gateway, made.space, "m.space.child", group.room_id)["order"] == "g00004"
    assert gateway.rooms[group.room_id].members[OWNER] == "invite"
    assert (await actions(service.db, made.space))[-1] == "group create"
    assert gateway.aliases == {}


def _adoptable(gateway: RecordingGateway, version: str = "11") -> RoomID:
    """A room Alice made, with the bot invited at power level 100."""
    return gateway.add_room(
        ALICE,
        version=version,
        members={ALICE: "join", BOT: "invite"},
        state={
            ("m.room.name", ""): {"name": "Book club"},
            ("m.room.join_rules", ""): {"join_rule": "invite"},
            ("m.room.power_levels", ""): {"users": {ALICE: 50, BOT: 100}},
        },
    )


async def test_group_adopt(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=[])
    room_id = _adoptable(gateway)
    group = await Groups(service).adopt(made.community, OWNER, room_id)
    assert (group.name, group.access, group.adopted) == ("Book club", "private", True)
    assert gateway.rooms[room_id].members[BOT] == "join"
    # Not its creator: the bot is listed at 100 and the admins sit one below.
    assert power_users(gateway, room_id) == {OWNER: 99, BOT: 100}
    assert state(gateway, room_id, MARKER_EVENT) == {"community": made.space, "role": "group"}
    assert state(gateway, room_id, "m.space.parent", made.space) is not None
    assert state(gateway, made.space, "m.space.child", room_id) is not None
    assert state(gateway, room_id, "m.room.join_rules") == {"join_rule": "invite"}  # private
    assert (await actions(service.db, made.space))[-1] == "group add"


async def test_group_adopt_refused_in_a_v12_room_of_someone_else(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=[])
    room_id = _adoptable(gateway, version="12")
    with pytest.raises(Forbidden, match="always outranks the bot"):
        await Groups(service).adopt(made.community, OWNER, room_id)
    assert gateway.rooms[room_id].members[BOT] == "leave"
    assert await service.db.rooms.get(room_id) is None
    assert state(gateway, made.space, "m.space.child", room_id) is None


async def test_group_remove(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=["Kids", "Teens"])
    kids = made.groups["Kids"]
    removed = await Structure(service).remove_group(made.community, OWNER, "kids")
    assert removed.room_id == kids
    assert await service.db.rooms.get(kids) is None
    assert state(gateway, made.space, "m.space.child", kids) == {}
    assert state(gateway, kids, "m.space.parent", made.space) == {}
    assert state(gateway, kids, MARKER_EVENT) == {}
    # Open to the space before; without it, invite only. The room itself lives on.
    assert state(gateway, kids, "m.room.join_rules") == {"join_rule": "invite"}
    assert gateway.rooms[kids].members[BOT] == "join"
    assert [g.name for g in await service.groups(made.space)] == ["Teens"]
    assert (await actions(service.db, made.space))[-1] == "group remove"


async def test_group_limit_at_create(service: Service, gateway: RecordingGateway) -> None:
    groups = [f"G{i}" for i in range(MAX_GROUPS + 1)]
    with pytest.raises(LimitReached):
        await Structure(service).create_community(OWNER, "Parents", "", JoinMode.OPEN, groups)
    assert gateway.calls == []


async def test_group_limit_afterwards(
    create_community: CommunityMaker, service: Service, gateway: RecordingGateway
) -> None:
    made = await create_community(groups=[f"G{i}" for i in range(MAX_GROUPS)])
    before = len(gateway.calls)
    with pytest.raises(LimitReached, match="already has 3 groups"):
        await Groups(service).create(made.community, OWNER, "One more", "", GroupAccess.OPEN)
    with pytest.raises(LimitReached):
        await Groups(service).adopt(made.community, OWNER, _adoptable(gateway))
    assert len(gateway.calls) == before  # refused before anything was asked of the homeserver
    assert len(await service.groups(made.space)) == MAX_GROUPS


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("refused", ["Teens", "🛡️ Parents · Admins"])
async def test_a_refusal_midway_undoes_everything(
    service: Service,
    gateway: RecordingGateway,
    tables: Tables,
    monkeypatch: pytest.MonkeyPatch,
    refused: str,
) -> None:
    refuse_create_room_named(monkeypatch, gateway, refused, MatrixError("M_FORBIDDEN", "no", 403))
    with pytest.raises(Undone, match="M_FORBIDDEN"):
        await Structure(service).create_community(
            OWNER, "Parents", "", JoinMode.OPEN, ["Kids", "Teens"]
        )
    made = [request["name"] for (request,) in calls_of(gateway, "create_room")]
    assert refused in made  # it was asked for, and refused
    assert len(gateway.rooms) == len(made) - 1
    for room in gateway.rooms.values():  # every room made is emptied and left
        assert {user: m for user, m in room.members.items() if m != "leave"} == {}
    space = next(r for r in gateway.rooms.values() if r.state[("m.room.create", "")].get("type"))
    links = [c for (t, _), c in space.state.items() if t == "m.space.child"]
    assert links and all(c == {} for c in links)
    assert gateway.aliases == {}
    assert await tables.communities.all_active() == []
    assert await tables.db.fetchval("SELECT COUNT(*) FROM community") == 0
    assert await tables.db.fetchval("SELECT COUNT(*) FROM community_room") == 0
    assert await tables.db.fetchval("SELECT state FROM operation") == "undone"


async def test_an_outage_leaves_the_operation_pending(
    service: Service,
    gateway: RecordingGateway,
    tables: Tables,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refuse_create_room_named(monkeypatch, gateway, "Kids", aiohttp.ClientConnectionError())
    # The service is stopping, so the retry is dropped at once rather than started in the
    # background: this test looks at the records only.
    service.tasks.stopped = True
    with pytest.raises(Pending):
        await Structure(service).create_community(OWNER, "Parents", "", JoinMode.OPEN, ["Kids"])
    [op] = await tables.operations.running()
    assert op.kind == "create" and op.state == "running"
    community = await tables.communities.get(op.space_id)
    assert community is not None and community.state == CommunityState.CREATING
    assert await tables.communities.all_active() == []
    assert await tables.audit.recent(op.space_id, 10) == []


async def test_a_retry_cancelled_before_it_starts_is_closed() -> None:
    tasks = Tasks()

    async def retry() -> None:  # stands for Operations._keep_trying
        raise AssertionError("never runs")

    work = retry()
    try:
        tasks.spawn("operation 1", work)
        await tasks.stop()
        assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED
    finally:
        work.close()  # the test's own clean-up, so no warning escapes it


async def test_the_bot_goes_by_the_communitys_name_in_its_rooms(
    create_community: CommunityMaker, gateway: RecordingGateway, service: Service
) -> None:
    """In room version 12 the bot, as creator, shows as "Owner": the community owns them."""
    made = await create_community(groups=["Kids"])
    for room_id in made.rooms:
        assert state(gateway, room_id, "m.room.member", BOT)["displayname"] == "Parents"
    await Structure(service).rename(made.community, OWNER, "Parents Berlin")
    for room_id in made.rooms:
        assert state(gateway, room_id, "m.room.member", BOT)["displayname"] == "Parents Berlin"


async def test_reconciliation_names_the_bot_in_older_rooms(
    create_community: CommunityMaker, gateway: RecordingGateway, service: Service
) -> None:
    made = await create_community(groups=())
    gateway.rooms[made.announcements].state[("m.room.member", BOT)] = {"membership": "join"}
    findings = await Reconciler(service).community(made.community)
    assert state(gateway, made.announcements, "m.room.member", BOT)["displayname"] == "Parents"
    assert findings.repairs == ["📢 Parents · Announcements: the bot now shows as Parents"]
