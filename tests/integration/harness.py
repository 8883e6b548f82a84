"""The integration stack: a real Synapse, the real appservice, real clients acting as users.

One Synapse per test session (started by `LocalSynapse` on 127.0.0.1 with the project's
generated registration); the appservice runs in the test's event loop on SQLite, or on a fresh
PostgreSQL database when `COMMUNITIES_TEST_DB=postgres`. Tests isolate by unique names.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from mautrix.client import Client
from mautrix.types import EventType, PaginationDirection, RoomID, UserID

from communities_appservice.app import App
from communities_appservice.config import Config, generate_registration, load
from communities_appservice.dev.localhs import LocalSynapse, free_loopback_port

T = TypeVar("T")
SERVER = "localhost"
PROBE_EVERY = 5.0  # seconds between delivery probes while none is handled


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Poll until `probe` returns something truthy; fail naming `what` after `timeout`.
    Tests that must act at a precise moment (a kill mid-operation) poll every few ms."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


class User:
    """A person with a real Matrix client on the test Synapse."""

    def __init__(self, stack: Stack, user_id: str, token: str) -> None:
        self.stack = stack
        self.user_id = user_id
        self.client = Client(
            mxid=UserID(user_id),
            base_url=stack.synapse.base_url,
            token=token,
            client_session=stack.http,
        )

    async def dm_bot(self) -> str:
        """An unencrypted DM with the bot, once the bot has joined it."""
        room_id = await self.client.create_room(invitees=[UserID(self.stack.bot)], is_direct=True)
        await self.stack.wait_membership(room_id, self.stack.bot, "join")
        return str(room_id)

    async def send(self, room_id: str, text: str, **extra: Any) -> str:
        content = {"msgtype": "m.text", "body": text, **extra}
        event_id = await self.client.send_message_event(
            RoomID(room_id),
            EventType.ROOM_MESSAGE,
            content,  # type: ignore[arg-type]
        )
        return str(event_id)

    async def command(self, room_id: str, text: str, **extra: Any) -> dict[str, Any]:
        """Send `!community TEXT` and return the content of the bot's reply to it."""
        event_id = await self.send(room_id, f"!community {text}", **extra)
        return await self.stack.reply_to(self, room_id, event_id)

    async def join(self, room_id: str) -> None:
        await self.client.join_room_by_id(RoomID(room_id))

    async def state(self, room_id: str, event_type: str, key: str = "") -> dict[str, Any]:
        return await self.stack.admin_state(room_id, event_type, key)


class FailingProxy:
    """A loopback proxy in front of Synapse for the service's own requests: it passes them
    on, except that while `failing` matches a request (method, path) it answers 502 Bad
    Gateway itself, as a reverse proxy in front of a struggling homeserver would."""

    def __init__(self, upstream: str, http: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.http = http
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.failing: Callable[[str, str], bool] = lambda method, path: False
        self.refused: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.failing(request.method, request.path):
            self.refused.append((request.method, request.path))
            return web.json_response({"errcode": "M_UNKNOWN", "error": "Bad Gateway"}, status=502)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self.http.request(
            request.method,
            f"{self.upstream}{request.rel_url}",
            data=await request.read(),
            headers=headers,
        ) as upstream:
            body = await upstream.read()
            kept = ("content-type",)
            return web.Response(
                status=upstream.status,
                body=body,
                headers={k: v for k, v in upstream.headers.items() if k.lower() in kept},
            )


class ReadyBalancer:
    """A load balancer in front of an active/standby pair, as operators run one: each
    request goes to the first backend whose `/_matrix/mau/ready` answers 200; with none
    ready it answers 503 itself."""

    def __init__(self, port: int, backends: list[str], http: aiohttp.ClientSession) -> None:
        self.port = port
        self.backends = backends
        self.http = http
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ready(self) -> str | None:
        for backend in self.backends:
            try:
                async with self.http.get(f"{backend}/_matrix/mau/ready") as response:
                    if response.status == 200:
                        return backend
            except aiohttp.ClientError:
                continue
        return None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        backend = await self._ready()
        if backend is None:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "No backend"}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        try:
            async with self.http.request(
                request.method, f"{backend}{request.rel_url}", data=await request.read(),
                headers=headers,
            ) as upstream:  # fmt: skip
                body = await upstream.read()
                kept = {k: v for k, v in upstream.headers.items() if k.lower() == "content-type"}
                return web.Response(status=upstream.status, body=body, headers=kept)
        except aiohttp.ClientError:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "Backend gone"}, status=502)


