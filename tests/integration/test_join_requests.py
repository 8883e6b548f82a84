"""Join approval like WhatsApp: knock, a note for the admins, approve or deny, nothing lost."""

from __future__ import annotations

from typing import Any

from mautrix.types import PaginationDirection, RoomID

from .harness import Stack, User, eventually
from .test_groups_and_admins import joined_community


async def knock(stack: Stack, user: User, room_id: str, reason: str) -> None:
    url = f"{stack.synapse.base_url}/_matrix/client/v3/knock/{room_id}"
    headers = {"Authorization": f"Bearer {user.client.api.token}"}
    async with stack.http.post(url, json={"reason": reason}, headers=headers) as response:
        assert response.status == 200, await response.text()


async def bot_events(owner: User, room_id: str) -> list[Any]:
    response = await owner.client.get_messages(
        RoomID(room_id), PaginationDirection.BACKWARD, limit=50
    )
    return [e for e in response.events if e.sender == owner.stack.bot]


async def test_knock_is_announced_then_approved(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Approvals")
    dm, space = rooms["dm"], rooms["space"]
    assert "approval" in (await owner.command(dm, "join approval"))["body"]
    before = len(await bot_events(owner, rooms["admins"]))
    asker = await stack.user("asker")
    await knock(stack, asker, space, "My kid is in class 3b")
    await stack.wait_membership(space, asker.user_id, "knock")

    async def announced() -> bool:
        return len(await bot_events(owner, rooms["admins"])) > before

    await eventually(announced, "the knock to be announced in the admins room")

    async def recorded() -> bool:  # the request is written after its announcement
        assert stack.app is not None
        return await stack.app.tables.join_requests.get(space, asker.user_id) is not None

    await eventually(recorded, "the knock to be recorded")
    listing = await owner.command(dm, "requests")
    assert asker.user_id in listing["body"] and "class 3b" in listing["body"], listing

    reply = await owner.command(dm, f"approve {asker.user_id}")
    assert "Approved" in reply["body"], reply
    await stack.wait_membership(space, asker.user_id, "invite")
    await asker.join(space)
    await stack.wait_membership(rooms["announcements"], asker.user_id, "invite")
    assert "No one is waiting" in (await owner.command(dm, "requests"))["body"]


async def test_deny_kicks_without_banning(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Denials")
    await owner.command(rooms["dm"], "join approval")
    asker = await stack.user("asker")
    await knock(stack, asker, rooms["space"], "")
    await stack.wait_membership(rooms["space"], asker.user_id, "knock")
    await stack.idle()
    reply = await owner.command(rooms["dm"], f"deny {asker.user_id} not this year")
    assert "Denied" in reply["body"], reply
    await stack.wait_membership(rooms["space"], asker.user_id, "leave")
    reply = await owner.command(rooms["dm"], f"approve {asker.user_id}")
    assert "no pending request" in reply["body"], reply


async def test_pending_knocks_survive_a_restart_and_clear_when_answered_by_hand(
    stack: Stack,
) -> None:
    owner, rooms = await joined_community(stack, "Patient")
    await owner.command(rooms["dm"], "join approval")
    asker = await stack.user("asker")
    await knock(stack, asker, rooms["space"], "please")
    await stack.wait_membership(rooms["space"], asker.user_id, "knock")
    await stack.idle()
    await stack.restart_app()
    listing = await owner.command(rooms["dm"], "requests")
    assert asker.user_id in listing["body"], listing
    # An admin lets them in by hand, in a client: the request is settled too.
    await owner.client.invite_user(RoomID(rooms["space"]), asker.user_id)  # type: ignore[arg-type]
    await stack.wait_membership(rooms["space"], asker.user_id, "invite")
    await stack.idle()
    assert "No one is waiting" in (await owner.command(rooms["dm"], "requests"))["body"]


async def test_approval_group_requests(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Group asks")
    await owner.command(rooms["dm"], "group create Board --approval")
    assert stack.app is not None
    [board] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    member = await stack.user("member")
    await member.join(rooms["space"])
    await knock(stack, member, board.room_id, "I can help")
    await stack.wait_membership(board.room_id, member.user_id, "knock")
    await stack.idle()
    listing = await owner.command(rooms["dm"], "requests")
    assert "for Board" in listing["body"], listing
    # A group admin answers the requests of their group, and only those.
    moderator = await stack.user("moderator")
    await moderator.join(rooms["space"])
    await owner.join(board.room_id)
    await owner.client.invite_user(RoomID(board.room_id), moderator.user_id)  # type: ignore[arg-type]
    await moderator.join(board.room_id)
    reply = await owner.command(rooms["dm"], f"group admin add {moderator.user_id} --group Board")
    assert "admin" in reply["body"], reply
    moderator_dm = await moderator.dm_bot()
    await owner.command(rooms["dm"], "join approval")
    asker = await stack.user("asker")
    await knock(stack, asker, rooms["space"], "me too")
    await stack.wait_membership(rooms["space"], asker.user_id, "knock")
    await stack.idle()
    reply = await moderator.command(moderator_dm, f"approve {asker.user_id}")
    assert "Only admins" in reply["body"], reply
    reply = await moderator.command(moderator_dm, f"approve {member.user_id} --group Board")
    assert "invited to Board" in reply["body"], reply
    await stack.wait_membership(board.room_id, member.user_id, "invite")
