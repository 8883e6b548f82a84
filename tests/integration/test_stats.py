"""Stats against the real Synapse: scripted traffic from E2EE clients (encrypted messages, a
thread reply, a reaction to an announcement, a read receipt, a join and a leave) is counted
exactly, and `stats` answers with those numbers and an encrypted PNG chart."""

from __future__ import annotations

import io
from typing import Any

from nio import RoomSendResponse
from PIL import Image

from communities_appservice.db import now_ms
from communities_appservice.rules.stats import Kind, day_of

from .e2ee import E2EEUser
from .harness import Stack, eventually
from .test_announcements import encrypted_community


async def send(user: E2EEUser, room_id: str, event_type: str, content: dict[str, Any]) -> str:
    await user.sync()
    response = await user.client.room_send(
        room_id, event_type, content, ignore_unverified_devices=True
    )
    assert isinstance(response, RoomSendResponse), response
    return str(response.event_id)


async def test_scripted_traffic_is_counted_exactly(stack: Stack, people: list[E2EEUser]) -> None:
    owner, member, rooms = await encrypted_community(stack, "Counted", ["Kids", "Teens"])
    space, ann, admins = rooms["space"], rooms["announcements"], rooms["admins"]
    kids, teens = rooms["groups"]["Kids"], rooms["groups"]["Teens"]
    assert stack.app is not None
    tables = stack.app.tables

    first = await member.send(kids, "one")
    await member.send(kids, "two")
    await member.send(kids, "three")
    await send(member, kids, "m.room.message", {
        "msgtype": "m.text", "body": "in a thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": first, "is_falling_back": True,
                         "m.in_reply_to": {"event_id": first}},
    })  # fmt: skip
    await owner.send(teens, "hello teens")
    post = await owner.send(ann, "School is closed on Friday")
    await send(member, ann, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": post, "key": "👍"},
    })  # fmt: skip
    await member.client.update_receipt_marker(ann, post)
    third = await stack.e2ee_person("third")  # type: ignore[attr-defined]
    await third.join(space)
    await third.client.room_leave(space)

    day = day_of(now_ms())
    expected = {
        (kids, Kind.MESSAGE): 3,
        (kids, Kind.THREAD): 1,
        (teens, Kind.MESSAGE): 1,
        (ann, Kind.MESSAGE): 1,
        (ann, Kind.REACTION): 1,
        (space, Kind.JOIN): 3,  # the owner, the member and the third
        (space, Kind.LEAVE): 1,
        # Joins to each room: the owner and the member (the owner alone in the admins room).
        **{(room, Kind.JOIN): 2 for room in (ann, kids, teens)},
        (admins, Kind.JOIN): 1,
    }

    names = {kids: "kids", teens: "teens", ann: "announcements", space: "space"}
    last: list[dict[Any, int]] = []

    async def counted() -> bool:
        counts = {(c.room_id, c.kind): c.n for c in await tables.stats.per_room(space, day)}
        counts.pop((admins, Kind.MESSAGE), None)  # the commands that made the community
        last[:] = [{(names.get(r, r), k): n for (r, k), n in counts.items()}]
        return counts == expected

    async def read() -> bool:
        return [p.readers for p in await tables.stats.posts(space, 0, 10)] == [1]

    try:
        await eventually(counted, "the traffic counted", timeout=20)
    except AssertionError as e:
        raise AssertionError(f"{e}: {last}") from None
    await eventually(read, "the member's receipt counted")

    said = (await owner.reply_to(await owner.send(admins, "!community stats --days 2"))).body
    assert "Members: " in said and "3 joined, 1 left; 2 active" in said, said
    assert "Announcements: 1 reactions, 0 thread replies, 0 poll votes; 0 RSVPs" in said, said
    assert "Kids: 3 messages, 1 thread replies, 0 reactions, 0 poll votes" in said, said
    assert "Teens: 1 messages, 0 thread replies, 0 reactions, 0 poll votes" in said, said
    assert said.rstrip().endswith(": 1"), said  # the post, read by one member
    chart = await owner.image_bytes(await owner.image_in(admins))
    assert Image.open(io.BytesIO(chart)).format == "PNG"
