"""Rules and welcome: the community's rules pinned in the announcement room, and one
notice for every new member, once, in a direct message with the bot.

The DM is created on first need (encrypted, like every room the bot makes besides spaces)
and reused for everything the bot later has to say to that person alone.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from . import rules
from .db import now_ms
from .db.community import Community
from .rules import Role
from .service import Service

log = logging.getLogger("communities.welcome")
RULES, WELCOME = "rules", "welcome"


def notice(plain: str, rich: str) -> dict[str, Any]:
    return {
        "msgtype": "m.notice",
        "body": plain,
        "format": "org.matrix.custom.html",
        "formatted_body": rich,
    }


def _block(title: str, text: str) -> tuple[str, str]:
    rich = html.escape(text).replace("\n", "<br>")
    return f"{title}\n{text}", f"<b>{html.escape(title)}</b><br>{rich}"


class Welcome:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def text(self, community: Community, kind: str) -> str:
        found = await self.svc.db.texts.get(community.space_id, kind)
        return found[0] if found else ""

    async def set_rules(self, community: Community, sender: str, text: str) -> None:
        text = rules.check_text(text, "rules", rules.MAX_LONG_TEXT)
        ann = await self.svc.room_of_role(community, Role.ANNOUNCEMENTS)
        assert ann is not None
        old = await self.svc.db.texts.get(community.space_id, RULES)
        plain, rich = _block(f"📌 Rules of {community.name}", text)
        event_id = await self.svc.gw.send_message(
            ann.room_id, "m.room.message", notice(plain, rich)
        )
        pinned = (await self.svc.gw.get_state(ann.room_id, "m.room.pinned_events") or {}).get(
            "pinned", []
        )
        pinned = [e for e in pinned if not old or e != old[1]] + [event_id]
        await self.svc.gw.send_state(ann.room_id, "m.room.pinned_events", {"pinned": pinned})
        await self.svc.db.texts.put(community.space_id, RULES, text, event_id)
        await self.svc.audit(community.space_id, sender, "rules set", ann.room_id)

    async def set_welcome(self, community: Community, sender: str, text: str) -> None:
        text = rules.check_text(text, "welcome text", rules.MAX_LONG_TEXT)
        await self.svc.db.texts.put(community.space_id, WELCOME, text)
        await self.svc.audit(community.space_id, sender, "welcome set")

    async def greet(self, community: Community, user: str) -> None:
        """The welcome text and the rules in one notice, once per member and community."""
        welcome = await self.text(community, WELCOME)
        house_rules = await self.text(community, RULES)
        if not (welcome or house_rules):
            return
        if not await self.svc.db.welcomed.claim(community.space_id, user, now_ms()):
            return
        parts = [_block(f"Welcome to {community.name}", welcome)] if welcome else []
        if house_rules:
            parts.append(_block("Rules", house_rules))
        plain = "\n\n".join(p for p, _ in parts)
        rich = "<br><br>".join(r for _, r in parts)
        room_id = await self.dm_with(user)
        await self.svc.gw.send_message(room_id, "m.room.message", notice(plain, rich))
        log.info("welcomed %s to %s", user, community.space_id)

    async def dm_with(self, user: str) -> str:
        room_id = await self.svc.db.bot_dms.get(user)
        if room_id:
            return room_id
        state = []
        if self.svc.config.encryption.enabled:
            state.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": rules.MEGOLM},
                }
            )
        room_id = await self.svc.gw.create_room(
            {
                "preset": "trusted_private_chat",
                "is_direct": True,
                "invite": [user],
                "initial_state": state,
                "room_version": self.svc.config.communities.room_version,
            }
        )
        await self.svc.db.bot_dms.put(user, room_id)
        return room_id
