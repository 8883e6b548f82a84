"""Community bans outlive the rooms they were made in: recorded, applied to every group made
or adopted later, checked against knocks, lifted by `unban`."""

from __future__ import annotations

from mautrix.types import UserID

from communities_appservice.core.groups import Groups
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.db.ban import Ban
from communities_appservice.features.moderation import Moderation
from communities_appservice.rules.model import GroupAccess, JoinMode

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, BOT, OWNER, CommunityMaker, Homeserver, calls_of

MALLORY = UserID("@mallory:example.org")


async def test_the_ban_table(tables: Tables, create_community: CommunityMaker) -> None:
    made = await create_community(groups=())
    assert await tables.bans.of_community(made.space) == []
    await tables.bans.put(Ban(made.space, MALLORY, "spam", OWNER, 5))
    await tables.bans.put(Ban(made.space, MALLORY, "again", ALICE, 6))  # the first one holds
    assert await tables.bans.of_community(made.space) == [
        Ban(made.space, MALLORY, "spam", OWNER, 5)
    ]
    assert await tables.bans.is_banned(made.space, MALLORY)
    assert not await tables.bans.is_banned(made.space, BOB)
    assert await tables.bans.delete(made.space, MALLORY)
    assert not await tables.bans.delete(made.space, MALLORY)
    assert not await tables.bans.is_banned(made.space, MALLORY)


async def test_a_group_created_after_a_ban_applies_it(
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=["Kids"])
    await Moderation(service).ban(made.community, OWNER, MALLORY, "spam")
    assert await service.db.bans.is_banned(made.space, MALLORY)
    group = await Groups(service).create(made.community, OWNER, "Later", "", GroupAccess.OPEN)
    assert homeserver.membership(group.room_id, MALLORY) == "ban"
    [(room, user, reason)] = [c for c in calls_of(gateway, "ban") if c[0] == group.room_id]
    assert (user, reason) == (MALLORY, "spam")


async def test_an_adopted_room_applies_the_community_bans(
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=())
    await Moderation(service).ban(made.community, OWNER, MALLORY, "")
    power = {"users": {BOT: 100, BOB: 50}, "events": {"m.room.power_levels": 100}}
    room = gateway.add_room(
        BOB,
        version="11",
        members={BOB: "join", BOT: "invite", MALLORY: "join"},
        state={
            ("m.room.power_levels", ""): power,
            ("m.room.join_rules", ""): {"join_rule": "invite"},
        },
    )
    await Groups(service).adopt(made.community, OWNER, room)
    assert homeserver.membership(room, MALLORY) == "ban"


async def test_unban_lifts_the_record_too(
    service: Service, homeserver: Homeserver, create_community: CommunityMaker
) -> None:
    made = await create_community(groups=())
    await Moderation(service).ban(made.community, OWNER, MALLORY, "")
    await Moderation(service).unban(made.community, OWNER, MALLORY)
    assert not await service.db.bans.is_banned(made.space, MALLORY)
    group = await Groups(service).create(made.community, OWNER, "After", "", GroupAccess.OPEN)
    assert homeserver.membership(group.room_id, MALLORY) is None


async def test_a_banned_users_knock_is_refused_and_not_announced(
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    create_community: CommunityMaker,
) -> None:
    made = await create_community(groups=(), join_mode=JoinMode.APPROVAL)
    await service.db.bans.put(Ban(made.space, MALLORY, "", OWNER, 1))  # banned, room says knock
    before = len(gateway.sent(made.admins))
    await homeserver.set(made.space, MALLORY, "knock", reason="let me in", event=True)
    assert homeserver.membership(made.space, MALLORY) == "leave"
    assert await service.db.join_requests.get(made.space, MALLORY) is None
    assert len(gateway.sent(made.admins)) == before  # no announcement
