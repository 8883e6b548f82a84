"""poll, poll results, poll end through the dispatcher: where a poll goes, the announcement
room opened to votes and closed again, votes tallied across rooms by MSC3381's rules, an end
from a client, and the refusals."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core import operations
from communities_appservice.core.events import Events, RetryLater
from communities_appservice.core.operations import OpState
from communities_appservice.core.service import Service
from communities_appservice.rules import polls

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, CAROL, OWNER, CommunityMaker, Homeserver, Made, until

_IDS = itertools.count(1)
DOWN = aiohttp.ClientConnectionError("the homeserver is away")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(operations, "RETRY_MAX", 0.02)


@pytest.fixture
async def made(create_community: CommunityMaker, homeserver: Homeserver) -> Made:
    made = await create_community(groups=["Kids", "Teens"])
    for user in (ALICE, BOB, CAROL):
        await homeserver.join(made.space, user, event=True)
    return made


async def ask(
    service: Service, gateway: RecordingGateway, room: RoomID, body: str, sender: UserID = OWNER
) -> str:
    event = {
        "type": "m.room.message",
        "sender": sender,
        "room_id": room,
        "event_id": f"$p{next(_IDS)}",
        "content": {"msgtype": "m.text", "body": body},
    }
    dispatcher = Dispatcher(service)
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    await dispatcher.handle(incoming)
    return str(gateway.sent(room)[-1]["body"])


def of_type(gateway: RecordingGateway, room: RoomID, event_type: str) -> list[dict[str, Any]]:
    return [c for t, c in gateway.rooms[room].messages if t == event_type]


def response(
    room: RoomID, sender: str, poll_event: str, answers: list[str] | None, ts: int
) -> dict[str, Any]:
    """A vote as Element sends it (decrypted)."""
    content: dict[str, Any] = {
        "m.relates_to": {"rel_type": "m.reference", "event_id": poll_event},
        polls.RESPONSE: {} if answers is None else {"answers": answers},
    }
    return {
        "type": polls.RESPONSE,
        "room_id": room,
        "sender": sender,
        "event_id": f"$v{next(_IDS)}",
        "origin_server_ts": ts,
        "content": content,
    }


def encrypted(room: RoomID, sender: str, relates: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any] = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "…"}
    if relates is not None:
        content["m.relates_to"] = relates
    return {
        "type": "m.room.encrypted",
        "room_id": room,
        "sender": sender,
        "event_id": f"$x{next(_IDS)}",
        "content": content,
    }


def power_events(gateway: RecordingGateway, room: RoomID) -> dict[str, int]:
    return dict(gateway.rooms[room].state[("m.room.power_levels", "")]["events"])


async def test_a_poll_opens_the_announcement_room_to_votes_and_its_end_closes_it(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    closed = power_events(gateway, made.announcements)
    assert closed["m.room.encrypted"] == closed[polls.RESPONSE] == 100
    said = await ask(
        service, gateway, made.admins, '!community poll "Lunch <b>?</b>" Pizza Pasta --groups Kids'
    )
    assert said == "Poll #1 is open in the announcement room, Kids."
    opened = power_events(gateway, made.announcements)
    assert opened["m.room.encrypted"] == opened[polls.RESPONSE] == opened["m.poll.response"] == 0
    assert opened["m.room.message"] == 100  # plain messages stay the admins'
    [start] = of_type(gateway, made.announcements, polls.START)
    assert start[polls.START]["answers"][0] == {"id": "1", polls.TEXT: "Pizza"}
    assert start[polls.TEXT] == "Lunch <b>?</b>\n1. Pizza\n2. Pasta"
    assert len(of_type(gateway, made.groups["Kids"], polls.START)) == 1
    assert of_type(gateway, made.groups["Teens"], polls.START) == []
    posts = await service.db.polls.posts(1)
    assert set(posts) == {made.announcements, made.groups["Kids"]}

    # Votes in both rooms, a changed vote, a spoiled one, one after the end.
    votes = [
        response(made.announcements, ALICE, posts[made.announcements], ["1"], 1_000),
        response(made.groups["Kids"], ALICE, posts[made.groups["Kids"]], ["2"], 2_000),
        response(made.announcements, BOB, posts[made.announcements], ["1"], 1_500),
        response(made.groups["Kids"], CAROL, posts[made.groups["Kids"]], ["7"], 1_700),
    ]
    for vote in votes:
        await events.handle(vote)
    results = await ask(service, gateway, made.admins, "!community poll results #1")
    assert results.splitlines() == [
        "📊 Poll #1: Lunch <b>?</b>",
        "🏆 1. Pizza — 1 (50%)",
        "🏆 2. Pasta — 1 (50%)",
        "2 voters · 1 spoiled · open",
    ]
    said = await ask(service, gateway, made.admins, "!community poll end 1")
    assert said.splitlines()[0] == "Poll #1 has ended."
    assert said.splitlines()[-1] == "2 voters · 1 spoiled · ended"
    for room in (made.announcements, made.groups["Kids"]):
        [end] = of_type(gateway, room, polls.END)
        assert end["m.relates_to"] == {"rel_type": "m.reference", "event_id": posts[room]}
        assert end[polls.TEXT].startswith("The poll “Lunch <b>?</b>” has ended. Top answer:")
    assert power_events(gateway, made.announcements)["m.room.encrypted"] == 100
    late = response(made.announcements, BOB, posts[made.announcements], ["2"], 2**50)
    await events.handle(late)
    results = await ask(service, gateway, made.admins, "!community poll results 1")
    assert "🏆 1. Pizza — 1 (50%)" in results.splitlines()  # the late vote is ignored
    assert "ended already" in await ask(service, gateway, made.admins, "!community poll end 1")


async def test_multiple_choice_counts_each_answer_once(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    await ask(service, gateway, made.admins, "!community poll When? Mon Tue Wed --multiple")
    [start] = of_type(gateway, made.announcements, polls.START)
    assert start[polls.START]["max_selections"] == 3
    event = (await service.db.polls.posts(1))[made.announcements]
    await events.handle(response(made.announcements, ALICE, event, ["1", "3", "3"], 1))
    await events.handle(response(made.announcements, BOB, event, ["3"], 1))
    results = await ask(service, gateway, made.admins, "!community poll results 1")
    assert results.splitlines()[1:4] == [
        "1. Mon — 1 (50%)",
        "2. Tue — 0 (0%)",
        "🏆 3. Wed — 2 (100%)",
    ]


async def test_a_poll_typed_in_a_group_stays_there(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    kids = made.groups["Kids"]
    said = await ask(service, gateway, kids, "!community poll Outing? Zoo Park")
    assert said == "Poll #1 is open in Kids."
    assert of_type(gateway, made.announcements, polls.START) == []
    assert power_events(gateway, made.announcements)["m.room.encrypted"] == 100


async def test_only_votes_in_an_open_poll_get_through_the_announcement_room(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    await ask(service, gateway, made.admins, "!community poll Lunch? Pizza Pasta")
    poll_event = (await service.db.polls.posts(1))[made.announcements]
    news = gateway.post(made.announcements, OWNER, {"msgtype": "m.text", "body": "News"})
    vote = encrypted(made.announcements, ALICE, {"rel_type": "m.reference", "event_id": poll_event})
    reaction = encrypted(made.announcements, ALICE, {"rel_type": "m.annotation", "event_id": news})
    message = encrypted(made.announcements, ALICE, None)
    thread = encrypted(made.announcements, ALICE, {"rel_type": "m.thread", "event_id": news})
    fake = encrypted(made.announcements, ALICE, {"rel_type": "m.reference", "event_id": news})
    for event in (vote, reaction, message, thread, fake):
        await events.handle(event)
    # replies are off: a thread reply is a message like any other
    assert [e for _, e in gateway.redacted] == [
        message["event_id"],
        thread["event_id"],
        fake["event_id"],
    ]
    await ask(service, gateway, made.admins, "!community poll end 1")
    after = encrypted(
        made.announcements, ALICE, {"rel_type": "m.reference", "event_id": poll_event}
    )
    await events.handle(after)
    assert gateway.redacted[-1][1] == after["event_id"]


async def test_an_admin_ending_the_poll_in_their_client_ends_it_everywhere(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    await ask(service, gateway, made.admins, "!community poll Lunch? Pizza Pasta --groups all")
    posts = await service.db.polls.posts(1)
    await events.handle(response(made.announcements, ALICE, posts[made.announcements], ["2"], 10))
    await events.handle(response(made.groups["Kids"], BOB, posts[made.groups["Kids"]], ["2"], 30))
    end_by = {"m.relates_to": {"rel_type": "m.reference", "event_id": posts[made.announcements]}}
    for sender, ts in ((ALICE, 15), (OWNER, 20)):  # a member's end is ignored, as by clients
        await events.handle(
            {
                "type": polls.END,
                "room_id": made.announcements,
                "sender": sender,
                "event_id": f"$end{ts}",
                "origin_server_ts": ts,
                "content": {**end_by, polls.END: {}, polls.TEXT: "Ended"},
            }
        )
    poll = await service.db.polls.get(1)
    assert poll is not None and not poll.is_open and poll.ended_at == 20
    assert of_type(gateway, made.announcements, polls.END) == []  # the admin's end is there
    for group in made.groups.values():
        [end] = of_type(gateway, group, polls.END)
        assert end["m.relates_to"]["event_id"] == posts[group]
        assert "Top answer: Pasta" in end[polls.TEXT]
    results = await ask(service, gateway, made.admins, "!community poll results 1")
    assert "🏆 2. Pasta — 1 (100%)" in results.splitlines()  # Bob voted after the end


async def test_a_vote_for_a_poll_still_being_recorded_is_tried_again(
    service: Service, gateway: RecordingGateway, events: Events, made: Made
) -> None:
    await ask(service, gateway, made.admins, "!community poll Lunch? Pizza Pasta")
    posts = await service.db.polls.posts(1)
    await service.db.db.execute("DELETE FROM poll_post")  # as if the record were a moment late
    vote = response(made.announcements, ALICE, posts[made.announcements], ["1"], 1)
    with pytest.raises(RetryLater):
        await events.handle(vote)
    someone_elses = gateway.post(made.announcements, ALICE, {"msgtype": "m.text", "body": "x"})
    await events.handle(response(made.announcements, BOB, someone_elses, ["1"], 1))  # ignored
    assert await service.db.polls.votes(1) == []


async def test_a_poll_the_homeserver_interrupts_reaches_each_room_once(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    gateway.fail("send_message", DOWN, times=2)
    said = await ask(
        service, gateway, made.admins, "!community poll Lunch? Pizza Pasta --groups all"
    )
    assert "not answering" in said

    async def finished() -> bool:
        ops = await service.db.operations.running()
        return not ops

    await until(finished, "the poll's operation to finish")
    for room in (made.announcements, *made.groups.values()):
        assert len(of_type(gateway, room, polls.START)) == 1
    assert len(await service.db.polls.posts(1)) == 3
    op_id = await service.db.db.fetchval("SELECT id FROM operation WHERE kind='poll'")
    op = await service.db.operations.get(int(op_id))
    assert op is not None and op.state == OpState.DONE


@pytest.mark.parametrize(
    ("body", "sender", "error"),
    [
        ("!community poll Lunch? Pizza", OWNER, "⚠️ A poll needs a question and 2 to 20 options."),
        (
            "!community poll Q " + " ".join(f"o{i}" for i in range(21)),
            OWNER,
            "⚠️ A poll has 2 to 20 options; this one has 21.",
        ),
        (
            "!community poll Lunch? Pizza Pasta",
            ALICE,
            "⚠️ Only admins of this community can do that.",
        ),
        ("!community poll end 1", ALICE, "⚠️ Only admins of this community can do that."),
        ("!community poll results #9", ALICE, "⚠️ There is no poll #9 in this community."),
        ("!community poll end nine", OWNER, "⚠️ 'nine' is not a poll number like #12."),
        (
            "!community poll Q a b --groups Nope",
            OWNER,
            "⚠️ 'Nope' is not a group of this community.",
        ),
    ],
)
async def test_refusals_change_nothing(
    service: Service, gateway: RecordingGateway, made: Made, body: str, sender: UserID, error: str
) -> None:
    said = await ask(service, gateway, made.admins, body, sender)
    assert said.startswith(error)
    assert of_type(gateway, made.announcements, polls.START) == []
    assert await service.db.polls.open_polls(made.space) == []
    assert power_events(gateway, made.announcements)["m.room.encrypted"] == 100


async def test_polls_lists_the_open_ones(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    assert await ask(service, gateway, made.admins, "!community polls", ALICE) == (
        "No open polls in Parents."
    )
    await ask(service, gateway, made.admins, "!community poll Lunch? Pizza Pasta")
    listed = await ask(service, gateway, made.admins, "!community polls", ALICE)
    assert listed.splitlines() == ["Parents: 1 open polls", "• #1 Lunch?"]
