"""The embedded default: a local Synapse plus this appservice, ready for any Matrix client.

``python -m communities_appservice.dev.demo [--dir .local/demo]`` owns one state directory:

    config.yaml         the appservice's config, written from the defaults on the first run
    registration.yaml   written by ``config.generate_registration`` (tokens kept across runs)
    communities.db      the appservice's SQLite database
    demo-password       the password of the demo user ``@demo:localhost`` (owner-only file)
    synapse/            the homeserver's working directory (see ``localhs``)

A second run reuses all of it, so the homeserver's rooms and users survive; only the ports
(and the addresses made of them) are chosen again when the old ones are taken. Synapse and the
appservice run in this process's event loop until SIGINT or SIGTERM.

``--check`` is the smoke test: it brings everything up, logs in as the demo user, opens a DM
with the bot, sends ``<prefix> help``, waits for the bot's reply, prints ``demo ok`` and
exits 0 (1 on any failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import aiohttp
import yaml

from ..__main__ import setup_logging
from ..app import App
from ..config import (
    AppserviceConfig,
    CommunitiesConfig,
    Config,
    EncryptionConfig,
    HomeserverConfig,
    generate_registration,
)
from ..errors import ConfigError
from .localhs import LOOPBACK, LocalSynapse, free_loopback_port, port_is_free, write_private

log = logging.getLogger("communities.demo")

SERVER_NAME = "localhost"
DEMO_USER = "demo"
DEFAULT_DIR = Path(".local/demo")
CHECK_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.25
STOP_IDLE_SECONDS = 5.0
CONFIG_HEADER = (
    "# Written by `python -m communities_appservice.dev.demo` from the defaults; reused on the\n"
    "# next run. The demo sets the homeserver and appservice addresses and ports itself.\n"
)
# The keys the demo sets on every run (where both servers listen); the rest of an earlier
# run's config is kept as it is.
PLACEMENT = {"homeserver": ("address", "domain"), "appservice": ("address", "hostname", "port")}
T = TypeVar("T")


class DemoError(Exception):
    """Something the person running the demo can fix; printed as one line."""


# --- the state directory ------------------------------------------------------------------


class StateDir:
    """The paths inside the demo's state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.yaml"
        self.registration = root / "registration.yaml"
        self.database = root / "communities.db"
        self.password = root / "demo-password"
        self.synapse = root / "synapse"


def default_config(state: StateDir, synapse_port: int, appservice_port: int) -> dict[str, Any]:
    """The config file's content: the package's defaults, placed on loopback for the demo."""
    homeserver = dataclasses.asdict(HomeserverConfig())
    homeserver.update(address=f"http://{LOOPBACK}:{synapse_port}", domain=SERVER_NAME)
    appservice = dataclasses.asdict(AppserviceConfig())
    appservice.update(
        address=f"http://{LOOPBACK}:{appservice_port}",
        hostname=LOOPBACK,
        port=appservice_port,
        database=f"sqlite:{state.database}",
    )
    return {
        "homeserver": homeserver,
        "appservice": appservice,
        "encryption": dataclasses.asdict(EncryptionConfig()),
        "communities": dataclasses.asdict(CommunitiesConfig()),
        "permissions": {"*": "member", SERVER_NAME: "creator"},
    }


def _read_config(path: Path) -> dict[str, Any]:
    """An earlier run's config as plain YAML, with its two server sections as mappings."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise DemoError(f"{path} is not valid YAML; fix it or delete it to start over") from None
    if not isinstance(loaded, dict):
        raise DemoError(f"{path} is not a mapping; fix it or delete it to start over")
    for section in PLACEMENT:
        if not isinstance(loaded.setdefault(section, {}), dict):
            raise DemoError(f"section {section!r} of {path} is not a mapping")
    return loaded


def _place(raw: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Set the keys the demo owns in an earlier run's config; whether any changed."""
    changed = False
    for section, names in PLACEMENT.items():
        for name in names:
            if raw[section].get(name) != wanted[section][name]:
                raw[section][name] = wanted[section][name]
                changed = True
    return changed


def port_of(address: Any) -> int | None:
    try:
        return urlparse(str(address)).port
    except ValueError:
        return None


def choose_port(
    asked: int | None,
    previous: int | None,
    taken: set[int],
    what: str,
) -> int:
    """The asked port (it must be free), else the previous run's when free, else a free one."""
    if asked is not None:
        if not 1 <= asked <= 65535:
            raise DemoError(f"--port-{what} {asked} is not a TCP port")
        if asked in taken or not port_is_free(asked):
            raise DemoError(f"{LOOPBACK}:{asked} is in use; choose another --port-{what}")
        return asked
    if previous is not None and previous not in taken and port_is_free(previous):
        return previous
    port = free_loopback_port()
    while port in taken:
        port = free_loopback_port()
    return port


