"""What people see in a client (Element): reactions they can take back, an owner that reads
right, invitations in an order a client can show, readable links and rooms that look apart."""

from __future__ import annotations

import pytest
from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, RoomID

from .harness import Stack
from .test_groups_and_admins import joined_community


async def test_a_member_takes_back_their_own_reaction_but_no_one_elses(stack: Stack) -> None:
    """What Element sends in an (encrypted) announcement room: the reaction and its
    redaction travel unencrypted, as `m.reaction` and `m.room.redaction`."""
    owner, rooms = await joined_community(stack, "Reactions")
    ann = RoomID(rooms["announcements"])
    member = await stack.user("member")
    await member.join(rooms["space"])
    await stack.wait_membership(ann, member.user_id, "invite")
    await member.join(ann)
    announcement = await owner.send(ann, "School is closed on Friday")
    reaction = await member.client.send_message_event(
        ann,
        EventType.REACTION,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": announcement, "key": "👍"}},  # type: ignore[arg-type]
    )
    await member.client.redact(ann, reaction)  # taking it back
    with pytest.raises(MatrixRequestError) as refused:
        await member.client.redact(ann, announcement)  # another's event: admins only
    assert refused.value.http_status == 403


async def test_the_owner_is_invited_to_the_space_first_then_to_its_rooms(stack: Stack) -> None:
    owner = await stack.user("owner")
    dm = await owner.dm_bot()
    reply = await owner.command(dm, 'create "Ordered" --groups "Kids,Teens"')
    assert "once you join the space" in reply["body"], reply
    assert stack.app is not None
    [community] = [
        c for c in await stack.app.tables.communities.all_active() if c.owner == owner.user_id
    ]
    rooms = await stack.app.tables.rooms.of_community(community.space_id)
    by_role = {r.role: r.room_id for r in rooms if r.role != "group"}
    inside = [by_role["announcements"], *(r.room_id for r in rooms if r.role == "group")]
    assert await stack.membership(community.space_id, owner.user_id) == "invite"
    assert await stack.membership(by_role["admins"], owner.user_id) == "invite"
    for room_id in inside:
        assert await stack.membership(room_id, owner.user_id) is None, room_id
    await owner.join(community.space_id)
    for room_id in inside:
        await stack.wait_membership(room_id, owner.user_id, "invite")
