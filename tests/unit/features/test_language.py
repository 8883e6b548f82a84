"""`language`: a community chooses the language the bot speaks in it, and every reply, in
any of its rooms and in a DM that names it, is in that language (no template is said in
English for want of a translation)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from mautrix.types import RoomID, UserID

from communities_appservice import language
from communities_appservice.core.events import Events
from communities_appservice.core.service import Service

from ...recording import RecordingGateway
from .conftest import ALICE, OWNER, CommunityMaker, Made

_IDS = itertools.count(1)
# Commands of every kind, as an admin types them, with the times in each language.
SESSION = [
    "help",
    "help schedule",
    "info",
    "language",
    "timezone",
    "timezone Asia/Jerusalem",
    "schedule {time} Bonjour",
    "scheduled",
    "unschedule #1",
    "unschedule #99",
    'event create "Réunion" {time} --place Salle --remind 1h',
    "event list",
    'poll "Quand ?" "Lundi" "Mardi"',
    "polls",
    "poll results #1",
    "group list",
    "admin list",
    "link",
    "rules",
    "welcome",
    "requests",
    "log --limit 5",
    "operations",
    "join open",
    "rename Chapitre",
    "fly to the moon",
    "schedule nonsense words here",
    "log --limit lots",
]
TIMES = {"fr": "demain 9h", "he": "מחר ב-9:00", "zh": "明天上午9点"}


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids"])


async def ask(
    service: Service, gateway: RecordingGateway, room: RoomID, body: str, sender: UserID = OWNER
) -> dict[str, Any]:
    """A command as the inbox hands it over; the reply it got."""
    event_id = f"$l{next(_IDS)}"
    await Events(service).handle(
        {
            "type": "m.room.message",
            "sender": sender,
            "room_id": room,
            "event_id": event_id,
            "content": {"msgtype": "m.text", "body": f"!community {body}"},
        }
    )
    [reply] = [
        m
        for m in gateway.sent(room)
        if (m.get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id") == event_id
    ]
    return reply


@pytest.mark.parametrize("code", ["fr", "he", "zh"])
async def test_a_community_gets_every_reply_in_its_language(
    service: Service, gateway: RecordingGateway, made: Made, code: str
) -> None:
    english = (await ask(service, gateway, made.admins, "language"))["body"]
    said = (await ask(service, gateway, made.admins, f"language {code}"))["body"]
    assert language.LANGUAGES[code] in said and not said.startswith("From now on"), said
    assert (await ask(service, gateway, made.admins, "language"))["body"] != english
    for body in SESSION:
        reply = await ask(service, gateway, made.admins, body.format(time=TIMES[code]))
        assert reply["body"].strip(), body
        assert (reply["body"].startswith("\u200f")) == (code == "he"), (body, reply["body"])
    assert language.untranslated() == frozenset(), language.untranslated()
    assert (await service.db.communities.get(made.space)).language == code  # type: ignore[union-attr]


async def test_the_answer_differs_from_english_and_other_rooms_follow(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    english = (await ask(service, gateway, made.groups["Kids"], "help info"))["body"]
    await ask(service, gateway, made.admins, "language fr")
    french = (await ask(service, gateway, made.groups["Kids"], "help info"))["body"]
    assert french != english and "info" in french
    announced = (await ask(service, gateway, made.announcements, "language"))["body"]
    assert "Français" in announced


async def test_only_an_admin_sets_it_and_a_wrong_code_changes_nothing(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    await service.db.members.add(made.space, ALICE, 0)
    said = await ask(service, gateway, made.groups["Kids"], "language fr", sender=ALICE)
    assert said["body"].startswith("⚠️ Only admins"), said
    said = await ask(service, gateway, made.admins, "language klingon")
    assert said["body"].startswith("⚠️ I do not speak 'klingon'") and "\nUsage:" in said["body"]
    assert (await service.db.communities.get(made.space)).language == ""  # type: ignore[union-attr]
    assert "English" in (await ask(service, gateway, made.admins, "language"))["body"]


async def test_a_dm_follows_the_senders_community_or_the_default(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    await ask(service, gateway, made.admins, "language he")
    dm = gateway.add_room(OWNER, members={OWNER: "join", gateway.bot: "join"})
    said = await ask(service, gateway, dm, "language")
    assert said["body"].startswith("\u200f"), said  # the owner's one community speaks Hebrew
    newcomer = UserID("@new:example.org")
    other = gateway.add_room(newcomer, members={newcomer: "join", gateway.bot: "join"})
    english = (await ask(service, gateway, other, "help", sender=newcomer))["body"]
    communities = replace(service.config.communities, default_language="fr")
    service.config = replace(service.config, communities=communities)
    french = (await ask(service, gateway, other, "help", sender=newcomer))["body"]
    assert english.startswith("Commands") and french != english and "help" in french


async def test_a_community_that_has_not_chosen_speaks_the_operators_default(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    """`communities.default_language`: every room of a community with no language of its
    own, and its operations' reports, in the operator's language; a choice still wins."""
    communities = replace(service.config.communities, default_language="he")
    service.config = replace(service.config, communities=communities)
    said = (await ask(service, gateway, made.groups["Kids"], "language"))["body"]
    assert said.startswith("\u200f") and language.LANGUAGES["he"] in said, said
    created = (await ask(service, gateway, made.admins, "group create Chess"))["body"]
    assert created.startswith("\u200f"), created
    await ask(service, gateway, made.admins, "language fr")
    assert "Français" in (await ask(service, gateway, made.groups["Kids"], "language"))["body"]


async def test_the_rooms_of_a_new_community_are_named_in_the_language_spoken(
    service: Service, gateway: RecordingGateway, made: Made
) -> None:
    communities = replace(service.config.communities, default_language="zh")
    service.config = replace(service.config, communities=communities)
    newcomer = UserID("@founder:example.org")
    dm = gateway.add_room(newcomer, members={newcomer: "join", gateway.bot: "join"})
    await ask(service, gateway, dm, 'create "Chess club"', sender=newcomer)
    [community] = [
        c for c in await service.communities_of(newcomer, admin=True) if c.name == "Chess club"
    ]
    rooms = {r.role: r for r in await service.db.rooms.of_community(community.space_id)}
    assert rooms["announcements"].name == "📢 Chess club · 公告", rooms
    assert rooms["admins"].name == "🛡️ Chess club · 管理员", rooms
    state = gateway.rooms[rooms["admins"].room_id].state
    assert state[("m.room.topic", "")]["topic"].startswith("Chess club的管理员"), state