def prepare(
    state: StateDir, synapse_port: int | None, appservice_port: int | None
) -> tuple[Config, bool]:
    """Create or reuse the state directory's config and registration.

    Returns the config and whether it was reused from an earlier run.
    """
    state.root.mkdir(parents=True, exist_ok=True)
    raw = _read_config(state.config) if state.config.exists() else None
    old = raw or {"homeserver": {}, "appservice": {}}
    # Both ports are checked the way LocalSynapse.start checks Synapse's before spawning it.
    hs_port = choose_port(synapse_port, port_of(old["homeserver"].get("address")), set(), "synapse")
    as_port = choose_port(
        appservice_port, _int_or_none(old["appservice"].get("port")), {hs_port}, "appservice"
    )
    wanted = default_config(state, hs_port, as_port)
    if raw is None:
        _write_config(state.config, wanted)
    elif _place(raw, wanted):
        _write_config(state.config, raw)
    # Idempotent: tokens already in the config and the registration's sender are kept.
    return generate_registration(state.config, state.registration), raw is not None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _write_config(path: Path, raw: dict[str, Any]) -> None:
    # Owner-only: once -g has run, the file holds the appservice's tokens.
    write_private(path, CONFIG_HEADER + yaml.safe_dump(raw, sort_keys=False))


def demo_password(state: StateDir) -> str:
    """The demo user's password: created once, then read back on every run."""
    if state.password.exists():
        password = state.password.read_text(encoding="utf-8").strip()
        if password:
            return password
    password = secrets.token_urlsafe(12)
    write_private(state.password, password + "\n")
    return password


# --- talking to the homeserver as the demo user -------------------------------------------


class ClientAPI:
    """The handful of client-server calls `--check` makes, as one user."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.base_url}/_matrix/client/v3{path}"
        async with self.session.request(
            method, url, json=body, params=query, headers=self.headers
        ) as response:
            result = await response.json(content_type=None)
            if response.status != 200 or not isinstance(result, dict):
                errcode = result.get("errcode") if isinstance(result, dict) else None
                raise DemoError(
                    f"{method} {path.split('?')[0]} failed: HTTP {response.status} {errcode}"
                )
            return result

    async def create_dm(self, user_id: str) -> str:
        result = await self.call(
            "POST",
            "/createRoom",
            {
                "invite": [user_id],
                "is_direct": True,
                "preset": "trusted_private_chat",
                "name": "Communities demo check",
            },
        )
        return str(result["room_id"])

    async def membership(self, room_id: str, user_id: str) -> str | None:
        path = f"/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
        try:
            content = await self.call("GET", path)
        except DemoError:
            return None
        return str(content.get("membership"))

    async def send_text(self, room_id: str, text: str) -> str:
        txn = secrets.token_hex(8)
        path = f"/rooms/{quote(room_id)}/send/m.room.message/{txn}"
        result = await self.call("PUT", path, {"msgtype": "m.text", "body": text})
        return str(result["event_id"])

    async def reply_to(self, room_id: str, sender: str, event_id: str) -> dict[str, Any] | None:
        """The content of `sender`'s reply to `event_id` among the room's latest events."""
        result = await self.call(
            "GET", f"/rooms/{quote(room_id)}/messages", query={"dir": "b", "limit": "30"}
        )
        for event in result.get("chunk", []):
            content = event.get("content") or {}
            relates = content.get("m.relates_to") or {}
            replied = (relates.get("m.in_reply_to") or {}).get("event_id")
            if event.get("sender") == sender and replied == event_id:
                return dict(content)
        return None

    async def leave(self, room_id: str) -> None:
        await self.call("POST", f"/rooms/{quote(room_id)}/leave", {})


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float) -> T:
    """Poll `probe` until it returns something truthy; DemoError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DemoError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


# --- the demo -----------------------------------------------------------------------------


