"""Benchmark: a burst of joins on an open community, against a plain client doing the same.

N users (1,000 by default) join a community's space at R joins a second (20). For each, the
time from their join to the bot's invitation into the announcement room is read from the
homeserver's own timestamps (`origin_server_ts` of the join and of the invite: one clock).
Then the same users join the space of a plain mautrix `Client`, which follows its space by
`/sync` and invites each joiner to a room of its own as soon as it sees the join: the same
invites, by a client that does nothing else. Printed: median, p95 and max for both and the
ratio of the p95s (goals: bot p95 under 2 s, at most 1.15× the client's). Only 127.0.0.1.

With `--breakdown` it also prints where each join's time went in the bot (wrappers in this
process only): to the service, the inbox write, the wait for the room's worker, the look
at the membership, the invite request.

    python bench/join_burst.py [--users 1000] [--rate 20] [--keep DIR] [--breakdown]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from common import in_workdir, local_synapse  # type: ignore[import-not-found]  # bench/
from mautrix.client import Client
from mautrix.types import EventType, RoomID, UserID

from communities_appservice.app import App
from communities_appservice.dev.localhs import LocalSynapse
from communities_appservice.features.structure import Structure
from communities_appservice.matrix.gateway import MatrixGateway
from communities_appservice.matrix.router import Router
from communities_appservice.rules.model import JoinMode, Role
from communities_appservice.tasks import bounded


async def burst(clients: list[Client], room: RoomID, rate: float) -> None:
    """Every client joins `room`, one every 1/rate seconds."""
    began = time.monotonic()

    async def join(i: int, client: Client) -> None:
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        await client.join_room_by_id(room)

    await asyncio.gather(*(join(i, c) for i, c in enumerate(clients)))


async def memberships(reader: Client, room: RoomID, membership: str) -> dict[str, int]:
    """When each user whose current membership in `room` is `membership` got it, by the
    server's clock (the bench's users never answer an invitation, so it stays current)."""
    return {
        str(event.state_key): event.timestamp
        for event in await reader.get_state(room)
        if event.type == EventType.ROOM_MEMBER
        and event.content.serialize().get("membership") == membership
    }


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.5)


def latencies(joins: dict[str, int], invites: dict[str, int], users: list[str]) -> list[float]:
    return [(invites[u] - joins[u]) / 1000 for u in users]


def summary(name: str, values: list[float]) -> tuple[float, str]:
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    line = f"{name:<8} {statistics.median(ordered):>8.3f} {p95:>8.3f} {ordered[-1]:>8.3f}"
    return p95, line


class Breakdown:
    """Wrappers on the router and the gateway: when each joiner's join reached the service,
    was stored, began to be handled, and when its invite was asked for and answered."""

    SPANS = (
        ("to the service", "sent", "received"),
        ("inbox write", "received", "stored"),
        ("wait for the worker", "stored", "handled"),
        ("look", "handled", "inviting"),
        ("invite request", "inviting", "invited"),
    )

    def __init__(self) -> None:
        self.marks: dict[str, dict[str, float]] = {}
        accept, handle, invite = Router.accept, Router._handle, MatrixGateway.invite
        marks = self.marks

        def joiner(event: dict[str, Any]) -> dict[str, float] | None:
            content = event.get("content") or {}
            if event.get("type") != "m.room.member" or content.get("membership") != "join":
                return None
            return marks.setdefault(str(event.get("state_key")), {})

        async def accepting(router: Router, txn_id: str, events: Any, *args: Any) -> None:
            now = time.time()
            for event in events:
                if (mark := joiner(event)) is not None:
                    mark.setdefault("sent", event["origin_server_ts"] / 1000)
                    mark.setdefault("received", now)
            await accept(router, txn_id, events, *args)
            for event in events:
                if (mark := joiner(event)) is not None:
                    mark.setdefault("stored", time.time())

        async def handling(router: Router, item: Any) -> None:
            if (mark := joiner(item.event)) is not None:
                mark.setdefault("handled", time.time())
            await handle(router, item)

        async def inviting(gateway: MatrixGateway, room: RoomID, user: UserID, **kw: Any) -> None:
            mark = marks.setdefault(str(user), {})
            mark.setdefault("inviting", time.time())
            await invite(gateway, room, user, **kw)
            mark.setdefault("invited", time.time())

        Router.accept = accepting  # type: ignore[method-assign]
        Router._handle = handling  # type: ignore[method-assign]
        MatrixGateway.invite = inviting  # type: ignore[method-assign,assignment]

    def print(self, users: list[str]) -> None:
        rows = [self.marks[u] for u in users if len(self.marks.get(u, {})) == 6]
        print(f"where the bot's time went ({len(rows)} joins; seconds, median and p95)")
        for label, start, end in self.SPANS:
            spans = sorted(row[end] - row[start] for row in rows)
            p95 = spans[max(0, int(len(spans) * 0.95) - 1)]
            print(f"  {label:<22} {statistics.median(spans):>7.3f} {p95:>7.3f}")


class PlainInviter:
    """A plain client following its space by /sync, inviting every joiner to its room."""

    def __init__(self, client: Client, space: RoomID, room: RoomID) -> None:
        self.client, self.space, self.room = client, space, room
        self.invited: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()

    async def follow(self, since: str | None) -> None:
        while True:
            sync: dict[str, Any] = await self.client.sync(since=since, timeout=30_000)
            since = sync["next_batch"]
            joined = sync.get("rooms", {}).get("join", {}).get(self.space, {})
            for event in joined.get("timeline", {}).get("events", []):
                content = event.get("content") or {}
                user = event.get("state_key")
                joined_now = (
                    event.get("type") == "m.room.member" and content.get("membership") == "join"
                )
                if joined_now and user != self.client.mxid and user not in self.invited:
                    self.invited.add(user)
                    task = asyncio.create_task(self.client.invite_user(self.room, user))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)


async def register(synapse: LocalSynapse, http: aiohttp.ClientSession, n: int) -> list[Client]:
    async def one(i: int) -> Client:
        user, token = await synapse.register_user(f"j{i}-{secrets.token_hex(3)}", "pw-j")
        return Client(
            mxid=UserID(user), base_url=synapse.base_url, token=token, client_session=http
        )

    return await bounded((one(i) for i in range(n)), 8)


async def run(n: int, rate: float, workdir: Path, breakdown: Breakdown | None) -> None:
    synapse, config, _ = local_synapse(workdir)
    await synapse.start()
    app = App(config)
    await app.start()
    http = aiohttp.ClientSession()
    assert app.service is not None
    try:
        owner_id, owner_token = await synapse.register_user(f"own-{secrets.token_hex(3)}", "pw")
        owner = Client(
            mxid=UserID(owner_id), base_url=synapse.base_url, token=owner_token, client_session=http
        )
        began = time.perf_counter()
        clients = await register(synapse, http, n)
        print(f"registered {n} users in {time.perf_counter() - began:.0f} s")
        community = await Structure(app.service).create_community(
            UserID(owner_id), f"Burst {secrets.token_hex(3)}", "", JoinMode.OPEN, []
        )
        space = community.space_id
        ann = await app.service.room_of_role(space, Role.ANNOUNCEMENTS)
        assert ann is not None
        await owner.join_room_by_id(space)

        async def owner_in_announcements() -> bool:
            return ann.room_id in await owner.get_joined_rooms() or bool(
                await _join_if_invited(owner, ann.room_id)
            )

        await wait_for(owner_in_announcements, "the owner's invitation", 60)
        await burst(clients, space, rate)
        users = [str(c.mxid) for c in clients]

        async def all_invited() -> bool:
            got = await memberships(owner, ann.room_id, "invite")
            return all(u in got for u in users)

        await wait_for(all_invited, "every invitation of the bot", 600)
        bot = latencies(
            await memberships(owner, space, "join"),
            await memberships(owner, ann.room_id, "invite"),
            users,
        )

        plain_space = await owner.create_room(
            name="Plain space",
            initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "public"}}],
        )
        plain_room = await owner.create_room(name="Plain announcements")
        first = await owner.sync(timeout=0)
        inviter = PlainInviter(owner, plain_space, plain_room)
        follower = asyncio.create_task(inviter.follow(first["next_batch"]))
        await burst(clients, plain_space, rate)

        async def plain_done() -> bool:
            got = await memberships(owner, plain_room, "invite")
            return all(u in got for u in users)

        await wait_for(plain_done, "every invitation of the plain client", 600)
        follower.cancel()
        plain = latencies(
            await memberships(owner, plain_space, "join"),
            await memberships(owner, plain_room, "invite"),
            users,
        )
        print(f"{n} joins at {rate:g}/s; seconds from a join to its announcement-room invite")
        print(f"{'':<8} {'median':>8} {'p95':>8} {'max':>8}")
        bot_p95, line = summary("bot", bot)
        print(line)
        plain_p95, line = summary("client", plain)
        print(line)
        print(f"bot p95 / client p95: {bot_p95 / plain_p95:.2f} (goal ≤ 1.15); bot p95 < 2 s: "
              f"{'met' if bot_p95 < 2 else 'NOT met'}")  # fmt: skip
        if breakdown is not None:
            breakdown.print(users)
    finally:
        await http.close()
        await app.stop()
        await synapse.stop()


async def _join_if_invited(client: Client, room: RoomID) -> bool:
    try:
        await client.join_room_by_id(room)
    except Exception:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="joins a second")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument("--breakdown", action="store_true", help="where the bot's time went")
    args = parser.parse_args()
    breakdown = Breakdown() if args.breakdown else None
    in_workdir(
        args.keep,
        "join-burst-bench-",
        lambda workdir: run(args.users, args.rate, workdir, breakdown),
    )


if __name__ == "__main__":
    main()
