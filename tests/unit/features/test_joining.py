"""The joining feature end to end on the recording gateway: changing the join mode (the record
and the space's join rule, put back when the homeserver refuses), inviting, a knock recorded
and announced in the admins room (a raw `m.room.member` event through `Events.handle`), and
approving or denying it."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.types import UserID

from communities_appservice.core.events import Events
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.errors import Conflict, Forbidden, NotFound
from communities_appservice.features.joining import Joining
from communities_appservice.matrix.errors import MatrixError
from communities_appservice.rules.model import JoinMode

from ...recording import RecordingGateway
from .conftest import ALICE, BOB, OWNER, CommunityMaker, Homeserver, Made, actions

DAVE = UserID("@dave:example.org")


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids"], join_mode=JoinMode.APPROVAL)


def knock(space: str, user: str = DAVE, reason: str = "hi") -> dict[str, Any]:
    """A knock as the homeserver sends it."""
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": user,
        "room_id": space,
        "event_id": "$x",
        "content": {"membership": "knock", "reason": reason},
        "unsigned": {"prev_content": {"membership": "leave"}},
    }


async def knocked(homeserver: Homeserver, made: Made, reason: str = "hi") -> None:
    """Dave knocks on the space: in the homeserver's model, then as the raw event."""
    await homeserver.set(made.space, DAVE, "knock")
    await homeserver.events.handle(knock(made.space, reason=reason))


# --- join mode, invite --------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "rule"), [(JoinMode.OPEN, "public"), (JoinMode.INVITE, "invite")])
async def test_set_join_mode(
    made: Made,
    service: Service,
    gateway: RecordingGateway,
    tables: Tables,
    mode: JoinMode,
    rule: str,
) -> None:
    await Joining(service).set_join_mode(made.community, OWNER, mode)
    community = await tables.communities.get(made.space)
    assert community is not None and community.join_mode == mode
    assert made.community.join_mode == mode
    assert gateway.rooms[made.space].state[("m.room.join_rules", "")] == {"join_rule": rule}
    [entry] = await tables.audit.recent(made.space, 1)
    assert (entry.action, entry.target) == ("join mode", str(mode))


async def test_set_join_mode_refused_keeps_the_old_mode(
    made: Made, service: Service, gateway: RecordingGateway, tables: Tables
) -> None:
    gateway.fail("send_state", MatrixError("M_FORBIDDEN", "no", 403))
    with pytest.raises(MatrixError):
        await Joining(service).set_join_mode(made.community, OWNER, JoinMode.OPEN)
    community = await tables.communities.get(made.space)
    assert community is not None and community.join_mode == "approval"
    assert gateway.rooms[made.space].state[("m.room.join_rules", "")] == {"join_rule": "knock"}


async def test_set_join_mode_to_the_same(made: Made, service: Service) -> None:
    with pytest.raises(Conflict, match="already in approval mode"):
        await Joining(service).set_join_mode(made.community, OWNER, JoinMode.APPROVAL)


async def test_invite(made: Made, service: Service, homeserver: Homeserver, tables: Tables) -> None:
    joining = Joining(service)
    await joining.invite(made.community, OWNER, DAVE)
    assert homeserver.membership(made.space, DAVE) == "invite"
    assert (await actions(tables, made.space))[-1] == "invite"
    await homeserver.join(made.space, ALICE)
    with pytest.raises(Conflict, match="already a member"):
        await joining.invite(made.community, OWNER, ALICE)
    await homeserver.set(made.space, BOB, "ban", sender=OWNER)
    with pytest.raises(Conflict, match="banned"):
        await joining.invite(made.community, OWNER, BOB)


# --- join requests --------------------------------------------------------------------------


async def test_a_knock_is_recorded_and_announced(
    made: Made, homeserver: Homeserver, gateway: RecordingGateway, tables: Tables
) -> None:
    await knocked(homeserver, made, reason="hi <b>there</b>")
    request = await tables.join_requests.get(made.space, DAVE)
    assert request is not None and request.reason == "hi <b>there</b>"
    [content] = gateway.sent(made.admins)
    assert content["msgtype"] == "m.notice" and content["m.mentions"] == {}
    assert content["body"].startswith(f"📨 {DAVE} asks to join Parents: “hi <b>there</b>”")
    assert "!community approve @dave:example.org" in content["body"]
    assert "hi &lt;b&gt;there&lt;/b&gt;" in content["formatted_body"]
    assert "<b>there</b>" not in content["formatted_body"]


async def test_a_knock_is_announced_once(
    made: Made, events: Events, gateway: RecordingGateway, homeserver: Homeserver
) -> None:
    await knocked(homeserver, made)
    await events.handle({**knock(made.space, reason="again"), "event_id": "$y"})
    assert len(gateway.sent(made.admins)) == 1


async def test_a_knock_on_a_group(
    made: Made, events: Events, gateway: RecordingGateway, tables: Tables
) -> None:
    kids = made.groups["Kids"]
    await events.handle(knock(kids))
    assert await tables.join_requests.get(kids, DAVE) is not None
    [content] = gateway.sent(made.admins)
    assert "asks to join the group Kids" in content["body"]
    assert '--group "Kids"' in content["body"]


async def test_approve(
    made: Made,
    service: Service,
    homeserver: Homeserver,
    tables: Tables,
) -> None:
    await knocked(homeserver, made)
    room = await Joining(service).approve(made.community, OWNER, DAVE, None)
    assert room.room_id == made.space
    assert homeserver.membership(made.space, DAVE) == "invite"
    assert await tables.join_requests.get(made.space, DAVE) is None
    assert (await actions(tables, made.space))[-1] == "approve"


async def test_deny(
    made: Made,
    service: Service,
    gateway: RecordingGateway,
    homeserver: Homeserver,
    tables: Tables,
) -> None:
    await knocked(homeserver, made)
    await Joining(service).deny(made.community, OWNER, DAVE, None, "not now")
    assert homeserver.membership(made.space, DAVE) == "leave"  # a kick, never a ban
    assert ("kick", made.space, DAVE, "not now") in gateway.calls
    assert await tables.join_requests.get(made.space, DAVE) is None
    assert (await actions(tables, made.space))[-1] == "deny"


async def test_only_admins_answer(
    made: Made,
    service: Service,
    homeserver: Homeserver,
) -> None:
    await knocked(homeserver, made)
    await homeserver.join(made.space, ALICE)
    with pytest.raises(Forbidden):
        await Joining(service).approve(made.community, ALICE, DAVE, None)
    assert homeserver.membership(made.space, DAVE) == "knock"
    with pytest.raises(NotFound, match="no pending request"):
        await Joining(service).approve(made.community, OWNER, BOB, None)


async def test_a_knock_answered_by_hand_settles_the_request(
    made: Made, homeserver: Homeserver, tables: Tables
) -> None:
    await knocked(homeserver, made)
    await homeserver.set(made.space, DAVE, "invite", sender=OWNER, event=True)
    assert await tables.join_requests.get(made.space, DAVE) is None
