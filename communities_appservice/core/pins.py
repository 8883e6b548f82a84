"""The pinned messages of a room (`m.room.pinned_events`): one added, one taken off, the
others kept as they are (admins pin things too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.types import RoomID

if TYPE_CHECKING:
    from .service import Service

PINNED = "m.room.pinned_events"


async def pin(svc: Service, room: RoomID, event: str, *, instead_of: str | None = None) -> bool:
    """Pin `event` (in place of `instead_of`, when given); safe to repeat."""
    return await _change(svc, room, add=event, drop=instead_of)


async def unpin(svc: Service, room: RoomID, event: str) -> bool:
    """Take `event` off the pinned messages; safe to repeat."""
    return await _change(svc, room, add=None, drop=event)


async def _change(svc: Service, room: RoomID, *, add: str | None, drop: str | None) -> bool:
    state = await svc.gw.get_state(room, PINNED) or {}
    pinned = [p for p in state.get("pinned") or [] if isinstance(p, str)]
    wanted = [p for p in pinned if p != drop and p != add] + ([add] if add else [])
    if add and add in pinned and drop not in pinned:
        wanted = pinned  # already as asked: no new state event
    if wanted != pinned:
        await svc.gw.send_state(room, PINNED, {"pinned": wanted})
    return True
