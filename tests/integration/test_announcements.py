"""announce, relay and scheduled posts against the real Synapse, read by members' own E2EE
clients (matrix-nio) in the encrypted announcement room and groups."""

from __future__ import annotations

import secrets
from typing import Any

from communities_appservice.db import now_ms

from .e2ee import E2EEUser
from .harness import Stack, eventually

PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(64)


async def encrypted_community(
    stack: Stack, name: str, groups: list[str]
) -> tuple[E2EEUser, E2EEUser, dict[str, Any]]:
    """A community made from an encrypted DM, its owner in every room, and a member in the
    space, the announcement room and the open groups. The rooms by role (groups by name)."""
    person = stack.e2ee_person  # type: ignore[attr-defined]
    owner = await person("owner")
    dm = await owner.encrypted_dm(stack.bot)
    made = await owner.reply_to(
        await owner.send(dm, f"!community create {name} --join open --groups {','.join(groups)}")
    )
    assert "Created community" in made.body, made.body
    assert stack.app is not None
    [community] = [c for c in await stack.app.tables.communities.all_active() if c.name == name]
    records = await stack.app.tables.rooms.of_community(community.space_id)
    rooms: dict[str, Any] = {r.role: r.room_id for r in records if r.role != "group"}
    rooms["groups"] = {r.name: r.room_id for r in records if r.role == "group"}
    rooms["dm"] = dm
    for room in (rooms["space"], rooms["admins"]):
        await owner.join(room)
    await owner.wait(
        lambda: rooms["announcements"] in owner.client.invited_rooms, "the announcements invite"
    )
    for room in (rooms["announcements"], *rooms["groups"].values()):
        await owner.join(room)
    member = await person("member")
    await member.join(rooms["space"])
    await member.wait(
        lambda: rooms["announcements"] in member.client.invited_rooms, "the announcements invite"
    )
    await member.join(rooms["announcements"])
    for group in rooms["groups"].values():
        await member.join(group)
    return owner, member, rooms


