"""The seam for reconciliation checks, and what one pass finds.

A feature declares a check of its own with
`@check(Role.GROUP, watch=("m.room.pinned_events",))`: an `async def (RoomCheck)` run for
every room of those roles on every pass; a state event of a `watch` type has its room
checked soon. What it repairs is audited and announced with the
rest of the pass; what it cannot repair goes in `findings.problems`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..db.community import Community
from ..db.room import CommunityRoom
from ..rules.model import MARKER_EVENT, AuditAction, Role
from .service import Service

# State events whose change may be drift; a change to any of them has its room checked.
WATCHED = {
    "m.room.power_levels",
    "m.space.child",
    "m.space.parent",
    "m.room.join_rules",
    "m.room.encryption",
    "m.room.member",
    MARKER_EVENT,
}


@dataclass
class Findings:
    """One pass over some rooms of a community: what was repaired, what could not be."""

    repairs: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # key → what an admin should do


@dataclass
class RoomCheck:
    """What a reconciliation check gets: one room of a community, and where to say what it
    repaired (`repaired`) or cannot repair (`findings.problems`, keyed by a name that ends
    with the room id)."""

    svc: Service
    community: Community
    room: CommunityRoom
    findings: Findings

    async def repaired(self, what: str) -> None:
        await record_repair(self.svc, self.room, self.findings, what)

    async def repaired_in(self, room: CommunityRoom, what: str) -> None:
        """A repair in another room of the community than the one checked."""
        await record_repair(self.svc, room, self.findings, what)


async def record_repair(svc: Service, room: CommunityRoom, findings: Findings, what: str) -> None:
    """One repair: in the audit log now, in the admins room's notice after the pass."""
    findings.repairs.append(f"{room.name}: {what}")
    await svc.audit(room.space_id, svc.bot, AuditAction.REPAIR, room.room_id, what)


Check = Callable[[RoomCheck], Awaitable[None]]
# Checks that features declared, with the room roles they apply to; the structure, power
# levels and admins room are checked by the `Reconciler` itself.
CHECKS: list[tuple[frozenset[Role], Check]] = []


def check(*roles: Role, watch: tuple[str, ...] = ()) -> Callable[[Check], Check]:
    """Declare a reconciliation check for rooms of these roles; a state event of a `watch`
    type has its room checked soon."""

    def register(fn: Check) -> Check:
        CHECKS.append((frozenset(roles), fn))
        WATCHED.update(watch)
        return fn

    return register
