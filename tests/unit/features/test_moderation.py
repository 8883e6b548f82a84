"""The moderation feature end to end on the recording gateway: removing, banning and unbanning
someone across every room of a community, admins, the owner and the bot protected, and the
groups two people share."""

from __future__ import annotations

import pytest
from mautrix.types import UserID

from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.errors import Conflict, Forbidden, Invalid
from communities_appservice.features.moderation import Moderation, Outcome
from communities_appservice.features.roles import Roles
from communities_appservice.matrix.errors import MatrixError
from communities_appservice.rules.moderation import MAX_REASON

from ...recording import RecordingGateway
from .conftest import (
    ALICE,
    BOB,
    BOT,
    OWNER,
    CommunityMaker,
    Homeserver,
    Made,
    actions,
    calls_of,
)


@pytest.fixture
async def made(create_community: CommunityMaker, homeserver: Homeserver) -> Made:
    """Alice is in the space, the announcements and Kids, and invited to Teens; Bob has
    joined the space."""
    made = await create_community(groups=["Kids", "Teens"])
    for room_id in (made.space, made.announcements, made.groups["Kids"]):
        await homeserver.join(room_id, ALICE)
    await homeserver.set(made.groups["Teens"], ALICE, "invite", sender=OWNER)
    await homeserver.join(made.space, BOB)  # Bob: the space only
    return made


async def test_remove_everywhere(
    made: Made, service: Service, homeserver: Homeserver, tables: Tables
) -> None:
    await tables.members.add(made.space, ALICE, 1)
    outcome = await Moderation(service).remove(made.community, OWNER, ALICE, "spam")
    assert outcome == Outcome(done=4, failed=0)
    for room_id in (made.space, made.announcements, *made.groups.values()):
        assert homeserver.membership(room_id, ALICE) == "leave"
    assert homeserver.membership(made.admins, ALICE) is None  # never there: left alone
    assert homeserver.membership(made.space, BOB) == "join"
    assert not await tables.members.is_member(made.space, ALICE)
    [entry] = await tables.audit.recent(made.space, 1)
    assert (entry.action, entry.target, entry.detail, entry.result) == (
        "remove",
        ALICE,
        "4 rooms; spam",
        "ok",
    )


async def test_the_space_is_acted_on_last(
    made: Made, service: Service, gateway: RecordingGateway
) -> None:
    await Moderation(service).ban(made.community, OWNER, ALICE, "")
    bans = [room_id for room_id, user, _ in calls_of(gateway, "ban") if user == ALICE]
    assert sorted(bans) == sorted(made.rooms)
    assert bans[-1] == made.space


async def test_ban_everywhere_even_where_never_joined(
    made: Made, service: Service, homeserver: Homeserver, gateway: RecordingGateway
) -> None:
    outcome = await Moderation(service).ban(made.community, OWNER, ALICE, "abuse")
    assert outcome == Outcome(done=5, failed=0)
    for room_id in made.rooms:
        assert homeserver.membership(room_id, ALICE) == "ban"
    assert {reason for _, user, reason in calls_of(gateway, "ban")} == {"abuse"}


async def test_unban_where_banned(
    made: Made, service: Service, homeserver: Homeserver, tables: Tables
) -> None:
    moderation = Moderation(service)
    await moderation.ban(made.community, OWNER, ALICE, "")
    outcome = await moderation.unban(made.community, OWNER, ALICE)
    assert outcome == Outcome(done=5, failed=0)
    for room_id in made.rooms:
        assert homeserver.membership(room_id, ALICE) == "leave"
    assert (await actions(tables, made.space))[-2:] == ["ban", "unban"]
    with pytest.raises(Conflict, match="is not banned"):
        await moderation.unban(made.community, OWNER, ALICE)


