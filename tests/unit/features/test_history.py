"""Who gets the announcement room's history (MSC4268), from raw invite events through
`Events.handle` to the recording gateway: the bot's invitation to the announcement room
shares it; an invitation by someone else, to a group or the admins room, or with
`encryption.share_announcement_history: false`, shares nothing."""

from __future__ import annotations

import dataclasses

import pytest

from communities_appservice.core.service import Service

from ...recording import RecordingGateway
from .conftest import ALICE, BOT, OWNER, CommunityMaker, Homeserver, Made, calls_of


@pytest.fixture
async def made(create_community: CommunityMaker) -> Made:
    return await create_community(groups=["Kids"])


async def test_the_bots_invitation_to_the_announcements_shares_their_history(
    made: Made, homeserver: Homeserver, gateway: RecordingGateway, service: Service
) -> None:
    await homeserver.set(made.announcements, ALICE, "invite", sender=BOT, event=True)
    assert calls_of(gateway, "share_history") == [(made.announcements, ALICE)]
    assert await service.shares_history(made.announcements)


@pytest.mark.parametrize("where", ["group", "admins", "space"])
async def test_no_other_room_shares_its_history(
    where: str, made: Made, homeserver: Homeserver, gateway: RecordingGateway, service: Service
) -> None:
    room = {"group": made.groups["Kids"], "admins": made.admins, "space": made.space}[where]
    await homeserver.set(room, ALICE, "invite", sender=BOT, event=True)
    assert calls_of(gateway, "share_history") == []
    assert not await service.shares_history(room)


async def test_an_invitation_by_someone_else_shares_nothing(
    made: Made, homeserver: Homeserver, gateway: RecordingGateway
) -> None:
    await homeserver.set(made.announcements, ALICE, "invite", sender=OWNER, event=True)
    assert calls_of(gateway, "share_history") == []


async def test_the_operator_can_turn_it_off(
    made: Made,
    homeserver: Homeserver,
    gateway: RecordingGateway,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encryption = dataclasses.replace(service.config.encryption, share_announcement_history=False)
    monkeypatch.setattr(
        service, "config", dataclasses.replace(service.config, encryption=encryption)
    )
    await homeserver.set(made.announcements, ALICE, "invite", sender=BOT, event=True)
    assert calls_of(gateway, "share_history") == []
    assert not await service.shares_history(made.announcements)
