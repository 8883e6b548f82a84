"""Reconciliation: the records say how every room of a community must be; make it so.

The database holds the desired state. On start-up, on every relevant state event, and every
`communities.reconcile_interval` seconds, each room of a community is compared with it:

- power levels: admins and group admins exactly as recorded, the bot-only events at the
  bot-only level, `events_default` (announcements: admins only), the moderation levels;
- the `communities.room` marker, the join rule, encryption;
- `m.space.child` in the space for the announcement room and every group, and nothing else;
  `m.space.parent` in each of them;
- the admins room's membership: the admins, and nobody else.

Drift is repaired; each repair is written to the audit log and announced in the admins room.
What the bot cannot repair (it was removed from a room; someone in an adopted room holds as
much power as the bot; more admins than `max_admins` allows) is a *problem*: announced once
with what an admin should do, shown by `info` (the community is "degraded") until it is gone.

A community with an unfinished operation is left alone: the operation itself writes the
recorded state when it goes on. Reconciliation and operations of one community never run at
the same time (`Operations.lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mautrix.types import RoomID, UserID

from .. import language
from ..db import now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import isolated
from ..language import N_
from ..matrix.errors import MatrixError, is_transient
from ..rules.drift import (
    Fix,
    admins_room_drift,
    desired_join_rule,
    join_rule_drifts,
    link_fixes,
    power_drift,
)
from ..rules.joins import (
    marker_content,
    parent_content,
)
from ..rules.limits import admin_excess
from ..rules.model import (
    MARKER_EVENT,
    MEGOLM,
    AuditAction,
    CommunityState,
    GroupAccess,
    JoinMode,
    Role,
)
from ..rules.power import outranking
from ..tasks import bounded
from .checks import CHECKS, WATCHED, Findings, RoomCheck, record_repair
from .notices import lines as text_lines
from .notices import notice, say
from .service import Service

log = logging.getLogger("communities.reconcile")

# A burst of state events (a client's edits, our own repairs) is checked once.
SETTLE_SECONDS = 0.5
ADMIN_EXCESS = "admins"  # the key of the community-wide problem of too many admins
COMMUNITIES_AT_ONCE = 4


class Reconciler:
    def __init__(self, service: Service) -> None:
        self.svc = service
        self._pending: dict[str, set[str]] = {}  # room → event types awaiting its check

    # --- triggers ---------------------------------------------------------------------------

    def start(self) -> None:
        """A full pass now, then one every `reconcile_interval` seconds."""
        interval = self.svc.config.communities.reconcile_interval
        self.svc.tasks.spawn("reconciliation", self._every(interval))

    async def _every(self, interval: float) -> None:
        while True:
            with isolated(log, "reconciliation pass failed"):
                await self.everything()
            await asyncio.sleep(interval)

    def state_changed(self, event: dict[str, Any]) -> None:
        """A state event arrived: check its room soon (bursts are checked once)."""
        event_type = event.get("type")
        if event_type not in WATCHED or "state_key" not in event:
            return
        room_id = RoomID(str(event.get("room_id")))
        if event_type == "m.room.power_levels" and event.get("sender") == self.svc.bot:
            # The bot's own write (100 of them for one `admin add`): the room needs checking
            # only if it is not, or no longer, what the records demand.
            self.svc.tasks.spawn(f"checking power in {room_id}", self._own_power(room_id, event))
            return
        self._check(room_id, str(event_type))

    async def _own_power(self, room_id: RoomID, event: dict[str, Any]) -> None:
        room = await self.svc.db.rooms.get(room_id)
        community = await self.svc.db.communities.get(room.space_id) if room else None
        if room is None or community is None or community.state != CommunityState.ACTIVE:
            return
        if event.get("content") != await self.svc.power_for(community, room):
            self._check(room_id, str(event["type"]))

    def _check(self, room_id: RoomID, event_type: str) -> None:
        seen = self._pending.get(room_id)
        if seen is not None:
            seen.add(event_type)
            return
        self._pending[room_id] = {event_type}
        self.svc.tasks.spawn(f"reconciling {room_id}", self._check_soon(room_id))

    async def _check_soon(self, room_id: RoomID) -> None:
        try:
            await asyncio.sleep(SETTLE_SECONDS)
            seen = self._pending.pop(room_id, set())
            room = await self.svc.db.rooms.get(room_id)
            if room is None:
                return
            if seen == {"m.room.member"} and room.role != Role.ADMINS:
                return  # membership matters for reconciliation only in the admins room
            community = await self.svc.db.communities.get(room.space_id)
            if community is not None and community.state == CommunityState.ACTIVE:
                await self.community(community, only=room_id)
        finally:  # a failure is logged with a reference by the task's owner (`tasks.Tasks`)
            self._pending.pop(room_id, None)

    # --- passes -------------------------------------------------------------------------------

    async def everything(self) -> list[str]:
        """A pass over every community, each isolated: one that fails is logged with a
        reference and the others go on. The space ids of those that failed."""
        communities = await self.svc.db.communities.all_active()

        async def one(community: Community) -> str | None:
            with isolated(log, "reconciling %s failed", community.space_id) as failure:
                await self.community(community)
            return community.space_id if failure.ref else None

        failed = await bounded((one(c) for c in communities), COMMUNITIES_AT_ONCE)
        return [space_id for space_id in failed if space_id]

    async def community(self, community: Community, only: str | None = None) -> Findings:
        """Check (and repair) the rooms of one community; `only` limits it to one room."""
        with language.speaking(self.svc.language_for(community)):
            return await self._community(community, only)

    async def _community(self, community: Community, only: str | None) -> Findings:
        svc, space_id = self.svc, community.space_id
        if await svc.ops.busy(space_id):
            log.debug("%s has an unfinished operation; not reconciling now", space_id)
            return Findings()
        async with svc.ops.lock(space_id):
            fresh = await svc.db.communities.get(space_id)
            if (
                fresh is None
                or fresh.state != CommunityState.ACTIVE
                or await svc.ops.busy(space_id)
            ):
                return Findings()  # an operation stalled while we waited: it goes on later
            rooms = await svc.db.rooms.of_community(space_id)
            findings = Findings()
            for room in rooms:
                if only is None or room.room_id == only:
                    await self._room(fresh, room, rooms, findings)
            count = len(await svc.db.admins.roles(space_id))
            excess = admin_excess(count, svc.config.communities.max_admins)
            if excess:
                findings.problems[ADMIN_EXCESS] = say(
                    "This community has {} admins but the limit is now {}: nobody can be "
                    "promoted until {} are dismissed (nobody was dismissed automatically).",
                    count,
                    svc.config.communities.max_admins,
                    excess,
                ).plain
        await self._report(fresh, findings, rooms=None if only is None else {only})
        return findings

    async def _room(
        self,
        community: Community,
        room: CommunityRoom,
        rooms: list[CommunityRoom],
        findings: Findings,
    ) -> None:
        try:
            state = await self._state(room, findings)
            if state is None:
                return
            await self._power(community, room, state, findings)
            await self._room_state(community, room, rooms, state, findings)
            if room.role == Role.ADMINS:
                await self._admins_members(community, room, state, findings)
            for roles, extra in CHECKS:
                if room.role in roles:
                    await extra(RoomCheck(self.svc, community, room, findings))
        except MatrixError as e:
            if is_transient(e):
                raise
            log.warning("reconciling %s: refused (%s)", room.room_id, e.errcode)
            findings.problems[f"refused {room.room_id}"] = say(
                "The homeserver refuses the bot's changes in {} ({}): give {} the highest "
                "power level there.",
                room.name,
                e.errcode,
                self.svc.bot,
            ).plain

    async def _state(
        self, room: CommunityRoom, findings: Findings
    ) -> dict[tuple[str, str], dict[str, Any]] | None:
        """The room's state by (type, key); the bot rejoins a room it was removed from when
        the join rule lets it, else the room is a problem."""
        gw = self.svc.gw
        try:
            events = await self._watched_state(room)
        except MatrixError as e:
            if is_transient(e) or e.status != 403:
                raise
            try:
                await gw.join(
                    room.room_id, reason=say("Rejoining to keep the community's rules").plain
                )
                events = await self._watched_state(room)
            except MatrixError as e2:
                if is_transient(e2):
                    raise
                findings.problems[f"gone {room.room_id}"] = say(
                    "The bot was removed from {} and cannot return: invite {} to {} again, or "
                    "remove the group.",
                    room.name,
                    self.svc.bot,
                    room.room_id,
                ).plain
                return None
            await self._repaired(room, findings, say("the bot had been removed; it rejoined").plain)
        return {(str(e["type"]), str(e.get("state_key", ""))): e for e in events}

    async def _watched_state(self, room: CommunityRoom) -> list[dict[str, Any]]:
        """The state events reconciliation compares, without the member list of a big room.

        The admins room is small and its members matter: its whole state. Elsewhere one
        request per watched event, and for the space its links as the space hierarchy lists
        them (the whole state of a space is every member's event)."""
        gw = self.svc.gw
        if room.role == Role.ADMINS:
            return await gw.room_state(room.room_id)
        wanted = [
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
            (MARKER_EVENT, ""),
        ]
        if room.role == Role.SPACE:
            events = [
                {"type": "m.space.child", "state_key": child, "content": content}
                for child, content in (await gw.space_children(room.room_id)).items()
            ]
        else:
            wanted += [("m.room.encryption", ""), ("m.space.parent", room.space_id)]
            events = []
        contents = await bounded(gw.get_state(room.room_id, t, k) for t, k in wanted)
        events += [
            {"type": t, "state_key": k, "content": c}
            for (t, k), c in zip(wanted, contents, strict=True)
            if c is not None
        ]
        return events

    async def _power(
        self,
        community: Community,
        room: CommunityRoom,
        state: dict[tuple[str, str], dict[str, Any]],
        findings: Findings,
    ) -> None:
        svc = self.svc
        actual = dict((state.get(("m.room.power_levels", "")) or {}).get("content") or {})
        desired = await svc.power_for(community, room)
        drift = power_drift(actual, desired)
        if not drift:
            return
        levels = svc.levels(community, room)
        if levels.bot_listed:
            rivals = outranking(actual, svc.bot, levels.bot)
            if rivals:
                findings.problems[f"outranked {room.room_id}"] = say(
                    "In {}, {} hold as much power as the bot, which therefore cannot keep the "
                    "community's rules there: they must lower their own level below {}.",
                    room.name,
                    ", ".join(rivals),
                    levels.bot,
                ).plain
                return
        await svc.gw.send_state(room.room_id, "m.room.power_levels", {**actual, **desired})
        await self._repaired(room, findings, say("power levels ({})", "; ".join(drift)).plain)

    async def _room_state(
        self,
        community: Community,
        room: CommunityRoom,
        rooms: list[CommunityRoom],
        state: dict[tuple[str, str], dict[str, Any]],
        findings: Findings,
    ) -> None:
        """Marker, join rule, encryption, and the space's links, against the records."""
        svc, space_id = self.svc, community.space_id

        def content(event_type: str, key: str = "") -> dict[str, Any]:
            return dict((state.get((event_type, key)) or {}).get("content") or {})

        fixes: list[Fix] = []
        marker = marker_content(space_id, Role(room.role))
        if content(MARKER_EVENT) != marker:
            fixes.append((MARKER_EVENT, marker, "", (N_("the community marker"),)))
        join_rule = desired_join_rule(
            Role(room.role), JoinMode(community.join_mode), GroupAccess(room.access), space_id
        )
        if join_rule_drifts(content("m.room.join_rules"), join_rule):
            fixes.append(
                ("m.room.join_rules", join_rule, "", (N_("join rule {}"), join_rule["join_rule"]))
            )
        if (
            room.role != Role.SPACE
            and svc.config.encryption.enabled
            and not content("m.room.encryption")
        ):
            fixes.append(("m.room.encryption", {"algorithm": MEGOLM}, "", (N_("encryption"),)))
        if room.role in (Role.ANNOUNCEMENTS, Role.GROUP) and not content(
            "m.space.parent", space_id
        ).get("via"):
            fixes.append(
                ("m.space.parent", parent_content(svc.server_name), space_id, (N_("its parent"),))
            )
        if room.role == Role.SPACE:
            links = [(r.room_id, Role(r.role), r.position, r.name) for r in rooms]
            fixes.extend(link_fixes(svc.server_name, links, state))
        for event_type, body, key, what in fixes:
            await svc.gw.send_state(room.room_id, event_type, body, key)
            await self._repaired(room, findings, say(*what).plain)

    async def _admins_members(
        self,
        community: Community,
        room: CommunityRoom,
        state: dict[tuple[str, str], dict[str, Any]],
        findings: Findings,
    ) -> None:
        svc = self.svc
        members = {
            UserID(key): (str((e.get("content") or {}).get("membership")), str(e.get("sender")))
            for (event_type, key), e in state.items()
            if event_type == "m.room.member"
        }
        admins = await svc.db.admins.roles(community.space_id)
        invite, remove = admins_room_drift(members, admins, svc.bot)
        for user in invite:
            if members.get(user, ("", ""))[0] == "ban":
                continue
            await svc.gw.invite(
                room.room_id, user, reason=say("You are an admin of the community").plain
            )
            await self._repaired(room, findings, say("invited the admin {}", user).plain)
        for user in remove:
            await svc.gw.kick(
                room.room_id, user, say("Only the community's admins belong here").plain
            )
            await self._repaired(room, findings, say("removed {}, who is not an admin", user).plain)

    # --- reporting ----------------------------------------------------------------------------

    async def _repaired(self, room: CommunityRoom, findings: Findings, what: str) -> None:
        await record_repair(self.svc, room, findings, what)

    async def _report(
        self, community: Community, findings: Findings, rooms: set[str] | None
    ) -> None:
        """Announce repairs, and problems when they appear or go away, in the admins room."""
        svc, space_id = self.svc, community.space_id
        known = await svc.db.problems.of(space_id)
        checked = {
            key
            for key in known
            if rooms is None
            or key == ADMIN_EXCESS
            or any(key.endswith(" " + room_id) for room_id in rooms)
        }
        new = {k: v for k, v in findings.problems.items() if known.get(k) != v}
        gone = [known[k] for k in checked if k not in findings.problems]
        for key in checked - set(findings.problems):
            await svc.db.problems.delete(space_id, key)
        for key, text in new.items():
            await svc.db.problems.put(space_id, key, text, now_ms())
        parts = []
        if findings.repairs:
            parts.append(say("🔧 Repaired what had drifted from the community's records:"))
            parts += [say("• {}", r) for r in findings.repairs]
        if new:
            parts.append(say("⚠️ Needs an admin:"))
            parts += [say("• {}", p) for p in new.values()]
        if gone:
            parts.append(say("✅ Resolved:"))
            parts += [say("• {}", p) for p in gone]
        if not parts:
            return
        log.info(
            "%s: %d repairs, %d new problems, %d resolved",
            space_id,
            len(findings.repairs),
            len(new),
            len(gone),
        )
        for problem in new.values():
            await svc.audit(space_id, svc.bot, AuditAction.PROBLEM, "", problem, "unrepaired")
        admins_room = await svc.room_of_role(space_id, Role.ADMINS)
        if admins_room is None:
            return
        with contextlib.suppress(MatrixError):
            content = notice(text_lines(*parts))
            await svc.gw.send_message(admins_room.room_id, "m.room.message", content)
