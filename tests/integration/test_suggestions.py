"""Group suggestions: members propose, admins accept (create or adopt) or reject."""

from __future__ import annotations

from .harness import Stack
from .test_groups_and_admins import joined_community


async def test_suggest_accept_and_reject(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Suggesters")
    member = await stack.user("member")
    await member.join(rooms["space"])
    dm = await member.dm_bot()
    await stack.wait_member(rooms["space"], member.user_id)
    reply = await member.command(dm, "group suggest Chess club")
    assert "Suggested Chess club (#" in reply["body"], reply
    chess = reply["body"].split("(#")[1].split(")")[0]
    reply = await member.command(dm, "group suggest Poker")
    poker = reply["body"].split("(#")[1].split(")")[0]
    assert "Only admins" in (await member.command(dm, f"group accept {chess}"))["body"]

    listing = await owner.command(rooms["dm"], "group pending")
    assert f"#{chess} Chess club" in listing["body"] and f"#{poker} Poker" in listing["body"]
    reply = await owner.command(rooms["dm"], f"group accept #{chess}")
    assert "Chess club is now a group" in reply["body"], reply
    reply = await owner.command(rooms["dm"], f"group reject {poker}")
    assert "Rejected" in reply["body"], reply
    assert "No suggested groups" in (await owner.command(rooms["dm"], "group pending"))["body"]
    assert stack.app is not None
    groups = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    assert [g.name for g in groups] == ["Chess club"]
    reply = await owner.command(rooms["dm"], f"group accept {poker}")
    assert "no pending suggestion" in reply["body"], reply


async def test_a_room_of_another_community_cannot_be_suggested(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "First")
    await owner.command(rooms["dm"], "group create Taken")
    assert stack.app is not None
    [taken] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    other_owner, other = await joined_community(stack, "Second suggester")
    reply = await other_owner.command(other["dm"], f"group suggest {taken.room_id}")
    assert "already belongs to a community" in reply["body"], reply


async def test_suggestions_can_be_switched_off(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "No suggestions")
    await stack.restart_app(group_suggestions=False)
    try:
        reply = await owner.command(rooms["dm"], "group suggest Anything")
        assert "switched off" in reply["body"], reply
    finally:
        await stack.restart_app()
