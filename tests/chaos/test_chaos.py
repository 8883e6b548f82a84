"""Chaos: a scripted workload while the service is killed with SIGKILL at random moments.

Each round starts the service as a process of its own, runs a burst of what people do —
create communities with groups, promote and dismiss admins, join and leave in bursts, knock,
remove and ban, schedule posts a few seconds ahead (so that their due times fall around the
kills) — and kills the service at a random moment of it (commands keep arriving
while it is dead: the homeserver holds them). The service is started again, and once the
homeserver delivers to it, its inbox is empty and no operation is unfinished, the invariants
must hold:

- no orphan room: every room the bot made and is still in belongs to a community or is a
  DM, and no community is left half-built;
- no half-promotion: every admin is at 100 in every room of the community, nobody else is;
- every member of a space is in its announcement room, or invited to it;
- no duplicate reply: no command got the same answer twice;
- scheduled posts once: every scheduled post whose due time has passed is over (none left
  pending), was fired once, and is in each of its rooms (the announcement room, and the groups
  with `--groups all`) exactly once: no duplicate, none missing;
- the inbox is drained and no operation is left unfinished (or failed).

It runs on demand only: `CHAOS_KILLS=N` (CI: 5) or `bench/chaos.py` (100), which prints the
table. `CHAOS_SEED` repeats a run. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.errors import MatrixError
from mautrix.types import PaginationDirection, RoomID

from communities_appservice.db import Tables, create_database, now_ms

from ..integration.harness import Stack, User, eventually

KILLS = int(os.environ.get("CHAOS_KILLS") or 0)
SEED = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(1_000_000))
OWNERS = 8  # communities, at most
PEOPLE = 30
SETTLE = 120.0  # seconds the restarted service has to catch up before that is a violation
HOLDS = 60.0  # seconds an invariant that reconciliation restores has to hold again
SCHEDULED_PER_PLACE = 4  # scheduled posts in one community, at most
MESSAGES = ("m.room.message", "m.room.encrypted")  # the bot's posts, encrypted or not

pytestmark = pytest.mark.skipif(
    not KILLS, reason="chaos runs on demand: CHAOS_KILLS=N, or bench/chaos.py"
)


@dataclass
class Place:
    """One community of the run, as its owner knows it."""

    owner: User
    dm: str
    name: str
    approval: bool
    space: str | None = None
    announcements: str | None = None
    members: set[str] = field(default_factory=set)  # people who were told to join
    admins: set[str] = field(default_factory=set)
    scheduled: list[str] = field(default_factory=list)  # the marks of the posts scheduled


class Chaos:
    def __init__(self, stack: Stack, tables: Tables, rng: random.Random) -> None:
        self.stack = stack
        self.db = tables
        self.rng = rng
        self.places: list[Place] = []
        self.people: list[User] = []
        self.actions: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.problem = ""  # what the last failed look at the scheduled posts found
        self.posts_sent = 0  # rooms that have a scheduled post, at the last look
        self.posts_near_kill = 0  # scheduled posts killed just before or while they went out
        self.kills: list[int] = []  # when the service was killed (UTC ms)

    # --- the workload ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Owners with their DM with the bot, and the people who will come and go."""
        for i in range(OWNERS):
            owner = await self.stack.user(f"owner{i}")
            dm = await owner.dm_bot()
            name = f"Chaos {i} {secrets.token_hex(2)}"
            self.places.append(Place(owner, dm, name, approval=i % 3 == 2))
        self.people = [await self.stack.user(f"p{i}") for i in range(PEOPLE)]

    async def burst(self, seconds: float) -> None:
        """Random actions for `seconds`; a failed call (the service is dead) is skipped."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            action = self.rng.choice(
                [self.create, self.join, self.join, self.leave, self.promote, self.dismiss]
                + [self.remove, self.ban, self.knock, self.schedule, self.schedule]
            )
            # Refusals are part of the game (joining where one is banned, say).
            with contextlib.suppress(MatrixError, aiohttp.ClientError, TimeoutError):
                await action()
            await asyncio.sleep(self.rng.uniform(0.0, 0.15))

    async def _known(self) -> list[Place]:
        """The places whose community exists by now (found in the records)."""
        for place in self.places:
            if place.space is None:
                rows = await self.db.db.fetch(
                    "SELECT space_id FROM community WHERE name=$1 AND state='active'", place.name
                )
                if rows:
                    place.space = str(rows[0]["space_id"])
                    ann = await self.db.rooms.of_community(place.space, "announcements")
                    place.announcements = ann[0].room_id if ann else None
        return [p for p in self.places if p.space is not None]

    async def _command(self, place: Place, text: str) -> None:
        await place.owner.send(place.dm, f"!community {text}")

    async def create(self) -> None:
        fresh = [p for p in self.places if p.space is None and not p.admins]
        if not fresh:
            return
        place = self.rng.choice(fresh)
        place.admins.add(place.owner.user_id)
        mode = "approval" if place.approval else "open"
        await self._command(place, f'create "{place.name}" --groups "A,B" --join {mode}')
        self.actions["create"] += 1

    async def join(self) -> None:
        places = [p for p in await self._known() if not p.approval]
        if not places:
            return
        place = self.rng.choice(places)
        assert place.space is not None
        for person in self.rng.sample(self.people, 3):  # a burst
            await person.join(place.space)
            place.members.add(person.user_id)
        self.actions["join"] += 3

    async def knock(self) -> None:
        places = [p for p in await self._known() if p.approval]
        if not places:
            return
        place, person = self.rng.choice(places), self.rng.choice(self.people)
        url = f"{self.stack.synapse.base_url}/_matrix/client/v3/knock/{place.space}"
        headers = {"Authorization": f"Bearer {person.client.api.token}"}
        async with self.stack.http.post(url, json={"reason": "hi"}, headers=headers):
            pass
        self.actions["knock"] += 1

    def _someone(self, place: Place) -> User | None:
        present = [u for u in self.people if u.user_id in place.members]
        return self.rng.choice(present) if present else None

    async def leave(self) -> None:
        places = await self._known()
        place = self.rng.choice(places) if places else None
        person = self._someone(place) if place else None
        if place is None or person is None or person.user_id in place.admins:
            return
        await person.client.leave_room(RoomID(str(place.space)))
        place.members.discard(person.user_id)
        self.actions["leave"] += 1

    async def promote(self) -> None:
        places = await self._known()
        place = self.rng.choice(places) if places else None
        person = self._someone(place) if place else None
        if place is None or person is None or len(place.admins) >= 4:
            return
        place.admins.add(person.user_id)
        await self._command(place, f"admin add {person.user_id}")
        self.actions["promote"] += 1

    async def dismiss(self) -> None:
        places = [p for p in await self._known() if len(p.admins) > 1]
        if not places:
            return
        place = self.rng.choice(places)
        admin = self.rng.choice(sorted(place.admins - {place.owner.user_id}))
        place.admins.discard(admin)
        await self._command(place, f"admin remove {admin}")
        self.actions["dismiss"] += 1

    async def schedule(self) -> None:
        """A post due in a few seconds: around the next kill, or just after a restart."""
        places = [p for p in await self._known() if len(p.scheduled) < SCHEDULED_PER_PLACE]
        if not places:
            return
        place = self.rng.choice(places)
        mark = f"{self.rng.getrandbits(32):08x}"
        groups = " --groups all" if self.rng.random() < 0.5 else ""
        place.scheduled.append(mark)
        seconds = self.rng.randint(1, 4)
        await self._command(place, f"schedule in {seconds}s{groups} Chaos post {mark}")
        self.actions["schedule"] += 1

    async def remove(self) -> None:
        await self._moderate("remove")

    async def ban(self) -> None:
        await self._moderate("ban")

    async def _moderate(self, verb: str) -> None:
        places = await self._known()
        place = self.rng.choice(places) if places else None
        person = self._someone(place) if place else None
        if place is None or person is None or person.user_id in place.admins:
            return
        place.members.discard(person.user_id)
        await self._command(place, f"{verb} {person.user_id}")
        self.actions[verb] += 1

    # --- after each restart ------------------------------------------------------------

    async def settled(self) -> bool:
        """Delivery works again, the inbox is empty and no operation is unfinished."""
        try:
            await self.delivered()

            async def caught_up() -> bool:
                inbox = await self.db.db.fetchval("SELECT COUNT(*) FROM inbox")
                unfinished = await self.db.db.fetchval(
                    "SELECT COUNT(*) FROM operation WHERE state IN ('running', 'undoing')"
                )
                return int(inbox) == 0 and int(unfinished) == 0

            await eventually(caught_up, "the inbox to drain and operations to end", SETTLE, 0.2)
            return True
        except AssertionError:
            self.violations["inbox drained, operations ended"] += 1
            return False

    async def delivered(self) -> None:
        """A probe from the operator handled by the restarted service (another, after a
        ping, every few seconds: Synapse may hold an event back)."""
        stack = self.stack
        assert stack.admin is not None and stack.probe_room is not None and stack.config
        config = stack.config.appservice
        ping = f"{stack.synapse.base_url}/_matrix/client/v1/appservice/{config.id}/ping"
        probes: list[str] = []
        next_probe = 0.0

        async def handled() -> bool:
            nonlocal next_probe
            if time.monotonic() >= next_probe:
                headers = {"Authorization": f"Bearer {config.as_token}"}
                async with stack.http.post(ping, json={}, headers=headers):
                    pass
                assert stack.admin is not None and stack.probe_room is not None
                probes.append(await stack.admin.send(stack.probe_room, "probe"))
                next_probe = time.monotonic() + 5
            for event_id in probes:
                query = "SELECT 1 FROM handled_event WHERE event_id=$1"
                if await self.db.db.fetchval(query, event_id) is not None:
                    return True
            return False

        await eventually(handled, "delivery to the restarted service", SETTLE, 0.2)

    async def check(self) -> None:
        for name, invariant in (
            ("no orphan room", self.no_orphan_room),
            ("admins at 100, nobody else", self.admins_at_100),
            ("space members in announcements", self.members_in_announcements),
            ("scheduled posts once", self.scheduled_posts_once),
        ):
            try:
                await eventually(invariant, name, HOLDS, 1.0)
            except AssertionError:
                self.violations[name] += 1
                if name == "scheduled posts once":
                    print(f"\nscheduled posts: {self.problem}")
        failed = await self.db.db.fetchval("SELECT COUNT(*) FROM operation WHERE state='failed'")
        if int(failed):
            self.violations["no failed operation"] = int(failed)

    async def no_orphan_room(self) -> bool:
        stack = self.stack
        assert stack.config is not None
        token = stack.config.appservice.as_token
        url = f"{stack.synapse.base_url}/_matrix/client/v3/joined_rooms"
        headers = {"Authorization": f"Bearer {token}"}
        async with stack.http.get(url, headers=headers) as response:
            joined = (await response.json())["joined_rooms"]
        recorded = {
            str(r["room_id"]) for r in await self.db.db.fetch("SELECT room_id FROM community_room")
        }
        dms = {str(r["room_id"]) for r in await self.db.db.fetch("SELECT room_id FROM bot_dm")}
        for room_id in joined:
            if room_id in recorded or room_id in dms:
                continue
            details = await stack.synapse_admin("GET", f"v1/rooms/{room_id}")
            if details.get("creator") == stack.bot:
                return False
        building = await self.db.db.fetchval(
            "SELECT COUNT(*) FROM community WHERE state <> 'active'"
        )
        return int(building) == 0

    async def admins_at_100(self) -> bool:
        for community in await self.db.communities.all_active():
            admins = set(await self.db.admins.roles(community.space_id))
            for room in await self.db.rooms.of_community(community.space_id):
                levels = await self.stack.admin_state(room.room_id, "m.room.power_levels")
                users = {u: int(v) for u, v in (levels.get("users") or {}).items()}
                if any(users.get(admin) != 100 for admin in admins):
                    return False
                if any(
                    v >= 100 and u not in admins and u != self.stack.bot for u, v in users.items()
                ):
                    return False
        return True

    async def members_in_announcements(self) -> bool:
        for community in await self.db.communities.all_active():
            [ann] = await self.db.rooms.of_community(community.space_id, "announcements")
            state = await self.stack.room_state(community.space_id)
            joined = {
                e["state_key"]
                for e in state
                if e["type"] == "m.room.member" and e["content"].get("membership") == "join"
            }
            ann_state = await self.stack.room_state(ann.room_id)
            present = {
                e["state_key"]
                for e in ann_state
                if e["type"] == "m.room.member"
                and e["content"].get("membership") in ("join", "invite")
            }
            if joined - present - {self.stack.bot}:
                return False
        return True

    async def last_due(self) -> None:
        """Until every scheduled post still pending is due (the last round's are checked
        too)."""
        latest = await self.db.db.fetchval(
            "SELECT MAX(due_at) FROM scheduled_job WHERE state='pending'"
        )
        if latest is not None:
            due = int(latest)

            async def passed() -> bool:
                return now_ms() > due

            await eventually(passed, "the last scheduled post's due time", HOLDS, 0.2)

    async def bot_messages(self, room_id: str) -> list[str]:
        """Every message event (encrypted or not) the bot sent into `room_id`."""
        found: list[str] = []
        token = ""
        while True:
            query = f"dir=b&limit=1000{'&from=' + quote(token) if token else ''}"
            page = await self.stack.synapse_admin("GET", f"v1/rooms/{room_id}/messages?{query}")
            found += [
                str(e["event_id"])
                for e in page["chunk"]
                if e["sender"] == self.stack.bot and e["type"] in MESSAGES
            ]
            if not page["chunk"] or not page.get("end") or page["end"] == token:
                return found
            token = str(page["end"])

    def _wrong(self, problem: str) -> bool:
        self.problem = problem
        return False

    async def scheduled_posts_once(self) -> bool:
        """Each scheduled post that is due is over, fired once, recorded as one post, and
        that post is in each of its rooms exactly once; the bot posted nothing else there."""
        now = now_ms()
        sent = near_kill = 0
        for place in await self._known():
            assert place.space is not None and place.announcements is not None
            jobs = await self.db.db.fetch(
                "SELECT id, due_at, state, fired, params FROM scheduled_job"
                " WHERE space_id=$1 AND kind='post' ORDER BY id",
                place.space,
            )
            marks: Counter[str] = Counter()
            groups = [g.room_id for g in await self.db.rooms.of_community(place.space, "group")]
            expected: dict[str, list[str]] = {r: [] for r in [place.announcements, *groups]}
            for job in jobs:
                params = json.loads(job["params"])
                marks[str(params["text"]).rsplit(" ", 1)[-1]] += 1
                if job["state"] == "pending":
                    if int(job["due_at"]) <= now:
                        return self._wrong(f"job {job['id']} pending past its due time")
                    continue
                ops = await self.db.db.fetch(
                    "SELECT id, state, updated_at, params FROM operation"
                    " WHERE kind='post' AND params LIKE $1",
                    f'%"key": "schedule {job["id"]} at %',
                )
                if job["state"] != "done" or int(job["fired"]) != 1 or len(ops) != 1:
                    return self._wrong(
                        f"job {job['id']}: {job['state']}, fired {job['fired']}, {len(ops)} posts"
                    )
                [op] = ops
                due, over = int(job["due_at"]), int(op["updated_at"])
                near_kill += any(due - 2000 <= k <= over for k in self.kills)
                rooms = json.loads(op["params"])["rooms"]
                wanted = [place.announcements, *(groups if params.get("groups") else [])]
                if op["state"] != "done" or sorted(rooms) != sorted(wanted):
                    return self._wrong(f"job {job['id']}: post {op['id']} {op['state']} in {rooms}")
                steps = await self.db.operations.steps(int(op["id"]))
                for room in rooms:
                    event = (steps.get(f"sent:{room}") or {}).get("event_id")
                    if not event:
                        return self._wrong(f"job {job['id']}: not sent in {room}: {steps}")
                    expected[room].append(str(event))
            if any(n > 1 for n in marks.values()):
                return self._wrong(f"a schedule command ran twice: {marks}")
            for room, events in expected.items():
                there = await self.bot_messages(room)
                if sorted(there) != sorted(events):
                    return self._wrong(f"{room}: the bot posted {there}, recorded {events}")
                sent += len(events)
        self.posts_sent, self.posts_near_kill = sent, near_kill
        return True

    async def duplicate_replies(self) -> int:
        """Replies the bot sent twice: the same answer to the same command."""
        duplicates = 0
        for place in self.places:
            response = await place.owner.client.get_messages(
                RoomID(place.dm), PaginationDirection.BACKWARD, limit=1000
            )
            answers: Counter[tuple[str, str]] = Counter()
            for event in response.events:
                content: dict[str, Any] = event.content.serialize()
                replied = ((content.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get(
                    "event_id"
                )
                if event.sender == self.stack.bot and replied:
                    answers[(str(replied), str(content.get("body")))] += 1
            for (replied, body), n in answers.items():
                if n > 1:
                    print(f"\nduplicate reply ({n}x) to {replied} in {place.dm}: {body[:200]!r}")
                    duplicates += n - 1
        return duplicates


async def test_kill_9_at_random_moments_breaks_no_invariant(stack: Stack) -> None:
    rng = random.Random(SEED)
    stack.write_config(reconcile_interval=5)
    observer = create_database(stack.database)
    await observer.start()
    chaos = Chaos(stack, Tables(observer), rng)
    process = None
    started = time.monotonic()
    try:
        await chaos.prepare()
        process = await stack.spawn_app()
        for _ in range(KILLS):
            workload = asyncio.ensure_future(chaos.burst(rng.uniform(0.5, 3.0)))
            await asyncio.sleep(rng.uniform(0.05, 2.0))
            process.send_signal(signal.SIGKILL)
            chaos.kills.append(now_ms())
            await process.wait()
            await workload  # what it sends meanwhile waits for the service at the homeserver
            process = await stack.spawn_app()
            if await chaos.settled():
                await chaos.check()
        await chaos.last_due()
        try:
            await eventually(chaos.scheduled_posts_once, "the last scheduled posts", HOLDS, 1.0)
        except AssertionError:
            chaos.violations["scheduled posts once"] += 1
            print(f"\nscheduled posts: {chaos.problem}")
        chaos.violations["duplicate reply"] += await chaos.duplicate_replies()
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await observer.stop()
        stack.write_config()
        await stack.start_app()
    operations = await _operations(stack)
    violations = sum(chaos.violations.values())
    print(f"\nchaos: seed {SEED}, {time.monotonic() - started:.0f} s")
    print(f"{'kills':<32} {KILLS:>6}")
    print(f"{'operations':<32} {operations:>6}")
    print(f"{'scheduled posts in rooms':<32} {chaos.posts_sent:>6}")
    print(f"{'  due around a kill':<32} {chaos.posts_near_kill:>6}")
    for action, count in sorted(chaos.actions.items()):
        print(f"{'  ' + action:<32} {count:>6}")
    for name in (
        "inbox drained, operations ended",
        "no orphan room",
        "admins at 100, nobody else",
        "space members in announcements",
        "no failed operation",
        "scheduled posts once",
        "duplicate reply",
    ):
        print(f"{'violations: ' + name:<32} {chaos.violations.get(name, 0):>6}")
    print(f"{'violations':<32} {violations:>6}")
    assert violations == 0, dict(chaos.violations)


async def _operations(stack: Stack) -> int:
    assert stack.app is not None
    return int(await stack.app.db.fetchval("SELECT COUNT(*) FROM operation"))
