"""A few `!community …` commands end to end through `Dispatcher`: a raw message event in, the
reply the recording gateway received out. Every reply is an `m.notice` answering the command
(in its thread, when it was in one), with `m.mentions` empty and the user's own text
HTML-escaped; a wrong command gets one line (and the usage line when the syntax was wrong);
a refused command changes nothing."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from mautrix.types import RoomID, UserID

from communities_appservice.commands.framework import Dispatcher
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.matrix.errors import MatrixError
from communities_appservice.rules.limits import MAX_DESCRIPTION

from ...recording import RecordingGateway
from .conftest import ALICE, BOT, OWNER, CommunityMaker, Homeserver, Made, actions, calls_of

_IDS = itertools.count(1)


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(
        name="Parents <&>", groups=["Kids", "Teens"], description="<i>we</i> care"
    )


@pytest.fixture
def dispatcher(service: Service) -> Dispatcher:
    return Dispatcher(service)


def message(room_id: str, sender: str, body: str, thread: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if thread:
        content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread}
    return {
        "type": "m.room.message",
        "sender": sender,
        "room_id": room_id,
        "event_id": f"$cmd{next(_IDS)}",
        "content": content,
    }


async def run(
    dispatcher: Dispatcher,
    gateway: RecordingGateway,
    room_id: RoomID,
    sender: UserID,
    body: str,
    thread: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a command; the event and the one reply it got."""
    event = message(room_id, sender, body, thread)
    incoming = dispatcher.parse_incoming(event)
    assert incoming is not None
    before = len(gateway.sent(room_id))
    await dispatcher.handle(incoming)
    [reply] = gateway.sent(room_id)[before:]
    assert reply["msgtype"] == "m.notice"
    assert reply["m.mentions"] == {}
    assert reply["format"] == "org.matrix.custom.html"
    return event, reply


async def test_info(made: Made, dispatcher: Dispatcher, gateway: RecordingGateway) -> None:
    event, reply = await run(dispatcher, gateway, made.admins, OWNER, "!community info")
    assert reply["body"] == (
        "Parents <&>\n<i>we</i> care\nJoin: approval by an admin\nGroups (2/3): Kids, Teens\n"
        f"Admins: 1/3 (owner {OWNER})\nMembers: 0\n"
        f"Admins room: https://matrix.to/#/{made.admins}"  # for admins: not in the space
    )
    assert reply["formatted_body"].startswith(
        "<b>Parents &lt;&amp;&gt;</b><br>&lt;i&gt;we&lt;/i&gt; care<br>"
    )
    assert reply["m.relates_to"] == {"m.in_reply_to": {"event_id": event["event_id"]}}


async def test_a_reply_in_a_thread(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway
) -> None:
    event, reply = await run(
        dispatcher, gateway, made.admins, OWNER, "!community info", thread="$root"
    )
    assert reply["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": event["event_id"]},
    }


async def test_rename_escapes_the_new_name(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway, tables: Tables
) -> None:
    _, reply = await run(
        dispatcher, gateway, made.admins, OWNER, '!community rename "<b>Bold</b> & co"'
    )
    assert reply["body"] == "Renamed the community to <b>Bold</b> & co."
    assert reply["formatted_body"] == (
        "Renamed the community to <b>&lt;b&gt;Bold&lt;/b&gt; &amp; co</b>."
    )
    community = await tables.communities.get(made.space)
    assert community is not None and community.name == "<b>Bold</b> & co"


async def test_an_unknown_command_gets_one_line(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway
) -> None:
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, "!community frobnicate <x>")
    assert reply["body"] == "⚠️ Unknown command 'frobnicate <x>'. Send `help` for the list."
    assert "&lt;x&gt;" in reply["formatted_body"] and "<x>" not in reply["formatted_body"]


async def test_wrong_arguments_get_the_usage_line(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway
) -> None:
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, "!community rename")
    assert reply["body"] == "⚠️ Wrong number of arguments.\nUsage: !community rename <name>"
    assert reply["formatted_body"] == (
        "⚠️ Wrong number of arguments.<br>Usage: <code>!community rename &lt;name&gt;</code>"
    )


