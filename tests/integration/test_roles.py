"""Owner transfer, group admins and the audit log against the real homeserver."""

from __future__ import annotations

from typing import Any

from communities_appservice.rules.model import AdminRole

from .harness import Stack, User, eventually
from .test_groups_and_admins import joined_community


async def power_users(user: User, room_id: str) -> dict[str, int]:
    return dict((await user.state(room_id, "m.room.power_levels"))["users"])


async def actions(stack: Stack, space: str, limit: int = 50) -> list[str]:
    """The audit log's actions, oldest first."""
    assert stack.app is not None
    return [e.action for e in reversed(await stack.app.tables.audit.recent(space, limit))]


def log_lines(reply: dict[str, Any]) -> list[str]:
    return [line for line in reply["body"].split("\n") if line.startswith("#")]


async def test_owner_transfer(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Handover")
    space, dm = rooms["space"], rooms["dm"]
    assert "Created group" in (await owner.command(dm, "group create Chat"))["body"]
    alice, stranger = await stack.user("alice"), await stack.user("stranger")
    await alice.join(space)

    reply = await owner.command(dm, f"owner transfer {alice.user_id}")
    assert "is not an admin" in reply["body"], reply
    reply = await owner.command(dm, f"owner transfer {stranger.user_id}")
    assert "has not joined" in reply["body"], reply
    reply = await owner.command(dm, f"owner transfer {owner.user_id}")
    assert "already the owner" in reply["body"], reply
    assert "is now an admin" in (await owner.command(dm, f"admin add {alice.user_id}"))["body"]
    alice_dm = await alice.dm_bot()
    reply = await alice.command(alice_dm, f"owner transfer {alice.user_id}")
    assert "Only the owner" in reply["body"], reply

    reply = await owner.command(dm, f"owner transfer {alice.user_id}")
    assert f"{alice.user_id} is now the owner of Handover" in reply["body"], reply
    assert stack.app is not None
    community = await stack.app.tables.communities.get(space)
    assert community is not None and community.owner == alice.user_id
    assert await stack.app.tables.admins.roles(space) == {
        owner.user_id: AdminRole.ADMIN,
        alice.user_id: AdminRole.OWNER,
    }
    all_rooms = [r for role, r in rooms.items() if role != "dm"]
    all_rooms += [g.room_id for g in await stack.app.tables.rooms.of_community(space, "group")]
    assert len(all_rooms) == 4
    for room in all_rooms:
        assert await power_users(owner, room) == {owner.user_id: 100, alice.user_id: 100}, room
    info = await alice.command(alice_dm, "info")
    assert f"(owner {alice.user_id})" in info["body"], info

    reply = await owner.command(dm, f"owner transfer {alice.user_id}")
    assert "Only the owner" in reply["body"], reply
    reply = await owner.command(dm, f"admin remove {alice.user_id}")
    assert "owner cannot be removed" in reply["body"], reply
    transfers = [
        e for e in await stack.app.tables.audit.recent(space, 50) if e.action == "owner transfer"
    ]
    assert [(e.target, e.detail) for e in transfers] == [(alice.user_id, f"from {owner.user_id}")]


async def test_group_admins(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Moderated")
    space, dm = rooms["space"], rooms["dm"]
    for name in ("Chat", "Other"):
        assert "Created group" in (await owner.command(dm, f"group create {name}"))["body"]
    assert stack.app is not None
    chat, other = (g.room_id for g in await stack.app.tables.rooms.of_community(space, "group"))
    bob, carol, dave = [await stack.user(p) for p in ("bob", "carol", "dave")]
    for person in (bob, carol, dave):
        await person.join(space)
    for person in (bob, dave):
        await person.join(chat)
    elsewhere = [space, rooms["announcements"], rooms["admins"], other]
    before = {room: await power_users(owner, room) for room in elsewhere}

    reply = await owner.command(dm, f"group admin add {bob.user_id}")
    assert "--group" in reply["body"] and "\n" not in reply["body"], reply
    reply = await owner.command(dm, f"group admin add {carol.user_id} --group Chat")
    assert "has not joined Chat" in reply["body"], reply
    reply = await owner.command(dm, f"group admin add {bob.user_id} --group chat")
    assert f"{bob.user_id} is now an admin of the group Chat" in reply["body"], reply
    assert await power_users(owner, chat) == {owner.user_id: 100, bob.user_id: 50}
    for room in elsewhere:
        assert await power_users(owner, room) == before[room], room

    # A group admin adds another one, typing the command in the group's own room.
    reply = await bob.command(chat, f"group admin add {dave.user_id}")
    assert await power_users(owner, chat) == {
        owner.user_id: 100,
        bob.user_id: 50,
        dave.user_id: 50,
    }
    # ...but has no say in another group, nor over community admins.
    bob_dm = await bob.dm_bot()
    reply = await bob.command(bob_dm, f"group admin add {carol.user_id} --group Other")
    assert "Only admins of this community or of this group" in reply["body"], reply
    reply = await bob.command(bob_dm, f"admin add {carol.user_id}")
    assert "Only admins" in reply["body"], reply

    # Rewriting every room's power levels (another admin) keeps the group admins.
    assert "is now an admin" in (await owner.command(dm, f"admin add {carol.user_id}"))["body"]
    assert (await power_users(owner, chat))[bob.user_id] == 50
    assert (await power_users(owner, chat))[carol.user_id] == 100
    # A group admin promoted and dismissed again is back at 50 in that group, nothing elsewhere.
    assert "is now an admin" in (await owner.command(dm, f"admin add {dave.user_id}"))["body"]
    assert (await power_users(owner, chat))[dave.user_id] == 100
    for command in (f"admin remove {dave.user_id}", f"admin remove {carol.user_id}"):
        assert "no longer an admin" in (await owner.command(dm, command))["body"]
    assert await power_users(owner, chat) == {
        owner.user_id: 100,
        bob.user_id: 50,
        dave.user_id: 50,
    }
    for room in elsewhere:
        assert await power_users(owner, room) == before[room], room

    reply = await bob.command(bob_dm, f"group admin remove {dave.user_id} --group Chat")
    assert f"{dave.user_id} is no longer an admin of the group Chat" in reply["body"], reply
    reply = await owner.command(dm, f"group admin remove {bob.user_id} --group Chat")
    assert "no longer an admin" in reply["body"], reply
    assert await power_users(owner, chat) == {owner.user_id: 100}
    reply = await owner.command(dm, f"group admin remove {bob.user_id} --group Chat")
    assert "is not an admin of Chat" in reply["body"], reply
    assert await stack.app.tables.group_admins.of_room(chat) == []
    assert [a for a in await actions(stack, space) if a.startswith("group admin")] == [
        "group admin add",
        "group admin add",
        "group admin remove",
        "group admin remove",
    ]


async def test_log(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Logged")
    space, dm = rooms["space"], rooms["dm"]
    member = await stack.user("member")
    await member.join(space)
    assert "Renamed" in (await owner.command(dm, "rename Logged & co"))["body"]
    assert "is now an admin" in (await owner.command(dm, f"admin add {member.user_id}"))["body"]
    assert "no longer" in (await owner.command(dm, f"admin remove {member.user_id}"))["body"]
    assert "Updated" in (await owner.command(dm, "describe <b>Our</b> corner"))["body"]

    reply = await owner.command(dm, "log")
    lines = log_lines(reply)
    expected = [
        ("describe", space),
        ("admin remove", member.user_id),
        ("admin add", member.user_id),
        ("rename", space),
        ("create", space),
    ]
    assert len(lines) == len(expected), reply
    for line, (action, target) in zip(lines, expected, strict=True):
        assert line.endswith(f" UTC {owner.user_id} {action} {target} (ok)"), line
    ids = [int(line.split()[0][1:]) for line in lines]
    assert ids == sorted(ids, reverse=True)
    assert "Logged &amp; co" in reply["formatted_body"]

    limited = log_lines(await owner.command(dm, "log --limit 2"))
    assert limited == lines[:2]
    for bad in ("0", "201", "many"):
        reply = await owner.command(dm, f"log --limit {bad}")
        reason, usage = reply["body"].split("\n")  # one line of reason, then the usage
        assert "from 1 to 200" in reason and usage.startswith("Usage:"), reply

    member_dm = await member.dm_bot()
    reply = await member.command(member_dm, "log")
    assert "Only admins" in reply["body"] and not log_lines(reply), reply


async def test_commands_in_a_group_room_apply_to_that_group(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Local")
    assert "Created group" in (await owner.command(rooms["dm"], "group create Here"))["body"]
    assert stack.app is not None
    [here] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    erin = await stack.user("erin")
    await erin.join(rooms["space"])
    await erin.join(here.room_id)
    await stack.wait_membership(here.room_id, owner.user_id, "invite")
    await owner.join(here.room_id)
    # The group room is encrypted; the bot still reads this plain message and answers there.
    await owner.send(here.room_id, f"!community group admin add {erin.user_id}")

    async def promoted() -> bool:
        return (await power_users(owner, here.room_id)).get(erin.user_id) == 50

    await eventually(promoted, "erin to be a group admin")
    # Typed in a room of the community that is not a group, the command asks which group.
    reply = await owner.command(rooms["space"], f"group admin add {erin.user_id}")
    assert "Which group?" in reply["body"], reply


async def test_a_group_admin_who_leaves_the_group_is_its_admin_no_more(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Leavers")
    space, dm = rooms["space"], rooms["dm"]
    assert "Created group" in (await owner.command(dm, "group create Chat"))["body"]
    assert stack.app is not None
    [chat] = [g.room_id for g in await stack.app.tables.rooms.of_community(space, "group")]
    bob = await stack.user("bob")
    await bob.join(space)
    await bob.join(chat)
    reply = await owner.command(dm, f"group admin add {bob.user_id} --group Chat")
    assert "is now an admin of the group Chat" in reply["body"], reply

    await bob.client.leave_room(chat)  # type: ignore[arg-type]

    async def dropped() -> bool:
        return bob.user_id not in await power_users(owner, chat)

    await eventually(dropped, "the group admin's level to go with them")
    assert await stack.app.tables.group_admins.of_room(chat) == []

    async def audited() -> bool:
        return "group admin left" in await actions(stack, space)

    await eventually(audited, "the audit entry")  # written just after the power levels
