"""A throw-away Synapse homeserver on loopback, for the demo command and the integration tests.

This module owns one working directory and everything in it:

    homeserver.yaml         generated config (secrets in it are created once and then kept)
    log_config.yaml         Python logging config for Synapse (WARNING and above only)
    <server>.signing.key    the server's ed25519 signing key (created once)
    homeserver.db           sqlite3 database
    media_store/            uploaded media
    synapse.log             Synapse's log plus its stdout/stderr (previous run: synapse.log.1)

It starts Synapse as a subprocess (``python -m synapse.app.homeserver``), waits until the
client API answers, registers users through the shared-secret admin API, and stops it again.
Synapse only ever listens on 127.0.0.1. Federation is switched off, unless a federation port
is given: then the server is called ``127.0.0.1:PORT`` and serves federation there over TLS
(a self-signed certificate, ``tls.crt``/``tls.key``, made once), accepting its peers' own
self-signed certificates and reaching them on loopback, as Synapse's test setups do.

Manual use::

    python -m communities_appservice.dev.localhs WORKDIR [--port N] [--registration FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import random
import secrets
import signal
import socket
import string
import sys
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiohttp
import yaml

log = logging.getLogger("communities.localhs")

LOOPBACK = "127.0.0.1"
CONFIG_NAME = "homeserver.yaml"
LOG_CONFIG_NAME = "log_config.yaml"
LOG_NAME = "synapse.log"
DATABASE_NAME = "homeserver.db"
MEDIA_DIR_NAME = "media_store"
STOP_GRACE_SECONDS = 15.0
LOG_TAIL_LINES = 30
POLL_INTERVAL_SECONDS = 0.2

# The secrets kept across restarts of the same working directory.
_SECRET_KEYS = ("registration_shared_secret", "macaroon_secret_key", "form_secret")

# Experimental flags (checked against synapse/config/experimental.py of Synapse 1.163):
# MSC2409/MSC4203 to-device messages and MSC3202 transaction extensions for appservices.
# MSC3202 device masquerading (``?device_id=``) and MSC4190 have no homeserver-wide flag in
# this version: the former is always on, the latter is opted into per appservice with
# ``io.element.msc4190: true`` in the registration file.
EXPERIMENTAL_FEATURES: dict[str, Any] = {
    "msc2409_to_device_messages_enabled": True,
    "msc3202_transaction_extensions": True,
}

# Every rate limiter Synapse 1.163 reads through synapse/config/ratelimiting.py (dotted names
# are nested sections). rc_federation has another shape and is moot without federation.
RATE_LIMITERS = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
)
_RELAXED_LIMIT = {"per_second": 10000.0, "burst_count": 100000}


# Where the kernel draws the local ports of outgoing connections (Linux's default; macOS's
# starts higher). A listener's port drawn from there (as a bind to port 0 draws it) can be
# taken by a client socket (a database connection, a request) before the listener binds it.
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_LOW = 32768
_LOWEST_PORT = 10000
_draws = random.Random()
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and no outgoing connection takes.

    It is drawn below the kernel's ephemeral range and never handed out twice in a process,
    so a listener started on it a while later still finds it free.
    """
    high = _ephemeral_low() - 1
    if high - _LOWEST_PORT >= 1000:
        for _ in range(200):
            port = _draws.randint(_LOWEST_PORT, high)
            if port not in _handed_out and port_is_free(port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        drawn: int = sock.getsockname()[1]
    _handed_out.add(drawn)
    return drawn


def port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now (as Synapse does: connections of a
    previous listener that linger in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def relaxed_rate_limits() -> dict[str, Any]:
    """The ``rc_*`` sections, each allowing far more than any test or demo sends."""
    sections: dict[str, Any] = {}
    for name in RATE_LIMITERS:
        node = sections
        *parents, leaf = name.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = dict(_RELAXED_LIMIT)
    return sections


def new_signing_key_line() -> str:
    """One ed25519 signing key in Synapse's key file format: ``ed25519 <version> <seed>``.

    This is what signedjson's generate_signing_key + write_signing_keys produce: the key is
    its 32-byte seed, in unpadded standard base64.
    """
    alphabet = string.ascii_letters + string.digits
    version = "a_" + "".join(secrets.choice(alphabet) for _ in range(4))
    seed = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return f"ed25519 {version} {seed}\n"


def registration_mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """The HMAC-SHA1 that /_synapse/admin/v1/register expects (no user_type)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    for i, part in enumerate((nonce, user, password, "admin" if admin else "notadmin")):
        if i:
            mac.update(b"\x00")
        mac.update(part.encode("utf-8"))
    return mac.hexdigest()


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from path; {} when the file is absent or not a mapping."""
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def write_private(path: Path, text: str) -> None:
    """Write text to path readable by the owner only (it holds secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a text file, or a note that it has none."""
    if not path.exists():
        return f"({path} does not exist)"
    with path.open(encoding="utf-8", errors="replace") as handle:
        last = deque(handle, maxlen=lines)
    return "".join(last).rstrip() or f"({path} is empty)"


def listener_port(config: dict[str, Any]) -> int | None:
    """The port of the first listener in a homeserver config, if any."""
    listeners = config.get("listeners")
    if isinstance(listeners, list) and listeners and isinstance(listeners[0], dict):
        port = listeners[0].get("port")
        if isinstance(port, int):
            return port
    return None


def log_config(log_file: Path) -> dict[str, Any]:
    """Synapse's logging: one plain file, WARNING and above, no access log; the appservice
    scheduler at INFO too (when it holds transactions back and when it retries them)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                " - %(request)s - %(message)s",
            },
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(log_file),
                "encoding": "utf8",
            },
        },
        "loggers": {
            "synapse": {"level": "WARNING"},
            "synapse.appservice": {"level": "INFO"},
            "synapse.access": {"level": "WARNING"},
            "synapse.storage.SQL": {"level": "WARNING"},
            "twisted": {"level": "WARNING"},
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
    }


class LocalSynapse:
    """One Synapse process serving ``server_name`` from ``workdir`` on 127.0.0.1."""

    def __init__(
        self,
        workdir: Path,
        *,
        server_name: str = "localhost",
        port: int | None = None,
        registration: Path | None = None,
        python: str = sys.executable,
        federation_port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.federation_port = federation_port
        if federation_port is not None:
            server_name = f"{LOOPBACK}:{federation_port}"
        self._server_name = server_name
        self.registration = Path(registration).resolve() if registration else None
        self.python = python
        self.config_path = self.workdir / CONFIG_NAME
        self.log_config_path = self.workdir / LOG_CONFIG_NAME
        self.log_path = self.workdir / LOG_NAME
        self.signing_key_path = self.workdir / f"{server_name}.signing.key"
        previous = read_yaml(self.config_path)
        self._secrets = self._keep_or_create_secrets(previous)
        self.port = port if port is not None else self._pick_port(previous)
        self._process: asyncio.subprocess.Process | None = None

    # ---------------------------------------------------------------- properties

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def registration_shared_secret(self) -> str:
        return self._secrets["registration_shared_secret"]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        """The Synapse process's id while it runs (benchmarks read its CPU time)."""
        return self._process.pid if self.running and self._process else None

    # ---------------------------------------------------------------- config

    @staticmethod
    def _keep_or_create_secrets(previous: dict[str, Any]) -> dict[str, str]:
        kept = {}
        for key in _SECRET_KEYS:
            value = previous.get(key)
            kept[key] = value if isinstance(value, str) and value else secrets.token_urlsafe(32)
        return kept

    @staticmethod
    def _pick_port(previous: dict[str, Any]) -> int:
        """Reuse the port of an earlier run of this workdir when it is free, else a new one."""
        old = listener_port(previous)
        if old is not None and port_is_free(old):
            return old
        return free_loopback_port()

    def _check_same_server(self) -> None:
        previous = read_yaml(self.config_path).get("server_name")
        if previous is not None and previous != self._server_name:
            raise RuntimeError(
                f"{self.workdir} holds the data of homeserver {previous!r}, "
                f"not {self._server_name!r}; use another workdir"
            )

    def homeserver_config(self) -> dict[str, Any]:
        """The homeserver.yaml content (every key checked against Synapse 1.163's config)."""
        config: dict[str, Any] = {
            "server_name": self._server_name,
            "public_baseurl": self.base_url + "/",
            "serve_server_wellknown": False,
            "report_stats": False,
            "enable_metrics": False,
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": [LOOPBACK],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # "client" also mounts /_synapse/admin; "media" serves /_matrix/media.
                    "resources": [{"names": ["client", "media"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.workdir / DATABASE_NAME)},
            },
            "log_config": str(self.log_config_path),
            "media_store_path": str(self.workdir / MEDIA_DIR_NAME),
            "max_upload_size": "10M",
            "url_preview_enabled": False,
            "signing_key_path": str(self.signing_key_path),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "enable_registration": False,
            # Password hashing cost: the default (12) makes every register/login ~0.25 s.
            "bcrypt_rounds": 4,
            "presence": {"enabled": False},
            "default_room_version": "12",
            "experimental_features": dict(EXPERIMENTAL_FEATURES),
            **self._secrets,
            **relaxed_rate_limits(),
        }
        if self.registration is not None:
            config["app_service_config_files"] = [str(self.registration)]
        if self.federation_port is not None:
            config.update(self._federation_config(config["listeners"]))
        return config

    def _federation_config(self, listeners: list[dict[str, Any]]) -> dict[str, Any]:
        """Federation over TLS on 127.0.0.1:federation_port, with peers on loopback."""
        cert, key = self.workdir / "tls.crt", self.workdir / "tls.key"
        return {
            "listeners": [
                *listeners,
                {
                    "port": self.federation_port,
                    "bind_addresses": [LOOPBACK],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    # "federation" also serves the server's keys (/_matrix/key).
                    "resources": [{"names": ["federation"], "compress": False}],
                },
            ],
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "federation_verify_certificates": False,
            "federation_domain_whitelist": None,
            # Outgoing federation may reach loopback, blocked by default as a private range
            # (an IP-literal server name is checked against the block list alone).
            "ip_range_blacklist": [],
            "rc_federation": {
                "window_size": 1000,
                "sleep_limit": 10_000,
                "sleep_delay": 1,
                "reject_limit": 10_000,
                "concurrent": 1000,
            },
        }

    def _write_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1, made once (cryptography comes with
        Synapse)."""
        cert_path, key_path = self.workdir / "tls.crt", self.workdir / "tls.key"
        if cert_path.exists() and key_path.exists():
            return
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def write_config(self) -> Path:
        """Write homeserver.yaml, the log config and (once) the signing key; return the config.

        Idempotent: an existing workdir keeps its secrets, signing key and data.
        """
        self._check_same_server()
        if self.registration is not None and not self.registration.is_file():
            raise FileNotFoundError(f"appservice registration {self.registration} not found")
        (self.workdir / MEDIA_DIR_NAME).mkdir(exist_ok=True)
        if not self.signing_key_path.exists():
            write_private(self.signing_key_path, new_signing_key_line())
        if self.federation_port is not None:
            self._write_certificate()
        self.log_config_path.write_text(
            yaml.safe_dump(log_config(self.log_path), sort_keys=False), encoding="utf-8"
        )
        header = "# Generated by communities_appservice.dev.localhs; rewritten on every start.\n"
        body = yaml.safe_dump(self.homeserver_config(), sort_keys=False)
        write_private(self.config_path, header + body)
        return self.config_path

    # ---------------------------------------------------------------- process

    def _open_log(self) -> IO[bytes]:
        """Start a fresh synapse.log (keeping the previous run's as synapse.log.1)."""
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(LOG_NAME + ".1"))
        # Append mode: Synapse's own FileHandler appends to the same file.
        return self.log_path.open("ab")

    def _failure(self, reason: str) -> RuntimeError:
        return RuntimeError(
            f"Synapse {reason}. Last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    async def start(self, timeout: float = 90) -> None:
        """Write the config, spawn Synapse and wait until its client API answers."""
        if self.running:
            raise RuntimeError(f"Synapse in {self.workdir} is already running")
        config_path = self.write_config()
        if not port_is_free(self.port):
            raise RuntimeError(f"port {LOOPBACK}:{self.port} is already in use")
        began = time.monotonic()
        log.info(
            "starting Synapse %s on %s (workdir %s)", self._server_name, self.base_url, self.workdir
        )
        with self._open_log() as log_file:  # the child keeps its own copy of the descriptor
            self._process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(config_path),
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                # Own session: a Ctrl-C at the terminal reaches only us, and we stop Synapse.
                start_new_session=True,
            )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise
        log.info("Synapse ready at %s after %.1f s", self.base_url, time.monotonic() - began)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = self.base_url + "/_matrix/client/versions"
        probe_timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=probe_timeout) as session:
            while True:
                process = self._process
                if process is None or process.returncode is not None:
                    code = None if process is None else process.returncode
                    raise self._failure(f"exited during start-up (exit code {code})")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                if time.monotonic() >= deadline:
                    raise self._failure(f"did not answer {url} within {timeout:g} s")
                await asyncio.sleep(POLL_INTERVAL_SECONDS)

    async def stop(self) -> None:
        """SIGTERM, up to 15 s grace, then SIGKILL. A no-op when not running."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            await self._terminate(process)

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("Synapse did not stop within %.0f s; killing it", STOP_GRACE_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        log.info("Synapse stopped (exit code %s)", process.returncode)

    async def __aenter__(self) -> LocalSynapse:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------- users

    async def register_user(
        self, localpart: str, password: str, *, admin: bool = False
    ) -> tuple[str, str]:
        """Create a user with the shared secret; return (user_id, access_token).

        If the user exists already, log in with the password instead.
        """
        url = self.base_url + "/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                nonce = str((await _json_or_raise(response, "register nonce"))["nonce"])
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": registration_mac(
                    self.registration_shared_secret, nonce, localpart, password, admin
                ),
            }
            async with session.post(url, json=body) as response:
                result = await _json(response)
                if response.status == 400 and result.get("errcode") == "M_USER_IN_USE":
                    log.info("user %s exists already; logging in", localpart)
                    return await self._login(session, localpart, password)
                _raise_unless_ok(response, result, "register")
        log.info("registered %s%s", result["user_id"], " (admin)" if admin else "")
        return str(result["user_id"]), str(result["access_token"])

    async def login(self, localpart: str, password: str) -> tuple[str, str]:
        """Password login; return (user_id, access_token)."""
        async with aiohttp.ClientSession() as session:
            return await self._login(session, localpart, password)

    async def _login(
        self, session: aiohttp.ClientSession, localpart: str, password: str
    ) -> tuple[str, str]:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        }
        async with session.post(self.base_url + "/_matrix/client/v3/login", json=body) as response:
            result = await _json_or_raise(response, "login")
        return str(result["user_id"]), str(result["access_token"])


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        loaded = await response.json(content_type=None)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _raise_unless_ok(response: aiohttp.ClientResponse, result: dict[str, Any], what: str) -> None:
    if response.status != 200:
        # Only the error code and message: a response body never carries our secret, but
        # keep it short anyway.
        raise RuntimeError(
            f"{what} failed: HTTP {response.status} {result.get('errcode')}: {result.get('error')}"
        )


async def _json_or_raise(response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    result = await _json(response)
    _raise_unless_ok(response, result, what)
    return result


# -------------------------------------------------------------------- CLI


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m communities_appservice.dev.localhs",
        description="Run a local loopback-only Synapse until Ctrl-C.",
    )
    parser.add_argument("workdir", type=Path, help="directory for config, keys, database, log")
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--registration", type=Path, default=None, help="appservice registration file to load"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    synapse = LocalSynapse(
        args.workdir,
        server_name=args.server_name,
        port=args.port,
        registration=args.registration,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with synapse:
        print(f"Synapse for {synapse.server_name} is at {synapse.base_url}", flush=True)
        print(f"config: {synapse.config_path}  log: {synapse.log_path}", flush=True)
        print("Ctrl-C stops it.", flush=True)
        await stopping.wait()
    print("stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
