"""Rules and welcome: the community's rules pinned in the announcement room, and one notice
for every new member, once, in a direct message with the bot (`core.dms`)."""

from __future__ import annotations

import logging

from mautrix.types import UserID

from ..core.dms import dm_with
from ..core.hooks import MemberEvent, on_membership
from ..core.notices import Text, notice, paragraphs, say, txn_key
from ..core.pins import pin
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..language import N_
from ..rules.limits import MAX_LONG_TEXT, check_text
from ..rules.membership import Change
from ..rules.model import AuditAction, Role

log = logging.getLogger("communities.welcome")
RULES, WELCOME = "rules", "welcome"


def _block(title: Text, text: str) -> Text:
    """A title and a text of the admins' own, line breaks kept."""
    return say("<b>{}</b><br>{}", title.plain, text)


class Welcome:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def text(self, community: Community, kind: str) -> str:
        found = await self.svc.db.texts.get(community.space_id, kind)
        return found[0] if found else ""

    async def set_rules(self, community: Community, sender: UserID, text: str) -> None:
        svc = self.svc
        text = check_text(text, N_("rules"), MAX_LONG_TEXT)
        ann = await svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS)
        assert ann is not None
        old = await svc.db.texts.get(community.space_id, RULES)
        shown = _block(say("📌 Rules of {}", community.name), text)
        event_id = await svc.gw.send_message(ann.room_id, "m.room.message", notice(shown))
        await pin(svc, ann.room_id, event_id, instead_of=old[1] if old else None)
        await svc.db.texts.put(community.space_id, RULES, text, event_id)
        await svc.audit(community.space_id, sender, AuditAction.RULES_SET, ann.room_id)

    async def set_welcome(self, community: Community, sender: UserID, text: str) -> None:
        text = check_text(text, N_("welcome text"), MAX_LONG_TEXT)
        await self.svc.db.texts.put(community.space_id, WELCOME, text)
        await self.svc.audit(community.space_id, sender, AuditAction.WELCOME_SET)

    async def greet(self, community: Community, user: UserID) -> None:
        """The welcome text and the rules in one notice, once per member and community.

        Sent first, then recorded: a retry after an outage sends it again with the same
        transaction id, which the homeserver answers with the message it already made."""
        svc = self.svc
        welcome = await self.text(community, WELCOME)
        community_rules = await self.text(community, RULES)
        if not (welcome or community_rules):
            return
        if await svc.db.welcomed.has(community.space_id, user):
            return
        parts = [_block(say("Welcome to {}", community.name), welcome)] if welcome else []
        if community_rules:
            parts.append(_block(say("Rules"), community_rules))
        # Clients show the bot as the rooms' "Owner" (it made them): say who the person is.
        parts.append(say("Its owner is {}.", community.owner))
        room_id = await dm_with(svc, user)
        txn = txn_key("welcome", community.space_id, user)
        await svc.gw.send_message(room_id, "m.room.message", notice(paragraphs(*parts)), txn)
        await svc.db.welcomed.claim(community.space_id, user, now_ms())
        log.info("welcomed %s to %s", user, community.space_id)


@on_membership(Change.JOIN, roles=[Role.SPACE])
async def _greet(svc: Service, event: MemberEvent) -> None:
    assert event.community is not None
    await Welcome(svc).greet(event.community, event.user)