async def test_a_refused_command_changes_nothing(
    made: Made,
    dispatcher: Dispatcher,
    gateway: RecordingGateway,
    tables: Tables,
    homeserver: Homeserver,
) -> None:
    kids = made.groups["Kids"]
    await homeserver.join(kids, ALICE)
    await tables.members.add(made.space, ALICE, 1)
    audit = await actions(tables, made.space)
    calls = len(gateway.calls)
    _, reply = await run(dispatcher, gateway, kids, ALICE, "!community rename Mine")
    assert reply["body"] == "⚠️ Only admins of this community can do that."
    assert [c[0] for c in gateway.calls[calls:]] == ["send_message"]  # the reply, nothing else
    community = await tables.communities.get(made.space)
    assert community is not None and community.name == "Parents <&>"
    assert await actions(tables, made.space) == audit


async def test_a_user_error_names_its_argument_escaped(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway, tables: Tables
) -> None:
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, "!community admin add <b>&")
    assert reply["body"] == (
        "⚠️ '<b>&' is not a Matrix user ID (like @alice:example.org).\n"
        "Usage: !community admin add <user>"
    )
    assert reply["formatted_body"].startswith("⚠️ '&lt;b&gt;&amp;' is not a Matrix user ID")
    assert await tables.admins.roles(made.space) == {OWNER: "owner"}


async def test_a_conflict_gets_one_line(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway, tables: Tables
) -> None:
    calls = len(gateway.calls)
    _, reply = await run(
        dispatcher, gateway, made.admins, OWNER, "!community admin add @dave:example.org"
    )
    assert reply["body"] == "⚠️ @dave:example.org has not joined this community."
    assert [c[0] for c in gateway.calls[calls:]] == ["membership", "send_message"]
    assert await tables.admins.roles(made.space) == {OWNER: "owner"}


def test_messages_that_are_no_command(dispatcher: Dispatcher) -> None:
    assert dispatcher.parse_incoming(message("!r:example.org", OWNER, "hello")) is None
    assert dispatcher.parse_incoming(message("!r:example.org", BOT, "!community info")) is None
    notice = {**message("!r:example.org", OWNER, "!community info")}
    notice["content"] = {"msgtype": "m.notice", "body": "!community info"}
    assert dispatcher.parse_incoming(notice) is None
    bare = dispatcher.parse_incoming(message("!r:example.org", OWNER, "!Community"))
    assert bare is not None and bare.text == ""


async def test_a_too_long_description_is_refused_in_one_line(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway
) -> None:
    text = "x" * (MAX_DESCRIPTION + 1)
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, f"!community describe {text}")
    assert reply["body"] == (
        f"⚠️ The description is {MAX_DESCRIPTION + 1} characters long; the limit is 2,048.\n"
        "Usage: !community describe <text>"
    )


async def test_a_command_the_homeserver_does_not_answer_says_so(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("communities_appservice.matrix.errors.PATIENCE", (0.0,))
    gateway.fail("membership", MatrixError("M_UNKNOWN", "Bad Gateway", 502), times=100)
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, f"!community remove {ALICE}")
    assert "The homeserver is not answering" in reply["body"]
    assert calls_of(gateway, "kick") == []


async def test_a_command_answered_before_a_crash_is_not_answered_again(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    """The crash came after the reply but before the event was done: after the restart the
    command is 'interrupted', its operation is over, and the answer is not sent twice."""
    await homeserver.join(made.space, ALICE)
    event, reply = await run(
        dispatcher, gateway, made.admins, OWNER, f"!community admin add {ALICE}"
    )
    assert "now an admin" in reply["body"]
    before = len(gateway.sent(made.admins))
    await dispatcher.interrupted(event)
    assert len(gateway.sent(made.admins)) == before


async def test_help_names_limits_by_their_value(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway
) -> None:
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, "!community help")
    limit = dispatcher.svc.config.communities.max_admins  # this server's own value
    assert f"at most {limit} admins" in reply["body"] and "max_admins" not in reply["body"]
    _, reply = await run(dispatcher, gateway, made.admins, OWNER, "!community help admin add")
    assert f"at most {limit} admins" in reply["body"]


async def test_info_shows_members_no_admins_room(
    made: Made, dispatcher: Dispatcher, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    await homeserver.join(made.space, ALICE, event=True)
    _, reply = await run(dispatcher, gateway, made.announcements, ALICE, "!community info")
    assert "Members: 1" in reply["body"] and "Admins room" not in reply["body"]
