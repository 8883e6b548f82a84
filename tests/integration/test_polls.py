"""Polls against the real Synapse: the bot's poll in the encrypted announcement room and a
group, encrypted votes sent as Element sends them (matrix-nio clients, the relation in the
clear), a changed and a spoiled vote, the tally, and the end closing the room again."""

from __future__ import annotations

import secrets
from typing import Any

from nio import RoomSendResponse, UnknownEvent

from communities_appservice.rules import polls

from .e2ee import E2EEUser
from .harness import Stack, eventually
from .test_announcements import encrypted_community


async def vote(user: E2EEUser, room_id: str, poll_event: str, answers: list[str]) -> Any:
    """A poll response as Element sends it; encrypted, since the room is."""
    await user.sync()
    return await user.client.room_send(
        room_id,
        polls.RESPONSE,
        {
            "m.relates_to": {"rel_type": "m.reference", "event_id": poll_event},
            polls.RESPONSE: {"answers": answers},
        },
        ignore_unverified_devices=True,
    )


async def test_a_poll_in_announcements_and_a_group_tallies_encrypted_votes(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Pollsters", ["Kids"])
    ann, kids = rooms["announcements"], rooms["groups"]["Kids"]
    second = await stack.e2ee_person("second")  # type: ignore[attr-defined]
    await second.join(rooms["space"])
    await second.wait(lambda: ann in second.client.invited_rooms, "the announcements invite")
    await second.join(ann)
    await second.join(kids)
    seen: list[tuple[str, dict[str, Any]]] = []

    async def on_unknown(room: Any, event: UnknownEvent) -> None:
        seen.append((room.room_id, event.source))

    member.client.add_event_callback(on_unknown, UnknownEvent)  # type: ignore[arg-type]

    mark = secrets.token_hex(3)
    asked = await owner.send(
        rooms["admins"], f'!community poll "Lunch {mark}?" Pizza Pasta --groups Kids'
    )
    said = (await owner.reply_to(asked)).body
    assert said.startswith("Poll #") and "the announcement room, Kids" in said, said
    poll_id = int(said.split("#")[1].split()[0])
    assert stack.app is not None
    posts = await stack.app.tables.polls.posts(poll_id)
    assert set(posts) == {ann, kids}

    # The member's client decrypts the poll as Element renders it.
    def start_in(room_id: str) -> dict[str, Any] | None:
        for room, source in seen:
            if room == room_id and source.get("type") == polls.START:
                return dict(source["content"])
        return None

    await member.wait(lambda: start_in(ann) and start_in(kids), "the poll in both rooms")
    start = start_in(ann)
    assert start is not None
    assert start[polls.START]["question"][polls.TEXT] == f"Lunch {mark}?"
    assert [a[polls.TEXT] for a in start[polls.START]["answers"]] == ["Pizza", "Pasta"]

    # Votes, encrypted: the member in the announcement room (members cannot post there),
    # the second voter in the group and then, changed, in the announcement room, the
    # owner's spoiled (an answer the poll does not have).
    sent = [
        await vote(member, ann, posts[ann], ["1"]),
        await vote(second, kids, posts[kids], ["2"]),
        await vote(second, ann, posts[ann], ["1"]),
        await vote(owner, ann, posts[ann], ["9"]),
    ]
    assert all(isinstance(r, RoomSendResponse) for r in sent), sent
    # A plain message slipped in while the room is open to votes is taken down.
    stray = await member.send_content(ann, {"msgtype": "m.text", "body": f"Hello {mark}"})

    async def all_recorded() -> bool:
        return len(await stack.app.tables.polls.votes(poll_id)) == 4  # type: ignore[union-attr]

    await eventually(all_recorded, "the bot to decrypt and record the four votes")

    async def taken_down() -> bool:
        event = await owner.client.room_get_event(ann, stray)
        return event.event.source.get("content") == {}  # type: ignore[union-attr]

    await eventually(taken_down, "the stray message to be redacted")

    results = (
        await owner.reply_to(
            await owner.send(rooms["admins"], f"!community poll results {poll_id}")
        )
    ).body
    assert results.splitlines()[1:] == [
        "🏆 1. Pizza — 2 (100%)",
        "2. Pasta — 0 (0%)",
        "2 voters · 1 spoiled · open",
    ], results

    ended = (
        await owner.reply_to(await owner.send(rooms["admins"], f"!community poll end #{poll_id}"))
    ).body
    assert ended.startswith(f"Poll #{poll_id} has ended."), ended

    def end_in(room_id: str) -> dict[str, Any] | None:
        for room, source in seen:
            if room == room_id and source.get("type") == polls.END:
                return dict(source["content"])
        return None

    await member.wait(lambda: end_in(ann) and end_in(kids), "the poll's end in both rooms")
    for room in (ann, kids):
        end = end_in(room)
        assert end is not None
        assert end["m.relates_to"] == {"rel_type": "m.reference", "event_id": posts[room]}
        assert "Top answer: Pizza" in end[polls.TEXT]
    # Closed again: the homeserver refuses members' encrypted events there.
    refused = await vote(member, ann, posts[ann], ["2"])
    assert getattr(refused, "status_code", None) == "M_FORBIDDEN", refused
    # A late vote in the group is recorded, and does not count.
    assert isinstance(await vote(second, kids, posts[kids], ["2"]), RoomSendResponse)

    async def late_recorded() -> bool:
        return len(await stack.app.tables.polls.votes(poll_id)) == 5  # type: ignore[union-attr]

    await eventually(late_recorded, "the bot to record the late vote")
    later = (
        await owner.reply_to(
            await owner.send(rooms["admins"], f"!community poll results {poll_id}")
        )
    ).body
    assert "🏆 1. Pizza — 2 (100%)" in later.splitlines(), later
