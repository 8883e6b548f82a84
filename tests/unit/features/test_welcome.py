"""The welcome feature end to end on the recording gateway: the rules posted and pinned in the
announcement room (a new version replacing the old pin), the welcome text, and the greeting a
new member gets once, by direct message, when their join reaches `Events.handle`."""

from __future__ import annotations

import pytest
from mautrix.types import RoomID

from communities_appservice.core.dms import dm_with
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.errors import Invalid
from communities_appservice.features.welcome import RULES, WELCOME, Welcome
from communities_appservice.rules.limits import MAX_LONG_TEXT

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, OWNER, CommunityMaker, Homeserver, Made, actions, calls_of


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(name="Parents <&>", groups=["Kids"])


def pinned(gateway: RecordingGateway, room_id: RoomID) -> list[str]:
    content = gateway.rooms[room_id].state.get(("m.room.pinned_events", ""), {})
    return list(content.get("pinned", []))


async def test_rules_are_posted_and_pinned(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    await Welcome(service).set_rules(made.community, OWNER, "Be kind.\nNo <script>.")
    [content] = gateway.sent(made.announcements)
    assert content["msgtype"] == "m.notice" and content["m.mentions"] == {}
    assert content["body"] == "📌 Rules of Parents <&>\nBe kind.\nNo <script>."
    assert content["formatted_body"] == (
        "<b>📌 Rules of Parents &lt;&amp;&gt;</b><br>Be kind.<br>No &lt;script&gt;."
    )
    stored = await tables.texts.get(made.space, RULES)
    assert stored is not None and stored[0] == "Be kind.\nNo <script>."
    assert stored[1].startswith("$")  # the notice's event id, pinned
    assert pinned(gateway, made.announcements) == [stored[1]]
    assert (await actions(tables, made.space))[-1] == "rules set"


async def test_new_rules_replace_the_old_pin(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    room = gateway.rooms[made.announcements]
    room.state[("m.room.pinned_events", "")] = {"pinned": ["$someone-elses"]}
    welcome = Welcome(service)
    await welcome.set_rules(made.community, OWNER, "One")
    first = await tables.texts.get(made.space, RULES)
    await welcome.set_rules(made.community, OWNER, "Two")
    second = await tables.texts.get(made.space, RULES)
    assert first is not None and second is not None and first[1] != second[1]
    assert pinned(gateway, made.announcements) == ["$someone-elses", second[1]]
    assert await welcome.text(made.community, RULES) == "Two"


async def test_rules_too_long(made: Made, service: Service, gateway: RecordingGateway) -> None:
    with pytest.raises(Invalid):
        await Welcome(service).set_rules(made.community, OWNER, "x" * (MAX_LONG_TEXT + 1))
    assert gateway.sent(made.announcements) == []


async def test_set_welcome(made: Made, service: Service, tables: Tables) -> None:
    await Welcome(service).set_welcome(made.community, OWNER, "  Hello!  ")
    assert await Welcome(service).text(made.community, WELCOME) == "Hello!"
    assert (await actions(tables, made.space))[-1] == "welcome set"


async def test_a_new_member_is_greeted_once_by_dm(
    made: Made, service: Service, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    welcome = Welcome(service)
    await welcome.set_welcome(made.community, OWNER, "Hello <you>!")
    await welcome.set_rules(made.community, OWNER, "Be kind.")
    await homeserver.join(made.space, ALICE, event=True)
    [request] = [r for (r,) in calls_of(gateway, "create_room") if r.get("is_direct")]
    assert request["invite"] == [ALICE]
    dm = await service.db.bot_dms.get(ALICE)
    assert dm is not None
    [content] = gateway.sent(dm)
    assert content["msgtype"] == "m.notice" and content["m.mentions"] == {}
    assert content["body"] == (
        f"Welcome to Parents <&>\nHello <you>!\n\nRules\nBe kind.\n\nIts owner is {OWNER}."
    )
    assert "Hello &lt;you&gt;!" in content["formatted_body"]
    # Leaving and joining again: no second greeting, no second DM.
    await homeserver.set(made.space, ALICE, "leave", event=True)
    await homeserver.join(made.space, ALICE, event=True)
    assert len(gateway.sent(dm)) == 1
    assert len([r for (r,) in calls_of(gateway, "create_room") if r.get("is_direct")]) == 1


async def test_the_dm_is_reused_across_communities(
    made: Made,
    create_community: CommunityMaker,
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
) -> None:
    other = await create_community(name="Neighbours", groups=[])
    for community in (made.community, other.community):
        await Welcome(service).set_welcome(community, OWNER, f"Hi from {community.name}")
    await homeserver.join(made.space, BOB, event=True)
    await homeserver.join(other.space, BOB, event=True)
    dm = await service.db.bot_dms.get(BOB)
    assert dm is not None
    assert [c["body"].split("\n")[0] for c in gateway.sent(dm)] == [
        "Welcome to Parents <&>",
        "Welcome to Neighbours",
    ]


async def test_no_texts_no_greeting(
    made: Made, service: Service, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    await homeserver.join(made.space, ALICE, event=True)
    assert await service.db.bot_dms.get(ALICE) is None
    assert [r for (r,) in calls_of(gateway, "create_room") if r.get("is_direct")] == []


async def test_a_dm_made_before_a_crash_is_found_not_made_twice(
    service: Service, gateway: RecordingGateway
) -> None:
    """The DM was created, then the service died before recording it: the next need finds
    it by its alias instead of creating a second one."""
    first = await dm_with(service, ALICE)
    await service.db.db.execute("DELETE FROM bot_dm WHERE user_id=$1", ALICE)
    creations = len(calls_of(gateway, "create_room"))
    assert await dm_with(service, ALICE) == first
    assert len(calls_of(gateway, "create_room")) == creations
    assert await dm_with(service, BOB) != first  # everyone has their own