class Stack:
    """One Synapse and the appservice registered with it; with `federation_port`, a Synapse
    called 127.0.0.1:PORT that federates (over TLS on that port) with other such Synapses."""

    def __init__(self, workdir: Path, database: str, federation_port: int | None = None) -> None:
        self.workdir = workdir
        self.database = database
        self.config_path = workdir / "config.yaml"
        self.registration_path = workdir / "registration.yaml"
        self.as_port = free_loopback_port()
        self.metrics_port = free_loopback_port()
        self.synapse = LocalSynapse(
            workdir / "synapse",
            server_name=SERVER,
            registration=self.registration_path,
            federation_port=federation_port,
        )
        self.http = aiohttp.ClientSession()
        self.app: App | None = None
        self.config: Config | None = None
        self.admin: User | None = None
        self.probe_room: str | None = None
        self.homeserver_address: str | None = None  # where the service reaches Synapse

    @property
    def bot(self) -> str:
        return f"@communities:{self.synapse.server_name}"

    def write_config(
        self,
        permissions: dict[str, str] | None = None,
        encryption: dict[str, Any] | None = None,
        **communities: Any,
    ) -> Config:
        import yaml

        config_text = Path(__file__).with_name("config.test.yaml").read_text()
        raw = yaml.safe_load(config_text)
        raw["homeserver"]["address"] = self.homeserver_address or self.synapse.base_url
        raw["homeserver"]["domain"] = self.synapse.server_name
        raw["appservice"]["address"] = f"http://127.0.0.1:{self.as_port}"
        raw["appservice"]["port"] = self.as_port
        raw["appservice"]["database"] = self.database
        raw["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{self.metrics_port}"}
        if self.config is not None:  # keep the tokens the homeserver knows
            raw["appservice"]["as_token"] = self.config.appservice.as_token
            raw["appservice"]["hs_token"] = self.config.appservice.hs_token
            raw["encryption"]["pickle_key"] = self.config.encryption.pickle_key
        raw["communities"].update(communities)
        raw["permissions"] = {"*": "member", self.synapse.server_name: "creator"}
        if permissions is not None:
            raw["permissions"] = permissions
        raw["encryption"].update(encryption or {})
        self.config_path.write_text(yaml.safe_dump(raw))
        if self.config is None:
            self.config = generate_registration(self.config_path, self.registration_path)
        else:
            self.config = load(self.config_path)
        return self.config

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        await self.synapse.start()
        user_id, token = await self.synapse.register_user("operator", "operator-pw", admin=True)
        self.admin = User(self, user_id, token)
        await self.start_app()

    async def start_app(
        self,
        permissions: dict[str, str] | None = None,
        encryption: dict[str, Any] | None = None,
        **communities: Any,
    ) -> None:
        """(Re)start the appservice; the arguments change the config from the suite's own."""
        self.write_config(permissions, encryption, **communities)
        assert self.config is not None
        self.app = App(self.config)
        await self.app.start()
        await self.await_delivery()

    async def await_delivery(self) -> None:
        """Wait until the homeserver delivers transactions to the (re)started service again.

        A transaction that failed while the service restarted leaves Synapse's view of the
        appservice "down" until its recoverer succeeds, and in that window Synapse drops
        to-device messages (room keys!) meant for the bot. So after every start the operator
        sends a probe into a room with the bot and waits until the service has handled one.

        Synapse can also keep an event back for good: one that arrives just as its recoverer
        finishes is queued for a recoverer that no longer runs (it goes out only after the
        next failure). So while no probe is handled, another one follows every few seconds,
        each after a ping that makes a backed-off recoverer retry at once.
        """
        assert self.admin is not None and self.app is not None
        if self.probe_room is None:
            room = await self.admin.client.create_room(invitees=[UserID(self.bot)])
            await self.wait_membership(str(room), self.bot, "join")
            self.probe_room = str(room)
        app, probe_room = self.app, self.probe_room
        assert app.gateway is not None
        probes: list[str] = []
        next_probe = 0.0

        async def handled() -> bool:
            nonlocal next_probe
            if time.monotonic() >= next_probe:
                if probes:
                    await app.gateway.ping(app.config.appservice.id)
                probes.append(await self.admin.send(probe_room, "probe"))
                next_probe = time.monotonic() + PROBE_EVERY
            for event_id in probes:
                query = "SELECT 1 FROM handled_event WHERE event_id=$1"
                if await app.db.fetchval(query, event_id) is not None:
                    return True
            return False

        await eventually(handled, "the homeserver to deliver to the restarted service", 90)

    async def stop_app(self) -> None:
        if self.app is not None:
            await self.app.router.wait_idle()
            await self.app.stop()
            self.app = None

    async def restart_app(
        self,
        permissions: dict[str, str] | None = None,
        encryption: dict[str, Any] | None = None,
        **communities: Any,
    ) -> None:
        await self.stop_app()
        await self.start_app(permissions, encryption, **communities)

    async def stop(self) -> None:
        await self.stop_app()
        await self.synapse.stop()
        await self.http.close()

    async def user(self, prefix: str = "user") -> User:
        localpart = f"{prefix}-{secrets.token_hex(4)}"
        user_id, token = await self.synapse.register_user(localpart, "pw-" + localpart)
        return User(self, user_id, token)

    # --- reading the homeserver as its admin sees it ------------------------------------

    async def admin_state(self, room_id: str, event_type: str, key: str = "") -> dict[str, Any]:
        assert self.admin is not None
        state = await self.room_state(room_id)
        for event in state:
            if event["type"] == event_type and event.get("state_key") == key:
                return dict(event["content"])
        return {}

    async def synapse_admin(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A call to Synapse's admin API as the operator (a server admin)."""
        assert self.admin is not None
        url = f"{self.synapse.base_url}/_synapse/admin/{path}"
        headers = {"Authorization": f"Bearer {self.admin.client.api.token}"}
        async with self.http.request(method, url, json=body, headers=headers) as response:
            result = await response.json()
            assert response.status == 200, (path, result)
        return dict(result)

    async def bot_notices(self, user: User, room_id: str, limit: int = 50) -> list[str]:
        """The bodies of the bot's latest messages in a room, oldest first."""
        response = await user.client.get_messages(
            RoomID(room_id), PaginationDirection.BACKWARD, limit=limit
        )
        bodies = [
            str(event.content.serialize().get("body"))
            for event in response.events
            if event.sender == self.bot and event.type == EventType.ROOM_MESSAGE
        ]
        return list(reversed(bodies))

    async def spawn_app(
        self, config_path: Path | None = None, port: int | None = None
    ) -> asyncio.subprocess.Process:
        """The appservice as a process of its own (same config, database and port, unless
        given another config listening on `port`), so that a test can kill it with SIGKILL;
        the in-process service is stopped first. Returns once it is ready."""
        await self.stop_app()
        with (self.workdir / "appservice-process.log").open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "communities_appservice",
                "-c",
                str(config_path or self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port or self.as_port}/_matrix/mau/ready"

        async def healthy() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"the appservice process exited ({process.returncode})")
            try:
                async with self.http.get(url) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(healthy, "the appservice process to start", timeout=60)
        return process

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        """Every current state event of a room, through Synapse's admin API."""
        assert self.admin is not None
        url = f"{self.synapse.base_url}/_synapse/admin/v1/rooms/{room_id}/state"
        headers = {"Authorization": f"Bearer {self.admin.client.api.token}"}
        async with self.http.get(url, headers=headers) as response:
            body = await response.json()
            assert response.status == 200, body
        return list(body["state"])

    async def membership(self, room_id: str, user_id: str) -> str | None:
        content = await self.admin_state(room_id, "m.room.member", user_id)
        return content.get("membership") if content else None

    async def wait_membership(self, room_id: str, user_id: str, membership: str) -> None:
        async def probe() -> bool:
            return await self.membership(room_id, user_id) == membership

        await eventually(probe, f"{user_id} to be {membership} in {room_id}")

    async def wait_member(self, space_id: str, user_id: str) -> None:
        """Until the service has recorded `user_id` as a member of the community (its space
        worker does, after the join; commands sent from a DM look the community up there)."""

        async def probe() -> bool:
            assert self.app is not None
            return await self.app.tables.members.is_member(RoomID(space_id), UserID(user_id))

        await eventually(probe, f"{user_id} to be recorded as a member of {space_id}")

    async def reply_to(self, user: User, room_id: str, event_id: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            response = await user.client.get_messages(
                RoomID(room_id), PaginationDirection.BACKWARD, limit=30
            )
            for event in response.events:
                content = event.content.serialize()
                relates = content.get("m.relates_to") or {}
                if (
                    event.sender == self.bot
                    and (relates.get("m.in_reply_to") or {}).get("event_id") == event_id
                ):
                    return dict(content)
            return None

        return await eventually(probe, f"the bot's reply to {event_id}")

    async def idle(self) -> None:
        """Wait until the appservice has handled everything the homeserver had for it: a
        probe sent now is handled (the homeserver delivers an appservice's transactions in
        order, so everything before it has arrived), then every room's worker is done."""
        assert self.app is not None
        await self.await_delivery()
        await self.app.router.wait_idle()
