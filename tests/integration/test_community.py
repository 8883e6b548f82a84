"""Creating a community and the room model of DESIGN §2, as the homeserver holds it."""

from __future__ import annotations

from typing import Any

from mautrix.errors import MForbidden
from mautrix.types import EventType, RoomID

from communities_appservice.rules.power import BOT_ONLY_EVENTS

from .harness import Stack, User

BOT_ONLY = set(BOT_ONLY_EVENTS)


async def create(stack: Stack, owner: User, name: str, *extra: str) -> dict[str, str]:
    dm = await owner.dm_bot()
    reply = await owner.command(dm, f'create "{name}" ' + " ".join(extra))
    assert "Created community" in reply["body"], reply
    assert stack.app is not None
    [community] = [
        c
        for c in await stack.app.tables.communities.all_active()
        if c.name == name and c.owner == owner.user_id
    ]
    rooms = {
        r.role: r.room_id for r in await stack.app.tables.rooms.of_community(community.space_id)
    }
    return {"dm": dm, **rooms}


def assert_bot_only(power: dict[str, Any]) -> None:
    for event in BOT_ONLY:
        assert power["events"][event] == 101, event


async def test_create_builds_every_room_of_the_model(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Parents Berlin", "--description", '"City chapter"')
    space, ann, admins = rooms["space"], rooms["announcements"], rooms["admins"]

    create_event = await owner.state(space, "m.room.create")
    assert create_event["type"] == "m.space"
    assert create_event["room_version"] == "12"
    assert await owner.state(space, "m.room.name") == {"name": "Parents Berlin"}
    assert (await owner.state(space, "m.room.topic"))["topic"] == "City chapter"
    assert (await owner.state(space, "m.room.join_rules"))["join_rule"] == "knock"
    assert await owner.state(space, "m.room.encryption") == {}
    space_power = await owner.state(space, "m.room.power_levels")
    assert space_power["users"] == {owner.user_id: 100}
    assert space_power["events_default"] == 100
    assert space_power["state_default"] == 100
    assert_bot_only(space_power)
    assert await owner.state(space, "communities.room") == {"community": space, "role": "space"}

    child = await owner.state(space, "m.space.child", ann)
    assert child == {"via": ["localhost"], "order": "0", "suggested": True}
    assert await owner.state(space, "m.space.child", admins) == {}

    for room_id, role in ((ann, "announcements"), (admins, "admins")):
        assert (await owner.state(room_id, "m.room.create"))["room_version"] == "12"
        assert await owner.state(room_id, "m.room.encryption") == {
            "algorithm": "m.megolm.v1.aes-sha2"
        }
        assert await owner.state(room_id, "communities.room") == {
            "community": space,
            "role": role,
        }
        # The admins room invites at once; the announcement room once the owner is in
        # the space (test_element.py).
        expected = "invite" if role == "admins" else None
        assert await stack.membership(room_id, owner.user_id) == expected, role
        power = await owner.state(room_id, "m.room.power_levels")
        assert power["users"] == {owner.user_id: 100}
        assert_bot_only(power)

    ann_power = await owner.state(ann, "m.room.power_levels")
    assert ann_power["events_default"] == 100
    assert ann_power["events"]["m.reaction"] == 0
    assert await owner.state(ann, "m.room.join_rules") == {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": space}],
    }
    assert await owner.state(ann, "m.space.parent", space) == {
        "via": ["localhost"],
        "canonical": True,
    }
    assert (await owner.state(admins, "m.room.join_rules"))["join_rule"] == "invite"
    assert await owner.state(admins, "m.space.parent", space) == {}
    assert await stack.membership(space, owner.user_id) == "invite"


async def test_reply_is_a_threaded_notice_with_escaped_html(stack: Stack) -> None:
    owner = await stack.user("owner")
    dm = await owner.dm_bot()
    event_id = await owner.send(dm, '!community create "<b>Kids & co</b>"')
    reply = await stack.reply_to(owner, dm, event_id)
    assert reply["msgtype"] == "m.notice"
    assert reply["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
    assert "&lt;b&gt;Kids &amp; co&lt;/b&gt;" in reply["formatted_body"]
    assert "<b>Kids" not in reply["formatted_body"]


async def test_member_cannot_post_in_announcements_but_can_react(stack: Stack) -> None:
    owner, member = await stack.user("owner"), await stack.user("member")
    rooms = await create(stack, owner, "Reactions", "--join", "open")
    space, ann = rooms["space"], rooms["announcements"]
    await owner.join(space)
    await owner.join(ann)
    post = await owner.send(ann, "First announcement")
    await member.join(space)
    await stack.wait_membership(ann, member.user_id, "invite")
    await member.join(ann)
    try:
        await member.send(ann, "me too")
    except MForbidden:
        pass
    else:
        raise AssertionError("a member posted in the announcement room")
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": post, "key": "👍"}}
    await member.client.send_message_event(
        RoomID(ann),
        EventType.REACTION,
        reaction,  # type: ignore[arg-type]
    )


async def test_admin_cannot_edit_power_or_structure_by_hand(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Locked", "--join", "open")
    space = rooms["space"]
    await owner.join(space)
    power = await owner.state(space, "m.room.power_levels")
    power["users"][owner.user_id] = 100
    power["users"]["@intruder:localhost"] = 100
    for event_type, content, key in (
        ("m.room.power_levels", power, ""),
        ("m.space.child", {"via": ["localhost"]}, "!elsewhere:localhost"),
    ):
        try:
            await owner.client.send_state_event(
                RoomID(space), EventType.find(event_type, EventType.Class.STATE), content, key
            )
        except MForbidden:
            continue
        raise AssertionError(f"an admin changed {event_type} by hand")


async def test_join_mode_sets_the_space_join_rule(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Modes", "--join", "invite")
    space, dm = rooms["space"], rooms["dm"]
    for mode, rule in (("open", "public"), ("approval", "knock"), ("invite", "invite")):
        reply = await owner.command(dm, f"join {mode}")
        assert "is now" in reply["body"], reply
        assert (await owner.state(space, "m.room.join_rules"))["join_rule"] == rule
    assert "already in invite mode" in (await owner.command(dm, "join invite"))["body"]
    reply = await owner.command(dm, "join everyone")
    assert "not 'everyone'" in reply["body"] and "Usage" in reply["body"], reply
    assert (await owner.state(space, "m.room.join_rules"))["join_rule"] == "invite"
    info = await owner.command(dm, "info")
    assert "Join: invite only" in info["body"], info
