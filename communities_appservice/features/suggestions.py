"""Group suggestions, as in WhatsApp: members propose a group (a new one by name, or an
existing room); it waits in a pending list until an admin accepts it (the group is created,
or the room adopted) or rejects it. Switched off with `communities.group_suggestions: false`.
"""

from __future__ import annotations

from mautrix.types import RoomID, UserID

from ..core.groups import Groups
from ..core.notices import notice, say
from ..core.operations import NOWHERE, Origin
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..db.suggestion import Suggestion
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..language import N_
from ..matrix.errors import MatrixError
from ..rules.ids import is_room_alias, is_room_id
from ..rules.limits import MAX_NAME, check_name
from ..rules.model import AuditAction, GroupAccess, Role, SuggestionState


class Suggestions:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def suggest(self, community: Community, sender: UserID, ref: str) -> Suggestion:
        if not self.svc.config.communities.group_suggestions:
            raise Forbidden("Group suggestions are switched off on this server.")
        room_id = ""
        if is_room_id(ref) or is_room_alias(ref):
            room_id = await self.svc.resolve_room(ref)
            if await self.svc.db.rooms.get(room_id) is not None:
                raise Conflict("That room already belongs to a community.")
            name = await self._room_name(room_id) or ref
        else:
            name = check_name(ref, N_("group name"))
        db = self.svc.db.suggestions
        suggestion_id = await db.add(community.space_id, sender, name, room_id, now_ms())
        suggestion = await db.get(community.space_id, suggestion_id)
        assert suggestion is not None
        await self._announce(community, suggestion)
        await self.svc.audit(community.space_id, sender, AuditAction.GROUP_SUGGEST, room_id, name)
        return suggestion

    async def _room_name(self, room_id: RoomID) -> str:
        try:
            content = await self.svc.gw.get_state(room_id, "m.room.name") or {}
        except MatrixError:  # the bot may not see into a room it is not in
            return ""
        return str(content.get("name") or "")[:MAX_NAME]

    async def _announce(self, community: Community, s: Suggestion) -> None:
        admins_room = await self.svc.room_of_role(community.space_id, Role.ADMINS)
        if admins_room is None:
            return
        prefix = self.svc.config.communities.command_prefix
        what = f"the room {s.room_id}" if s.room_id else "a new group"
        text = say(
            "💡 {} suggests {}: <b>{}</b> (#{}). <code>{} group accept {}</code> or "
            "<code>{} group reject {}</code>",
            s.sender,
            what,
            s.name,
            s.id,
            prefix,
            s.id,
            prefix,
            s.id,
        )
        await self.svc.gw.send_message(admins_room.room_id, "m.room.message", notice(text))

    async def pending(self, community: Community) -> list[Suggestion]:
        return await self.svc.db.suggestions.pending(community.space_id)

    async def _pending(self, community: Community, ref: str) -> Suggestion:
        number = ref.removeprefix("#")
        if not number.isdecimal():
            raise Invalid("{!r} is not a suggestion number like #12.", ref)
        found = await self.svc.db.suggestions.get(community.space_id, int(number))
        if found is None or found.state != SuggestionState.PENDING:
            raise NotFound("There is no pending suggestion #{}.", number)
        return found

    async def accept(
        self, community: Community, sender: UserID, ref: str, origin: Origin = NOWHERE
    ) -> CommunityRoom:
        s = await self._pending(community, ref)
        groups = Groups(self.svc)
        if s.room_id:
            return await groups.adopt(community, sender, s.room_id, origin, s.id)
        return await groups.create(community, sender, s.name, "", GroupAccess.OPEN, origin, s.id)

    async def reject(self, community: Community, sender: UserID, ref: str) -> Suggestion:
        s = await self._pending(community, ref)
        await self.svc.db.suggestions.decide(s.id, SuggestionState.REJECTED)
        await self.svc.audit(
            community.space_id, sender, AuditAction.GROUP_REJECT, s.room_id, s.name
        )
        return s
