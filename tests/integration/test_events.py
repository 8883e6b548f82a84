"""Events against the real Synapse, with members' E2EE clients: the card pinned in the
encrypted announcement room, answers by command and by reaction, a reminder due while the
service is killed with SIGKILL (sent once after the restart, to those going or maybe only),
and the card unpinned at the end."""

from __future__ import annotations

import re

from nio import RoomGetStateEventResponse, RoomSendResponse

from communities_appservice.db import Tables, now_ms
from communities_appservice.db.operation import Operation

from .e2ee import E2EEUser
from .harness import Stack, eventually
from .test_announcements import encrypted_community
from .test_schedule_crash import kill, observing, restarted

MOMENT = 0.002


async def reminder_ops(tables: Tables, event_id: int) -> list[Operation]:
    rows = await tables.db.fetch(
        "SELECT id FROM operation WHERE kind='event reminder' AND params LIKE $1 ORDER BY id",
        f'%"event_id": {event_id},%',
    )
    ops = [await tables.operations.get(int(r["id"])) for r in rows]
    return [op for op in ops if op is not None]


async def pinned(user: E2EEUser, room_id: str) -> list[str]:
    found = await user.client.room_get_state_event(room_id, "m.room.pinned_events")
    if not isinstance(found, RoomGetStateEventResponse):
        return []
    return list(found.content.get("pinned") or [])


async def reminders_read(user: E2EEUser, bot: str) -> list[str]:
    """The reminders `user` reads from the bot (joining the bot's DM when invited)."""
    for room_id in list(user.client.invited_rooms):
        await user.join(room_id)
    await user.sync()
    return [
        body
        for room_id, bodies in user.notices_by_room.items()
        for body in bodies
        if body.startswith("⏰ Reminder") and room_id in user.client.rooms
    ]


async def test_a_reminder_due_across_a_kill_9_is_sent_once_to_those_going(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Picnickers", ["Kids"])
    ann, kids = rooms["announcements"], rooms["groups"]["Kids"]
    second = await stack.e2ee_person("second")  # type: ignore[attr-defined]
    await second.join(rooms["space"])
    await second.wait(lambda: ann in second.client.invited_rooms, "the announcements invite")
    await second.join(ann)
    process = await stack.spawn_app()
    try:
        async with observing(stack) as tables:
            asked = await owner.send(
                rooms["admins"],
                '!community event create "Picnic" in 60s --end "in 70s" --place Park --remind 35s',
            )
            said = (await owner.reply_to(asked)).body
            found = re.match(r"Event #(\d+): Picnic", said)
            assert found, said
            event_id = int(found.group(1))
            event = await tables.events.get(event_id)
            assert event is not None and event.card_id
            assert event.card_id in await pinned(owner, ann)
            due = event.starts_at - 35_000
            # Answers: the member by command in a group, the second by reacting ❓ to the
            # card (as Element sends a reaction), the owner says no.
            yes = await member.send(kids, f"!community rsvp #{event_id} yes")
            assert "yes" in (await member.reply_to(yes)).body
            no = await owner.send(rooms["admins"], f"!community rsvp {event_id} no")
            assert "no" in (await owner.reply_to(no)).body
            await second.sync()
            reacted = await second.client.room_send(
                ann,
                "m.reaction",
                {
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": event.card_id,
                        "key": "❓",
                    }
                },
                ignore_unverified_devices=True,
            )
            assert isinstance(reacted, RoomSendResponse), reacted

            async def answered() -> dict[str, str] | None:
                answers = await tables.events.answers(event_id)
                return dict(answers) if len(answers) == 3 else None

            answers = await eventually(answered, "the three answers")
            assert answers == {member.user_id: "yes", owner.user_id: "no", second.user_id: "maybe"}
            assert now_ms() < due - 4000, "the answers came too late to kill before the reminder"

            async def almost_due() -> bool:
                return now_ms() >= due - 3000

            await eventually(almost_due, "a few seconds before the reminder", 30, MOMENT)
            await kill(process)
            assert await reminder_ops(tables, event_id) == []

            async def past_due() -> bool:
                return now_ms() > due

            await eventually(past_due, "the reminder's time to pass while the service is down")
    finally:
        await restarted(stack, process)
    assert stack.app is not None
    tables = stack.app.tables

    async def reminded() -> Operation | None:
        ops = await reminder_ops(tables, event_id)
        return ops[0] if ops and all(op.state == "done" for op in ops) else None

    op = await eventually(reminded, "the reminder's operation to finish", timeout=60)
    assert len(await reminder_ops(tables, event_id)) == 1
    steps = await tables.operations.steps(op.id)
    assert sorted(s for s in steps if s.startswith("told:")) == sorted(
        [f"told:{member.user_id}", f"told:{second.user_id}"]
    )

    async def read_by_both() -> bool:
        return all([await reminders_read(u, stack.bot) for u in (member, second)])

    await eventually(read_by_both, "the reminder in both DMs", timeout=60)
    for user in (member, second):
        [reminder] = await reminders_read(user, stack.bot)
        assert reminder.splitlines()[0] == "⏰ Reminder: Picnic starts in 35 seconds."
    assert await reminders_read(owner, stack.bot) == []

    async def unpinned() -> bool:
        return event.card_id not in await pinned(owner, ann)

    await eventually(unpinned, "the card to be unpinned at the end", timeout=60)
