"""Remove, ban, unban and common groups across every room of a community, on the real homeserver."""

from __future__ import annotations

from .harness import Stack, User
from .test_groups_and_admins import joined_community

GROUPS = ("Football", "Chess", "Choir")


async def populated(stack: Stack, name: str) -> tuple[User, dict[str, str], list[str]]:
    """A community with three groups, the owner joined everywhere; and every room, in order."""
    owner, rooms = await joined_community(stack, name)
    for group in GROUPS:
        reply = await owner.command(rooms["dm"], f"group create {group}")
        assert f"Created group {group}" in reply["body"], reply
    assert stack.app is not None
    every = [r.room_id for r in await stack.app.tables.rooms.of_community(rooms["space"])]
    assert len(every) == 6  # space, announcements, admins room, three groups
    for group in await stack.app.tables.rooms.of_community(rooms["space"], "group"):
        await owner.join(group.room_id)
    return owner, rooms, every


async def groups_of(stack: Stack, space: str) -> dict[str, str]:
    assert stack.app is not None
    return {g.name: g.room_id for g in await stack.app.tables.rooms.of_community(space, "group")}


async def new_member(stack: Stack, rooms: dict[str, str], groups: list[str]) -> User:
    """Someone joined to the space, the announcements and `groups`."""
    member = await stack.user("member")
    await member.join(rooms["space"])
    await stack.wait_membership(rooms["announcements"], member.user_id, "invite")
    await member.join(rooms["announcements"])
    for room in groups:
        await member.join(room)
    return member


async def memberships(stack: Stack, rooms: list[str], user: str) -> dict[str, str | None]:
    return {room: await stack.membership(room, user) for room in rooms}


async def test_remove_ban_unban_act_on_every_room(stack: Stack) -> None:
    owner, rooms, every = await populated(stack, "Moderated")
    dm, space = rooms["dm"], rooms["space"]
    member = await new_member(stack, rooms, list((await groups_of(stack, space)).values()))
    user = member.user_id
    assert stack.app is not None
    assert await stack.app.tables.members.is_member(space, user)

    reply = await owner.command(dm, f"remove {user} spamming links")
    assert f"Removed {user} in 5 room(s)" in reply["body"], reply
    for room in every:
        if room == rooms["admins"]:
            continue
        await stack.wait_membership(room, user, "leave")
        event = await stack.admin_state(room, "m.room.member", user)
        assert event["reason"] == "spamming links", (room, event)
    assert await stack.membership(rooms["admins"], user) is None
    assert not await stack.app.tables.members.is_member(space, user)
    again = await owner.command(dm, f"remove {user}")
    assert "is not in this community" in again["body"], again

    reply = await owner.command(dm, f"ban {user} repeat offender")
    assert f"Banned {user} in 6 room(s)" in reply["body"], reply
    for room in every:
        await stack.wait_membership(room, user, "ban")
    assert (await stack.admin_state(rooms["admins"], "m.room.member", user))["reason"] == (
        "repeat offender"
    )

    reply = await owner.command(dm, f"unban {user}")
    assert f"Unbanned {user} in 6 room(s)" in reply["body"], reply
    assert await memberships(stack, every, user) == dict.fromkeys(every, "leave")
    again = await owner.command(dm, f"unban {user}")
    assert "is not banned" in again["body"], again

    log = await owner.command(dm, "log")
    for action in ("remove", "ban", "unban"):
        assert f"{action} {user}" in log["body"], log


async def test_ban_of_someone_who_never_joined(stack: Stack) -> None:
    owner, rooms, every = await populated(stack, "Banners")
    stranger = await stack.user("stranger")
    reply = await owner.command(rooms["dm"], f"ban {stranger.user_id}")
    assert f"Banned {stranger.user_id} in 6 room(s)" in reply["body"], reply
    assert await memberships(stack, every, stranger.user_id) == dict.fromkeys(every, "ban")
    unknown = await owner.command(rooms["dm"], "ban not-a-user")
    assert "is not a Matrix user ID" in unknown["body"], unknown


async def test_admins_and_the_owner_are_protected(stack: Stack) -> None:
    owner, rooms, every = await populated(stack, "Protected")
    dm = rooms["dm"]
    admin = await new_member(stack, rooms, [])
    reply = await owner.command(dm, f"admin add {admin.user_id}")
    assert "is now an admin" in reply["body"], reply
    await stack.wait_membership(rooms["admins"], admin.user_id, "invite")
    await admin.join(rooms["admins"])
    before = {who: await memberships(stack, every, who) for who in (owner.user_id, admin.user_id)}

    for action in ("remove", "ban"):
        reply = await owner.command(dm, f"{action} {admin.user_id} no reason")
        assert f"admin remove {admin.user_id}" in reply["body"], reply
        assert "\n" not in reply["body"], reply
        reply = await admin.command(await admin.dm_bot(), f"{action} {owner.user_id}")
        assert "is the owner" in reply["body"], reply
    after = {who: await memberships(stack, every, who) for who in before}
    assert after == before


async def test_a_member_cannot_remove(stack: Stack) -> None:
    owner, rooms, every = await populated(stack, "Members only")
    member = await new_member(stack, rooms, [])
    other = await new_member(stack, rooms, [])
    before = await memberships(stack, every, other.user_id)
    reply = await member.command(await member.dm_bot(), f"remove {other.user_id}")
    assert "Only admins" in reply["body"], reply
    assert await memberships(stack, every, other.user_id) == before


async def test_common_lists_only_groups_both_joined(stack: Stack) -> None:
    owner, rooms, _ = await populated(stack, "Sharers")
    groups = await groups_of(stack, rooms["space"])
    member = await new_member(stack, rooms, [groups["Chess"], groups["Choir"]])
    loner = await new_member(stack, rooms, [])
    member_dm = await member.dm_bot()

    # The owner is in every group; the member sees only the ones they joined themselves.
    reply = await member.command(member_dm, f"common {owner.user_id}")
    assert "Chess" in reply["body"] and "Choir" in reply["body"], reply
    assert "Football" not in reply["body"], reply
    reply = await owner.command(rooms["dm"], f"common {member.user_id}")
    assert "Chess" in reply["body"] and "Football" not in reply["body"], reply

    reply = await member.command(member_dm, f"common {loner.user_id}")
    assert "You share no group" in reply["body"], reply
    reply = await loner.command(await loner.dm_bot(), f"common {owner.user_id}")
    assert "You share no group" in reply["body"], reply
    for name in GROUPS:
        assert name not in reply["body"], reply


async def test_a_ban_holds_in_a_group_created_after_it(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Banned later")
    dm = rooms["dm"]
    mallory = await stack.user("mallory")
    reply = await owner.command(dm, f"ban {mallory.user_id} trolling")
    assert f"Banned {mallory.user_id}" in reply["body"], reply
    reply = await owner.command(dm, "group create Later")
    assert "Created group Later" in reply["body"], reply
    later = (await groups_of(stack, rooms["space"]))["Later"]
    assert await stack.membership(later, mallory.user_id) == "ban"
    event = await stack.admin_state(later, "m.room.member", mallory.user_id)
    assert event["reason"] == "trolling"

    reply = await owner.command(dm, f"unban {mallory.user_id}")
    assert f"Unbanned {mallory.user_id}" in reply["body"], reply
    reply = await owner.command(dm, "group create After")
    assert "Created group After" in reply["body"], reply
    after = (await groups_of(stack, rooms["space"]))["After"]
    assert await stack.membership(after, mallory.user_id) is None
