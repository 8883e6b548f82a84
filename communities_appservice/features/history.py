"""Announcement history for newcomers: whoever the bot invites to an announcement room gets
the room's shareable keys (MSC4268; the cryptography is in `matrix/history.py`).

The invitation is the trigger, whichever path sent it (a join to the space, an approval,
reconciliation): the listener runs on the invite event itself, from the durable inbox, so a
crash between the invite and the bundle sends the bundle after the restart. Groups and the
admins room never share history this way; `encryption.share_announcement_history: false`
turns it off.
"""

from __future__ import annotations

import logging

from ..core.hooks import MemberEvent, on_membership
from ..core.service import Service
from ..rules.membership import Change
from ..rules.model import Role

log = logging.getLogger("communities.history")


@on_membership(Change.INVITE, roles=[Role.ANNOUNCEMENTS])
async def _give_history(svc: Service, event: MemberEvent) -> None:
    if event.sender != svc.bot or event.community is None:
        return
    if not await svc.shares_history(event.room_id):
        return
    await svc.gw.share_history(event.room_id, event.user)
