"""An active/standby pair on one PostgreSQL database, behind a load balancer that follows
`/_matrix/mau/ready`, against the real Synapse: the leader (a process of its own) is killed
with SIGKILL in the middle of `create`; the standby takes the lease, finishes the operation
from its recorded steps, and nothing is lost or made twice."""

from __future__ import annotations

import asyncio
import secrets
import signal

import aiohttp
import pytest
import yaml

from communities_appservice.app import App
from communities_appservice.config import load
from communities_appservice.db import Tables, create_database
from communities_appservice.dev.localhs import free_loopback_port

from .. import postgres
from .harness import ReadyBalancer, Stack, eventually
from .test_resilience import (
    GROUPS,
    MOMENT,
    groups_recorded,
    op_state,
    op_steps,
    rooms_on_server,
)


async def status(http: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with http.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return None


async def test_the_standby_finishes_what_the_killed_leader_began(stack: Stack) -> None:
    if not postgres.selected():
        pytest.skip("an active/standby pair shares a PostgreSQL database")
    await stack.stop_app()
    ports = [free_loopback_port(), free_loopback_port()]
    paths = []
    for n, port in enumerate(ports):
        raw = yaml.safe_load(stack.config_path.read_text())
        raw["appservice"]["port"] = port
        raw["appservice"]["high_availability"] = True
        raw["metrics"]["enabled"] = False
        path = stack.workdir / f"config-{'ab'[n]}.yaml"
        path.write_text(yaml.safe_dump(raw))
        paths.append(path)
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    balancer = ReadyBalancer(stack.as_port, urls, stack.http)  # where Synapse sends
    await balancer.start()
    leader = standby = None
    observer = create_database(stack.database)
    await observer.start()
    try:
        leader = await stack.spawn_app(paths[0], ports[0])
        standby = App(load(paths[1]))
        taking_over = asyncio.create_task(standby.start())

        async def standing_by() -> bool:
            live = await status(stack.http, urls[1] + "/_matrix/mau/live")
            return live == 200 and await status(stack.http, urls[1] + "/_matrix/mau/ready") == 503

        await eventually(standing_by, "the standby to answer its probes")
        assert not taking_over.done()

        owner = await stack.user("owner")
        dm = await owner.dm_bot()
        name = f"Standby {secrets.token_hex(3)}"
        names = ",".join(f"{name} G{i}" for i in range(GROUPS))
        await owner.send(dm, f'!community create "{name}" --groups "{names}"')

        async def halfway() -> bool:
            found = await op_steps(Tables(observer), name)
            return found is not None and groups_recorded(found[1]) >= GROUPS // 2

        await eventually(halfway, "create to reach half its groups", 60, MOMENT)
        leader.send_signal(signal.SIGKILL)
        await leader.wait()
        found = await op_steps(Tables(observer), name)
        assert found is not None and "activate" not in found[1], "killed too late"
        op_id = found[0]

        await asyncio.wait_for(taking_over, 60)  # the lease went with the leader's process
        assert await status(stack.http, urls[1] + "/_matrix/mau/ready") == 200
        stack.app = standby
        await op_state(stack, op_id, "done")
        op = await standby.tables.operations.get(op_id)
        assert op is not None
        community = await standby.tables.communities.get(op.space_id)
        assert community is not None and community.state == "active"
        rooms = await standby.tables.rooms.of_community(op.space_id)
        assert sorted(r.role for r in rooms).count("group") == GROUPS
        # Every room made once on the homeserver: none twice, no orphan of the kill.
        await rooms_on_server(stack, name, {r.room_id for r in rooms})
    finally:
        if leader is not None and leader.returncode is None:
            leader.kill()
            await leader.wait()
        if standby is not None and stack.app is not standby:
            await standby.stop()
        await stack.stop_app()
        await observer.stop()
        await balancer.stop()
        await stack.start_app()
