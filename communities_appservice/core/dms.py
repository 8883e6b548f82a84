"""The bot's direct message with one person: created on first need (encrypted, like every
room the bot makes besides spaces) and reused for everything the bot has to say to that
person alone."""

from __future__ import annotations

from mautrix.types import RoomID, UserID

from ..rules.blueprints import state_event
from ..rules.model import MEGOLM
from .service import Service


async def dm_with(svc: Service, user: UserID) -> RoomID:
    room_id = await svc.db.bot_dms.get(user)
    if room_id:
        return room_id
    state = []
    if svc.config.encryption.enabled:
        state.append(state_event("m.room.encryption", {"algorithm": MEGOLM}))
    room_id = await svc.gw.create_room(
        {
            "preset": "trusted_private_chat",
            "is_direct": True,
            "invite": [user],
            "initial_state": state,
            "room_version": svc.config.communities.room_version,
        }
    )
    await svc.db.bot_dms.put(user, room_id)
    return room_id