async def test_announce_reaches_every_room_encrypted_and_escaped(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Announcers", ["Kids", "Teens"])
    mark = secrets.token_hex(3)
    command = await owner.send(
        rooms["admins"], f"!community announce --groups Kids **Trip {mark}** <b>x</b> & co"
    )
    ack = await owner.reply_to(command)
    assert ack.body == "Announced in the announcement room and 1 groups.", ack.body
    for room in (rooms["announcements"], rooms["groups"]["Kids"]):
        got = await member.text_in(room, f"Trip {mark}")
        assert got.decrypted, room
        assert got.source["content"]["m.mentions"] == {}
        html = got.formatted_body or ""
        assert f"<strong>Trip {mark}</strong>" in html and "&lt;b&gt;x&lt;/b&gt; &amp; co" in html
        assert got.body.endswith(f"— {owner.user_id}")
    refused = await member.reply_to(
        await member.send(rooms["groups"]["Teens"], "!community announce hello")
    )
    assert "Only admins" in refused.body
    assert not any(
        f"Trip {mark}" in e.body for r, e in member.texts if r == rooms["groups"]["Teens"]
    )


async def test_relay_copies_an_image_into_the_groups_and_names_one_it_cannot_reach(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Relayers", ["Open", "Other"])
    hidden = await owner.reply_to(
        await owner.send(rooms["admins"], "!community group create Hidden --private")
    )
    assert "Created group Hidden" in hidden.body
    assert stack.app is not None
    [gone] = [
        g.room_id
        for g in await stack.app.tables.rooms.of_community(rooms["space"], "group")
        if g.name == "Hidden"
    ]
    # The bot is taken out of the private group (by the server's admin, say): it cannot go
    # back in without an invitation.
    token = stack.app.config.appservice.as_token
    url = f"{stack.synapse.base_url}/_matrix/client/v3/rooms/{gone}/leave"
    async with stack.http.post(
        url, params={"user_id": stack.bot}, json={}, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200, await response.text()

    async def out() -> bool:  # the room has nobody of this server left: no state to read
        return await stack.membership(gone, stack.bot) in (None, "leave")

    await eventually(out, "the bot to be out of the private group")

    image = await owner.send_image(rooms["announcements"], PNG, "poster.png")
    ack = await owner.reply_to(await owner.reply(rooms["announcements"], "!community relay", image))
    assert ack.body.startswith("Relayed into 2 of 3 groups."), ack.body
    assert "Not posted in: Hidden" in ack.body
    for name in ("Open", "Other"):
        copy = await member.image_in(rooms["groups"][name])
        assert await member.image_bytes(copy) == PNG
        assert copy.source["content"]["body"] == f"— relayed from {owner.user_id}"
        assert copy.source["content"]["filename"] == "poster.png"

    text = await owner.send(rooms["announcements"], "Bring **snacks**")
    ack = await owner.reply_to(
        await owner.reply(rooms["announcements"], "!community relay --groups Open", text)
    )
    assert ack.body == "Relayed into 1 of 1 groups.", ack.body
    got = await member.text_in(rooms["groups"]["Open"], "Bring **snacks**")
    assert got.decrypted and got.body.endswith(f"— relayed from {owner.user_id}")


async def test_a_scheduled_post_is_sent_once_and_listed_until_then(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Schedulers", ["Kids"])
    mark = secrets.token_hex(3)
    later = await owner.reply_to(
        await owner.send(rooms["admins"], f"!community schedule in 3d --every week Later {mark}")
    )
    assert later.body.startswith("Scheduled post #") and "then every week" in later.body
    soon = await owner.reply_to(
        await owner.send(rooms["admins"], f"!community schedule in 2s --groups all Soon {mark}")
    )
    assert soon.body.startswith("Scheduled post #"), soon.body
    for room in (rooms["announcements"], rooms["groups"]["Kids"]):
        got = await member.text_in(room, f"Soon {mark}")
        assert got.decrypted
    listing = await owner.reply_to(await owner.send(rooms["admins"], "!community scheduled"))
    assert f"Later {mark}" in listing.body and f"Soon {mark}" not in listing.body
    assert stack.app is not None
    [job] = await stack.app.tables.schedule.pending(rooms["space"])
    assert job.due_at > now_ms()

    async def once() -> bool:  # the one post, and the job over
        return not [
            j for j in await stack.app.tables.schedule.pending(rooms["space"]) if j.id != job.id
        ]

    await eventually(once, "the one-off job to be over")
    assert (
        sum(f"Soon {mark}" in e.body for r, e in member.texts if r == rooms["announcements"]) == 1
    )


async def test_threads_mode_keeps_thread_replies_and_takes_down_the_rest(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Threaders", ["Kids"])
    ann = rooms["announcements"]
    on = await owner.reply_to(await owner.send(rooms["admins"], "!community replies threads"))
    assert "may now answer announcements in their threads" in on.body
    mark = secrets.token_hex(3)
    await owner.reply_to(await owner.send(rooms["admins"], f"!community announce News {mark}"))
    news = await member.text_in(ann, f"News {mark}")
    thread = {"rel_type": "m.thread", "event_id": news.event_id, "is_falling_back": True}
    thread["m.in_reply_to"] = {"event_id": news.event_id}
    reply = await member.send_content(
        ann, {"msgtype": "m.text", "body": "Thanks!", "m.relates_to": thread}
    )
    stray = await member.send_content(ann, {"msgtype": "m.text", "body": "Hello all"})

    async def content_of(event_id: str) -> dict[str, Any]:
        event = await owner.client.room_get_event(ann, event_id)
        return dict(event.event.source.get("content") or {})  # type: ignore[union-attr]

    async def taken_down() -> bool:
        return await content_of(stray) == {}

    await eventually(taken_down, "the top-level message to be redacted")
    assert await content_of(reply) != {}  # handled before it, and kept
    await member.wait(lambda: bool(member.client.invited_rooms), "the bot's DM")
    [dm] = list(member.client.invited_rooms)
    await member.join(dm)
    told = await member.notice_in(dm, "taken down")
    assert "thread" in told

    off = await owner.reply_to(await owner.send(rooms["admins"], "!community replies off"))
    assert "can no longer post" in off.body
    refused = await member.client.room_send(
        ann,
        "m.room.message",
        {"msgtype": "m.text", "body": "again"},
        ignore_unverified_devices=True,
    )
    assert getattr(refused, "status_code", None) == "M_FORBIDDEN", refused


async def test_deactivate_unlinks_groups_closes_announcements_and_refuses_later_commands(
    stack: Stack,
) -> None:
    from .test_groups_and_admins import joined_community

    owner, rooms = await joined_community(stack, "Ending")
    dm = rooms["dm"]
    assert "Created group Stays" in (await owner.command(dm, "group create Stays"))["body"]
    assert stack.app is not None
    [group] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    await owner.join(group.room_id)
    asked = await owner.command(dm, "deactivate")
    assert "cannot be undone" in asked["body"] and "--confirm" in asked["body"], asked
    done = await owner.command(dm, "deactivate --confirm")
    assert done["body"] == "Deactivated Ending. Only info answers for it now.", done
    assert await owner.state(group.room_id, "m.space.parent", rooms["space"]) == {}
    assert await stack.membership(group.room_id, owner.user_id) == "join"  # it lives on
    power = await owner.state(rooms["announcements"], "m.room.power_levels")
    assert power["events_default"] > 100  # nobody posts any more
    later = await owner.command(dm, "group list")
    assert later["body"] == "⚠️ Ending is deactivated: only info answers for it.", later
    info = await owner.command(rooms["space"], "info")
    assert "Deactivated" in info["body"], info


async def test_avatar_sets_the_photo_of_the_space_and_the_announcement_room(
    stack: Stack,
) -> None:
    from mautrix.types import RoomID

    from .test_groups_and_admins import joined_community

    owner, rooms = await joined_community(stack, "Pictured")
    uri = await owner.client.upload_media(PNG, mime_type="image/png", filename="logo.png")
    image = await owner.send(
        rooms["dm"], "logo.png", msgtype="m.image", url=uri, info={"mimetype": "image/png"}
    )
    content = {"m.relates_to": {"m.in_reply_to": {"event_id": image}}}
    reply = await owner.command(rooms["dm"], "avatar", **content)
    assert reply["body"] == "The community's photo is set.", reply
    for room in (rooms["space"], rooms["announcements"]):
        avatar = await owner.client.get_state_event(RoomID(room), "m.room.avatar")  # type: ignore[arg-type]
        assert str(avatar["url"]) == str(uri)
