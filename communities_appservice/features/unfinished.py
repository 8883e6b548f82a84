"""Unfinished work: the operations of a community still running (or being undone), and
cancelling one that cannot finish — what an admin does when the homeserver keeps failing
for one room, instead of waiting for ever with reconciliation switched off."""

from __future__ import annotations

from mautrix.types import UserID

from ..core.service import Service
from ..db.community import Community
from ..db.operation import Operation
from ..errors import Invalid, NotFound
from ..rules.model import AuditAction


class Unfinished:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def of(self, community: Community) -> list[Operation]:
        return await self.svc.db.operations.unfinished_of(community.space_id)

    async def cancel(self, community: Community, sender: UserID, ref: str) -> str:
        number = ref.removeprefix("#")
        if not number.isascii() or not number.isdecimal():
            raise Invalid("{!r} is not an operation number like #12.", ref)
        op = await self.svc.db.operations.get(int(number))
        if op is None or op.space_id != community.space_id:
            raise NotFound("There is no operation #{} in this community.", number)
        said = await self.svc.ops.cancel(op.id, sender)
        await self.svc.audit(
            community.space_id, sender, AuditAction.OPERATION_CANCEL, f"#{op.id}", op.kind
        )
        return said
