"""The bot's direct message with one person: created on first need (encrypted, like every
room the bot makes besides spaces) and reused for everything the bot has to say to that
person alone.

Made once, even across a crash: the room is created with an alias of the person's own in
the service's exclusive namespace (`#<prefix>dm-<digest>`), which is looked up before a
room is made, so a crash between the creation and its record does not give that person a
second DM."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from mautrix.types import RoomID, UserID

from ..matrix.errors import MatrixError, is_transient
from ..rules.blueprints import state_event
from ..rules.model import MEGOLM
from .notices import txn_key
from .run import Run
from .service import Service

log = logging.getLogger("communities.dms")
SENDS_AT_ONCE = 8


def dm_alias(svc: Service, user: UserID) -> str:
    digest = hashlib.sha256(user.encode()).hexdigest()[:20]
    return f"#{svc.config.alias_prefix}dm-{digest}:{svc.server_name}"


async def dm_with(svc: Service, user: UserID) -> RoomID:
    room_id = await svc.db.bot_dms.get(user)
    if room_id:
        return room_id
    alias = dm_alias(svc, user)
    room_id = await svc.gw.resolve_alias(alias) or await _create(svc, user, alias)
    await svc.db.bot_dms.put(user, room_id)
    return room_id


async def _create(svc: Service, user: UserID, alias: str) -> RoomID:
    # The alias stays out of the room's canonical alias: it is an address for the bot only.
    state = [state_event("m.room.canonical_alias", {})]
    if svc.config.encryption.enabled:
        state.append(state_event("m.room.encryption", {"algorithm": MEGOLM}))
    try:
        return await svc.gw.create_room(
            {
                "preset": "trusted_private_chat",
                "is_direct": True,
                "invite": [user],
                "initial_state": state,
                "room_version": svc.config.communities.room_version,
                "room_alias_name": alias[1:].split(":", 1)[0],
            }
        )
    except MatrixError as e:
        # The HTTP client retried a request the homeserver had carried out.
        found = await svc.gw.resolve_alias(alias) if e.errcode == "M_ROOM_IN_USE" else None
        if found is None:
            raise
        return found


async def tell_each(
    svc: Service, run: Run[Any], users: list[str], content: dict[str, Any], key: str
) -> int:
    """`content` to each of `users` in their DM with the bot, each a step of `run` under a
    transaction id of its own (`key` and the user): once each, also after a crash. A
    refusal (someone who never accepts the DM) is logged and skipped; how many were told."""
    limit = asyncio.Semaphore(SENDS_AT_ONCE)

    async def one(user: str) -> bool:
        async def send() -> bool:
            try:
                dm = await dm_with(svc, UserID(user))
                await svc.gw.send_message(dm, "m.room.message", content, txn_key(key, user))
            except MatrixError as e:
                if is_transient(e):
                    raise
                log.warning("%s: could not tell %s (%s)", key, user, e.errcode)
                return False
            return True

        async with limit:
            return bool(await run.step(f"told:{user}", send))

    return sum(await asyncio.gather(*(one(u) for u in users)))
