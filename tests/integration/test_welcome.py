"""Rules pinned in the announcement room; every new member welcomed once, by DM."""

from __future__ import annotations

from mautrix.types import PaginationDirection, RoomID

from .harness import Stack, User, eventually
from .test_groups_and_admins import joined_community


async def bot_messages(user: User, room_id: str) -> int:
    response = await user.client.get_messages(
        RoomID(room_id), PaginationDirection.BACKWARD, limit=50
    )
    return sum(
        1
        for e in response.events
        if e.sender == user.stack.bot and str(e.type) in ("m.room.message", "m.room.encrypted")
    )


async def test_rules_are_pinned_and_replaced(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Ruled")
    dm, ann = rooms["dm"], rooms["announcements"]
    assert "no rules yet" in (await owner.command(dm, "rules"))["body"]
    assert "pinned" in (await owner.command(dm, "rules set Be kind & <b>patient</b>"))["body"]
    first = (await owner.state(ann, "m.room.pinned_events"))["pinned"]
    assert len(first) == 1
    shown = await owner.command(dm, "rules")
    assert "Be kind & <b>patient</b>" in shown["body"]
    assert "&lt;b&gt;patient&lt;/b&gt;" in shown["formatted_body"]
    await owner.command(dm, "rules set Be kinder")
    second = (await owner.state(ann, "m.room.pinned_events"))["pinned"]
    assert len(second) == 1 and second != first
    member = await stack.user("member")
    member_dm = await member.dm_bot()
    await member.join(rooms["space"])
    await stack.wait_member(rooms["space"], member.user_id)
    reply = await member.command(member_dm, "rules set Mine")
    assert "Only admins" in reply["body"], reply


async def test_new_member_is_welcomed_once_by_dm(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Welcoming")
    await owner.command(rooms["dm"], "welcome set Hello, parents!")
    await owner.command(rooms["dm"], "rules set No ads")
    assert "Hello, parents!" in (await owner.command(rooms["dm"], "welcome"))["body"]
    newcomer = await stack.user("newcomer")
    await newcomer.join(rooms["space"])
    assert stack.app is not None
    app = stack.app

    async def dm_room() -> str | None:
        return await app.tables.bot_dms.get(newcomer.user_id)

    dm = await eventually(dm_room, "the bot's DM with the newcomer")
    await stack.wait_membership(dm, newcomer.user_id, "invite")
    await newcomer.join(dm)
    assert (await newcomer.state(dm, "m.room.encryption"))["algorithm"]

    async def greeted() -> bool:
        return await bot_messages(newcomer, dm) == 1

    await eventually(greeted, "the welcome notice")
    await newcomer.client.leave_room(RoomID(rooms["space"]))
    await stack.wait_membership(rooms["space"], newcomer.user_id, "leave")
    await newcomer.join(rooms["space"])
    await stack.idle()
    assert await bot_messages(newcomer, dm) == 1