async def test_a_refusal_in_one_room_does_not_stop_the_rest(
    made: Made, service: Service, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    gateway.fail("kick", MatrixError("M_FORBIDDEN", "no", 403))
    outcome = await Moderation(service).remove(made.community, OWNER, ALICE, "")
    assert (outcome.done, outcome.failed) == (3, 1)
    [refused] = outcome.refused  # named, for the reply
    names = {r.name for r in await service.db.rooms.of_community(made.space)}
    assert refused in names
    assert homeserver.membership(made.space, ALICE) == "leave"


async def test_a_room_the_bot_cannot_see_into_is_tried_and_named(
    made: Made, service: Service, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    """The bot was removed from Kids: Alice's membership there is unknown; `remove` does
    not take that for "not a member" but tries, and says where it could not act."""
    await homeserver.set(made.groups["Kids"], BOT, "leave", sender=OWNER)
    outcome = await Moderation(service).remove(made.community, OWNER, ALICE, "")
    assert outcome.refused == ("Kids",)
    assert homeserver.membership(made.space, ALICE) == "leave"


async def test_remove_someone_not_there(made: Made, service: Service) -> None:
    with pytest.raises(Conflict, match="is not in this community"):
        await Moderation(service).remove(made.community, OWNER, UserID("@dave:example.org"), "")


@pytest.mark.parametrize("action", ["remove", "ban"])
async def test_admins_owner_and_bot_are_protected(
    made: Made,
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    action: str,
) -> None:
    await Roles(service).add_admin(made.community, OWNER, BOB)
    moderation = Moderation(service)
    act = moderation.remove if action == "remove" else moderation.ban
    before = len(gateway.calls)
    with pytest.raises(Forbidden, match="is an admin; dismiss them"):
        await act(made.community, ALICE, BOB, "")
    with pytest.raises(Forbidden, match="is the owner"):
        await act(made.community, BOB, OWNER, "")
    with pytest.raises(Forbidden, match="The bot cannot be"):
        await act(made.community, OWNER, BOT, "")
    assert [c for c in gateway.calls[before:] if c[0] in ("kick", "ban")] == []
    assert homeserver.membership(made.space, BOB) == "join"


async def test_reason_too_long(made: Made, service: Service, gateway: RecordingGateway) -> None:
    before = len(gateway.calls)
    with pytest.raises(Invalid, match="reason is 501 characters"):
        await Moderation(service).ban(made.community, OWNER, ALICE, "x" * (MAX_REASON + 1))
    assert len(gateway.calls) == before


async def test_common_groups(made: Made, service: Service, homeserver: Homeserver) -> None:
    moderation = Moderation(service)
    assert await moderation.common(made.community, BOB, ALICE) == []
    await homeserver.join(made.groups["Kids"], BOB)
    await homeserver.join(made.groups["Teens"], BOB)  # Alice is only invited there
    shared = await moderation.common(made.community, BOB, ALICE)
    assert [g.name for g in shared] == ["Kids"]


@pytest.fixture
def quick_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("communities_appservice.matrix.errors.PATIENCE", (0.0, 0.0, 0.0))


async def test_a_short_outage_while_looking_is_waited_out(
    made: Made,
    service: Service,
    homeserver: Homeserver,
    gateway: RecordingGateway,
    quick_patience: None,
) -> None:
    gateway.fail("membership", MatrixError("M_UNKNOWN", "Bad Gateway", 502), times=3)
    outcome = await Moderation(service).remove(made.community, OWNER, ALICE, "")
    assert outcome == Outcome(done=4, failed=0)  # no room taken for "not a member"
    assert homeserver.membership(made.groups["Kids"], ALICE) == "leave"


async def test_a_longer_outage_while_looking_changes_nothing(
    made: Made, service: Service, gateway: RecordingGateway, quick_patience: None
) -> None:
    gateway.fail("membership", MatrixError("M_UNKNOWN", "Bad Gateway", 502), times=100)
    with pytest.raises(MatrixError):
        await Moderation(service).remove(made.community, OWNER, ALICE, "")
    assert calls_of(gateway, "kick") == []
