"""Benchmark: creating a community with N groups, crash-safe operation vs plain client.

The bot runs `create` as an operation: recorded in the database first, each step's result
saved as it finishes, every room created under a temporary alias (so a crash cannot leave
an orphan), the aliases removed at the end. A plain mautrix `Client` on the same Synapse
makes the same rooms with the same requests (space, announcement room, N groups, admins
room, the space's links and marker), with the same concurrency, and nothing else. Printed:
the median of both times over the rounds and the ratio bot / client, i.e. what crash safety
costs. Only 127.0.0.1.

    python bench/create_community.py [--groups 10,50] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.client import Client
from mautrix.types import EventType, RoomID, UserID
from megolm_share import write_config  # type: ignore[import-not-found]  # bench/ is on sys.path

from communities_appservice.app import App
from communities_appservice.config import generate_registration
from communities_appservice.core.rooms import site
from communities_appservice.core.service import Service
from communities_appservice.dev.localhs import LocalSynapse
from communities_appservice.features.structure import Structure
from communities_appservice.rules.blueprints import child_state, new_power, room_request
from communities_appservice.rules.joins import (
    child_content,
    group_order,
    join_rule_content,
    marker_content,
)
from communities_appservice.rules.model import MARKER_EVENT, JoinMode, Role
from communities_appservice.tasks import bounded


async def time_bot(app: App, owner: str, groups: list[str]) -> float:
    assert app.service is not None
    name = f"Bot {secrets.token_hex(3)}"
    began = time.perf_counter()
    await Structure(app.service).create_community(
        UserID(owner), name, "", JoinMode.APPROVAL, groups
    )
    return time.perf_counter() - began


async def time_plain_client(client: Client, svc: Service, owner: str, groups: list[str]) -> float:
    """The same rooms by a plain client: the requests the bot sends, without the bookkeeping."""
    name = f"Client {secrets.token_hex(3)}"
    admins = [owner]
    began = time.perf_counter()
    space_request = room_request(
        site(svc),
        name,
        invite=admins,
        space=True,
        power=new_power(site(svc), Role.SPACE, admins),
        state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": join_rule_content("knock"),
            },
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "shared"},
            },
        ],
    )
    space = await _create(client, space_request)
    await client.send_state_event(
        RoomID(space),
        EventType.find(MARKER_EVENT, EventType.Class.STATE),
        marker_content(space, Role.SPACE),  # type: ignore[arg-type]
    )

    async def child(title: str, role: Role, rule: str, order: str | None) -> None:
        request = room_request(
            site(svc),
            title,
            invite=admins,
            power=new_power(site(svc), role, admins),
            state=child_state(site(svc), space, role, rule),
        )
        room_id = await _create(client, request)
        if order is not None:
            content = child_content(svc.server_name, order=order, suggested=False)
            await client.send_state_event(
                RoomID(space),
                EventType.SPACE_CHILD,
                content,
                state_key=room_id,  # type: ignore[arg-type]
            )

    await child(f"{name} · Announcements", Role.ANNOUNCEMENTS, "restricted", "0")
    await bounded(
        child(g, Role.GROUP, "restricted", group_order(i + 2)) for i, g in enumerate(groups)
    )
    await child(f"{name} · Admins", Role.ADMINS, "invite", None)
    return time.perf_counter() - began


async def _create(client: Client, request: dict[str, Any]) -> str:
    result = await client.api.request("POST", "/_matrix/client/v3/createRoom", request)  # type: ignore[arg-type]
    return str(result["room_id"])


async def run(sizes: list[int], rounds: int, workdir: Path) -> None:
    registration = workdir / "registration.yaml"
    synapse = LocalSynapse(workdir / "synapse", server_name="localhost", registration=registration)
    config = generate_registration(write_config(workdir, synapse), registration)
    await synapse.start()
    app = App(config)
    await app.start()
    http = aiohttp.ClientSession()
    owner, _ = await synapse.register_user(f"owner-{secrets.token_hex(3)}", "pw-owner")
    plain, plain_token = await synapse.register_user(f"plain-{secrets.token_hex(3)}", "pw-p")
    client = Client(
        mxid=UserID(plain), base_url=synapse.base_url, token=plain_token, client_session=http
    )
    assert app.service is not None
    try:
        print(f"{'groups':>7} {'bot (s)':>9} {'client (s)':>11} {'ratio':>7}")
        for size in sizes:
            groups = [f"Group {i}" for i in range(size)]
            bots, plains = [], []
            for _ in range(rounds):  # alternating, so that neither side always runs warm
                bots.append(await time_bot(app, owner, groups))
                plains.append(await time_plain_client(client, app.service, owner, groups))
            bot, plain_time = statistics.median(bots), statistics.median(plains)
            print(f"{size:>7} {bot:>9.2f} {plain_time:>11.2f} {bot / plain_time:>7.2f}", flush=True)
    finally:
        await http.close()
        await app.stop()
        await synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", default="10,50", help="group counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs per size (median shown)")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mau").setLevel(logging.ERROR)
    sizes = [int(n) for n in args.groups.split(",")]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="create-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(sizes, args.rounds, workdir))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
