"""Groups, admins and the 20-admin rule against the real homeserver."""

from __future__ import annotations

import asyncio

from mautrix.types import EventType

from .harness import Stack, User
from .test_community import create


async def joined_community(stack: Stack, name: str) -> tuple[User, dict[str, str]]:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, name, "--join", "open")
    for role in ("space", "announcements", "admins"):
        await owner.join(rooms[role])
    return owner, rooms


async def test_group_create_open_approval_private(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Groups")
    space, dm = rooms["space"], rooms["dm"]
    cases = {
        "Open": ("", "restricted"),
        "Waiting": ("--approval", "knock"),
        "Secret": ("--private", "invite"),
    }
    for name, (flag, _rule) in cases.items():
        reply = await owner.command(dm, f'group create {name} --topic "About {name}" {flag}')
        assert f"Created group {name}" in reply["body"], reply
    assert stack.app is not None
    groups = await stack.app.tables.rooms.of_community(space, "group")
    assert [g.name for g in groups] == list(cases)
    for group, (name, (_, rule)) in zip(groups, cases.items(), strict=True):
        room = group.room_id
        assert (await owner.state(room, "m.room.join_rules"))["join_rule"] == rule
        assert (await owner.state(room, "m.room.topic"))["topic"] == f"About {name}"
        assert (await owner.state(room, "m.room.encryption"))["algorithm"] == (
            "m.megolm.v1.aes-sha2"
        )
        assert await owner.state(room, "m.space.parent", space) == {
            "via": ["localhost"],
            "canonical": True,
        }
        child = await owner.state(space, "m.space.child", room)
        assert child["suggested"] is False and child["order"] > "0"
        power = await owner.state(room, "m.room.power_levels")
        assert power["users"] == {owner.user_id: 100}
        assert power["events_default"] == 0
        assert power["state_default"] == power["kick"] == power["invite"] == 50
        assert power["events"]["m.space.parent"] == 101
        assert await owner.state(room, "communities.room") == {
            "community": space,
            "role": "group",
        }
    listing = await owner.command(dm, "group list")
    assert "Open — open to members" in listing["body"]
    assert "Secret — private" in listing["body"]


async def test_group_add_adopts_a_room_and_refuses_what_it_cannot_hold(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Adopters")
    other = await stack.user("other")
    # A room whose creator is someone else, in room version 12: the creator always wins.
    v12 = await other.client.create_room(invitees=[stack.bot])  # type: ignore[list-item]
    reply = await owner.command(rooms["dm"], f"group add {v12}")
    assert "cannot take charge" in reply["body"] and "creator" in reply["body"], reply
    assert stack.app is not None
    assert await stack.app.tables.rooms.get(str(v12)) is None

    # A version 11 room where the bot is given 100 and its creator steps down to 50.
    old = await other.client.create_room(room_version="11", invitees=[stack.bot])  # type: ignore[list-item]
    reply = await owner.command(rooms["dm"], f"group add {old}")
    assert "cannot take charge" in reply["body"] and "power level 100" in reply["body"], reply
    power = await other.state(str(old), "m.room.power_levels")
    power["users"] = {stack.bot: 100, other.user_id: 50}
    await other.client.invite_user(old, stack.bot)  # type: ignore[arg-type]
    await other.client.send_state_event(old, EventType.ROOM_POWER_LEVELS, power)  # type: ignore[arg-type]
    reply = await owner.command(rooms["dm"], f"group add {old}")
    assert "as a group" in reply["body"], reply
    space = rooms["space"]
    power = await owner.state(str(old), "m.room.power_levels")
    assert power["users"] == {stack.bot: 100, owner.user_id: 99}
    assert power["events"]["m.room.power_levels"] == 100
    assert await owner.state(space, "m.space.child", str(old))
    assert await owner.state(str(old), "m.space.parent", space)
    assert (await owner.state(str(old), "m.room.encryption"))["algorithm"]

    # The same room cannot belong to a second community.
    second_owner, second = await joined_community(stack, "Second")
    reply = await second_owner.command(
        second["dm"], f"group add {old} --community {second['space']}"
    )
    assert "already belongs" in reply["body"], reply

    reply = await owner.command(rooms["dm"], f"group remove {old}")
    assert "Removed" in reply["body"], reply
    assert await owner.state(space, "m.space.child", str(old)) == {}
    assert await stack.app.tables.rooms.get(str(old)) is None


async def test_admin_add_remove_and_the_21st_admin(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Twenty")
    space, dm = rooms["space"], rooms["dm"]
    people = await asyncio.gather(*(stack.user("admin") for _ in range(20)))
    await asyncio.gather(*(p.join(space) for p in people))
    for person in people[:19]:
        reply = await owner.command(dm, f"admin add {person.user_id}")
        assert "is now an admin" in reply["body"], reply
    assert stack.app is not None
    assert len(await stack.app.tables.admins.roles(space)) == 20
    group = await owner.command(dm, "group create Chat")
    assert "Created group" in group["body"]
    [chat] = await stack.app.tables.rooms.of_community(space, "group")
    all_rooms = [space, rooms["announcements"], rooms["admins"], chat.room_id]
    for room in all_rooms:
        power = await owner.state(room, "m.room.power_levels")
        assert len(power["users"]) == 20 and set(power["users"].values()) == {100}, room
    for person in people[:19]:
        assert await stack.membership(rooms["admins"], person.user_id) == "invite"

    last = people[19]
    before = {room: await owner.state(room, "m.room.power_levels") for room in all_rooms}
    reply = await owner.command(dm, f"admin add {last.user_id}")
    assert "the limit is 20" in reply["body"], reply
    for room in all_rooms:
        assert await owner.state(room, "m.room.power_levels") == before[room]
    assert last.user_id not in await stack.app.tables.admins.roles(space)

    # Any admin may dismiss another admin; nobody dismisses the owner.
    helper = people[0]
    helper_dm = await helper.dm_bot()
    reply = await helper.command(helper_dm, f"admin remove {people[1].user_id}")
    assert "no longer an admin" in reply["body"], reply
    for room in all_rooms:
        power = await owner.state(room, "m.room.power_levels")
        assert people[1].user_id not in power["users"], room
    assert await stack.membership(rooms["admins"], people[1].user_id) == "leave"
    reply = await helper.command(helper_dm, f"admin remove {owner.user_id}")
    assert "owner cannot be removed" in reply["body"], reply
    assert owner.user_id in (await owner.state(space, "m.room.power_levels"))["users"]


async def test_admin_commands_refused_for_members_and_bad_targets(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Strict")
    member = await stack.user("member")
    await member.join(rooms["space"])
    await stack.wait_membership(rooms["announcements"], member.user_id, "invite")
    dm = await member.dm_bot()
    before = await owner.state(rooms["space"], "m.room.power_levels")
    for command in (f"admin add {member.user_id}", "rename Mine", "group create Mine"):
        reply = await member.command(dm, command)
        assert "Only admins" in reply["body"], (command, reply)
    assert await owner.state(rooms["space"], "m.room.power_levels") == before
    assert (await owner.state(rooms["space"], "m.room.name"))["name"] == "Strict"

    reply = await owner.command(rooms["dm"], "admin add not-an-mxid")
    assert "is not a Matrix user ID" in reply["body"], reply
    stranger = await stack.user("stranger")
    reply = await owner.command(rooms["dm"], f"admin add {stranger.user_id}")
    assert "has not joined" in reply["body"], reply
    reply = await owner.command(rooms["dm"], 'rename "unclosed')
    assert "not closed" in reply["body"] and "Usage" in reply["body"], reply
    reply = await owner.command(rooms["dm"], "frobnicate")
    assert "Unknown command" in reply["body"], reply


async def test_info_rename_describe_invite(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Infos")
    dm, space = rooms["dm"], rooms["space"]
    assert "Renamed" in (await owner.command(dm, "rename Infos & more"))["body"]
    assert "Updated" in (await owner.command(dm, "describe Parents' corner"))["body"]
    assert (await owner.state(space, "m.room.name"))["name"] == "Infos & more"
    assert (await owner.state(space, "m.room.topic"))["topic"] == "Parents' corner"
    guest = await stack.user("guest")
    assert "Invited" in (await owner.command(dm, f"invite {guest.user_id}"))["body"]
    assert await stack.membership(space, guest.user_id) == "invite"
    info = await owner.command(dm, "info")
    assert "Infos & more" in info["body"] and "Admins: 1/20" in info["body"], info
    long_name = "x" * 101
    reply = await owner.command(dm, f"rename {long_name}")
    assert "limit is 100" in reply["body"], reply


async def test_max_groups_is_enforced(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Few groups")
    await stack.restart_app(max_groups=1)
    try:
        assert "Created group" in (await owner.command(rooms["dm"], "group create One"))["body"]
        reply = await owner.command(rooms["dm"], "group create Two")
        assert "the limit is 1" in reply["body"], reply
        assert stack.app is not None
        groups = await stack.app.tables.rooms.of_community(rooms["space"], "group")
        assert [g.name for g in groups] == ["One"]
    finally:
        await stack.restart_app()
