"""What people see in a client (Element): reactions they can take back, an owner that reads
right, invitations in an order a client can show, readable links and rooms that look apart."""

from __future__ import annotations

import pytest
from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, RoomID, UserID

from .e2ee import E2EEUser
from .harness import Stack, eventually
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


async def test_rooms_read_as_the_communitys_and_admins_find_their_room(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, rooms = await joined_community(stack, "Lagos Chapter")
    for role in ("space", "announcements", "admins"):
        member = await stack.admin_state(rooms[role], "m.room.member", stack.bot)
        assert member["displayname"] == "Lagos Chapter", role  # the "Owner" clients show
    names = {
        role: (await stack.admin_state(rooms[role], "m.room.name"))["name"]
        for role in ("space", "announcements", "admins")
    }
    assert names == {
        "space": "Lagos Chapter",
        "announcements": "📢 Lagos Chapter · Announcements",
        "admins": "🛡️ Lagos Chapter · Admins",
    }
    help_text = (await owner.command(rooms["dm"], "help"))["body"]
    assert "at most 20 admins" in help_text and "max_admins" not in help_text
    info = await owner.command(rooms["dm"], "info")
    assert f"https://matrix.to/#/{rooms['admins']}" in info["formatted_body"]

    member = await stack.e2ee_person("member")  # type: ignore[attr-defined]
    await member.join(rooms["space"])
    promoted = await owner.command(rooms["dm"], f"admin add {member.user_id}")
    assert "now an admin" in promoted["body"], promoted

    async def their_dm() -> str | None:
        assert stack.app is not None
        dm = await stack.app.tables.bot_dms.get(UserID(member.user_id))
        return str(dm) if dm else None

    dm = await eventually(their_dm, "the new admin's DM with the bot")
    await member.join(dm)
    told = await member.notice_in(dm, "You are now an admin")
    assert "Lagos Chapter" in told


async def test_a_community_of_the_previous_version_gets_the_new_levels(stack: Stack) -> None:
    """Its announcement room as the previous version made it (no level for redactions):
    reconciliation brings it to the new levels and records the repair."""
    owner, rooms = await joined_community(stack, "Older")
    ann = RoomID(rooms["announcements"])
    assert stack.app is not None and stack.app.gateway is not None
    levels = await stack.admin_state(ann, "m.room.power_levels")
    del levels["events"]["m.room.redaction"]
    await stack.app.gateway.send_state(ann, "m.room.power_levels", levels)

    async def repaired() -> bool:
        assert stack.app is not None and stack.app.reconciler is not None
        community = await stack.app.tables.communities.get(rooms["space"])
        assert community is not None
        await stack.app.reconciler.community(community)
        now = await stack.admin_state(ann, "m.room.power_levels")
        return now["events"].get("m.room.redaction") == 0

    await eventually(repaired, "reconciliation to restore the redaction level", 60, 0.5)
    entries = await stack.app.tables.audit.recent(rooms["space"], 20)
    assert any(e.action == "repair" and e.target == ann for e in entries)