class Demo:
    """Synapse and the appservice in one event loop, started and stopped in order."""

    def __init__(self, state: StateDir, config: Config) -> None:
        self.state = state
        self.config = config
        self.synapse = LocalSynapse(
            state.synapse,
            server_name=SERVER_NAME,
            port=port_of(config.homeserver.address),
            registration=state.registration,
        )
        self.app: App | None = None
        self.password = demo_password(state)
        self.user_id = f"@{DEMO_USER}:{SERVER_NAME}"

    async def start(self) -> float:
        """Start Synapse, then the appservice, then make the demo user; return the seconds."""
        began = time.monotonic()
        await self.synapse.start()
        self.app = App(self.config)
        await self.app.start()
        try:
            self.user_id, _token = await self.synapse.register_user(DEMO_USER, self.password)
        except RuntimeError as e:
            if not str(e).startswith("login failed"):
                raise
            # The user exists (an earlier run) but the password file no longer matches it.
            raise DemoError(
                f"cannot log in as {self.user_id} with the password in {self.state.password}; "
                f"delete {self.state.root} to start the demo over"
            ) from None
        return time.monotonic() - began

    async def stop(self) -> None:
        if self.app is not None:
            # Let events already accepted finish; whatever does not stays in the inbox.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.app.router.wait_idle(), STOP_IDLE_SECONDS)
            try:
                await self.app.stop()
            except Exception:
                log.exception("the appservice did not stop cleanly")
            self.app = None
        await self.synapse.stop()

    def banner(self, seconds: float) -> str:
        prefix = self.config.communities.command_prefix
        bot = self.config.bot_mxid
        rule = "=" * 72
        encryption_note = (
            []
            if self.config.encryption.enabled
            else ["  (encryption.enabled is false in the demo config: keep that DM unencrypted.)"]
        )
        return "\n".join(
            [
                rule,
                f"  Communities demo is up (in {seconds:.1f} s).",
                "",
                f"  Homeserver URL:  {self.synapse.base_url}",
                "      In Element Web, Cinny or FluffyChat choose a custom homeserver",
                '      ("Edit" next to the server name) and enter this URL.',
                f"  User:            {self.user_id}",
                f"  Password:        {self.password}",
                f"  Bot:             {bot}",
                "",
                f"  Start a DM with the bot and type `{prefix} help`.",
                *encryption_note,
                "",
                f"  State: {self.state.root}  (delete it to start over)",
                f"  Synapse log: {self.synapse.log_path}",
                "  Ctrl-C stops the demo.",
                rule,
            ]
        )

    async def check(self) -> str:
        """Log in as the demo user, ask the bot for help in a DM; return the reply's body."""
        bot = self.config.bot_mxid
        prefix = self.config.communities.command_prefix
        _, token = await self.synapse.login(DEMO_USER, self.password)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            client = ClientAPI(session, self.synapse.base_url, token)
            room_id = await client.create_dm(bot)
            log.info("check: created DM %s with %s", room_id, bot)

            async def bot_joined() -> bool:
                return await client.membership(room_id, bot) == "join"

            await eventually(bot_joined, f"{bot} to join the DM", CHECK_TIMEOUT_SECONDS)
            event_id = await client.send_text(room_id, f"{prefix} help")
            log.info("check: sent %s help as %s", prefix, event_id)

            async def reply() -> dict[str, Any] | None:
                return await client.reply_to(room_id, bot, event_id)

            content = await eventually(reply, "the bot's reply", CHECK_TIMEOUT_SECONDS)
            await client.leave(room_id)
            with contextlib.suppress(aiohttp.ClientError, DemoError):
                await client.call("POST", "/logout", {})
        return str(content.get("body", ""))


async def serve(state: StateDir, config: Config, check: bool) -> int:
    """Run the demo until a signal (or, with `check`, until the smoke test is done)."""
    try:
        demo = Demo(state, config)
    except DemoError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    body = asyncio.create_task(_body(demo, check))

    def interrupt() -> None:
        # Only the first signal counts: the shutdown below must not be cut short.
        if not body.done():
            log.info("stopping (signal received)")
            body.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt)
    try:
        return await body
    except asyncio.CancelledError:
        return 1 if check else 0
    # LocalSynapse's start-up failures are RuntimeErrors that carry the tail of its log.
    except (DemoError, RuntimeError, aiohttp.ClientError, OSError) as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    finally:
        await demo.stop()
        log.info("demo stopped")
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _body(demo: Demo, check: bool) -> int:
    seconds = await demo.start()
    print(demo.banner(seconds), flush=True)
    if not check:
        await asyncio.Event().wait()  # until a signal cancels us
        return 0
    reply = await demo.check()
    first_line = reply.splitlines()[0] if reply else "(empty reply)"
    print(f"The bot replied: {first_line}", flush=True)
    print("demo ok", flush=True)
    return 0


# --- command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m communities_appservice.dev.demo",
        description="Run a local Synapse with the Communities appservice, for trying it out "
        "with any Matrix client.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"state directory, reused on the next run (default: {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--port-synapse",
        type=int,
        default=None,
        help="Synapse's port on 127.0.0.1 (default: the last one, or a free one)",
    )
    parser.add_argument(
        "--port-appservice",
        type=int,
        default=None,
        help="the appservice's port on 127.0.0.1 (default: the last one, or a free one)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="smoke test: start, ask the bot for help as the demo user, "
        "print 'demo ok' and stop (exit code 0 on success)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("synapse") is None:
        print(
            "demo failed: the demo runs a local Synapse, which is not installed in this Python "
            "environment; install the package with its test extra (pip install '.[test]') or "
            "matrix-synapse",
            file=sys.stderr,
        )
        return 2
    state = StateDir(args.dir.resolve())
    try:
        config, reused = prepare(state, args.port_synapse, args.port_appservice)
    except (ConfigError, DemoError) as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 2
    setup_logging(config)
    log.info("%s the demo state in %s", "reusing" if reused else "created", state.root)
    return asyncio.run(serve(state, config, args.check))


if __name__ == "__main__":
    sys.exit(main())
