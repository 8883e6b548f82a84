"""The operator's configuration: YAML (and environment overrides) into frozen dataclasses.

Every wrong value stops start-up with one `ConfigError` line naming the key. Environment
variables `COMMUNITIES_SECTION__KEY=value` override the file (the value is read as YAML, so
`COMMUNITIES_COMMUNITIES__MAX_ADMINS=5` is an int); the two sections whose keys are not
names, `permissions` and `logging`, are replaced whole by `COMMUNITIES_PERMISSIONS` and
`COMMUNITIES_LOGGING` (a YAML or JSON mapping). `generate_registration` writes what the
homeserver needs and puts fresh tokens back into the config file, keeping its comments.
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml

from .errors import ConfigError
from .language import LANGUAGES
from .rules.model import JoinMode, Permission

ENV_PREFIX = "COMMUNITIES_"
GENERATE = "generate"
_LOCALPART = re.compile(r"^[a-z0-9._=\-/]+$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


def _url(key: str, value: str) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(key, f"{value!r} is not an http(s) URL")


def _server_name(key: str, value: str) -> None:
    if not _SERVER_NAME.fullmatch(value):
        raise ConfigError(key, f"{value!r} is not a server name (like example.org)")


def _localpart(key: str, value: str) -> None:
    if not _LOCALPART.fullmatch(value):
        raise ConfigError(key, f"{value!r} is not a valid user localpart (a-z, 0-9, ._=-/)")


def _database(key: str, value: str) -> None:
    scheme = value.split(":", 1)[0]
    if scheme not in ("sqlite", "sqlite3", "postgres", "postgresql") or ":" not in value:
        raise ConfigError(key, f"{value!r} is not sqlite:PATH or postgres://USER@HOST/DB")


def _positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(key, f"must be at least 1, not {value}")


def _port(key: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(key, f"{value} is not a TCP port")


def _one_of(*choices: str) -> Callable[[str, str], None]:
    def check(key: str, value: str) -> None:
        if value not in choices:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")

    return check


def _prefix(key: str, value: str) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise ConfigError(key, f"{value!r} must be one word, like !community")


def _timezone(key: str, value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"{value!r} is not a known time zone") from None


def _host_port(value: str) -> tuple[str, int] | None:
    """`host:port` (an IPv6 host in brackets) into its parts; None when it is not that."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host.removeprefix("[").removesuffix("]"), int(port)


def _listen(key: str, value: str) -> None:
    if _host_port(value) is None:
        raise ConfigError(key, f"{value!r} is not host:port (like 127.0.0.1:8001)")


def _check(fn: Callable[[str, Any], None]) -> Any:
    return {"check": fn}


@dataclass(frozen=True)
class HomeserverConfig:
    address: str = field(default="http://127.0.0.1:8008", metadata=_check(_url))
    domain: str = field(default="example.org", metadata=_check(_server_name))


@dataclass(frozen=True)
class AppserviceConfig:
    address: str = field(default="http://127.0.0.1:29333", metadata=_check(_url))
    hostname: str = "127.0.0.1"
    port: int = field(default=29333, metadata=_check(_port))
    database: str = field(default="sqlite:communities.db", metadata=_check(_database))
    id: str = field(default="communities", metadata=_check(_localpart))
    bot_username: str = field(default="communities", metadata=_check(_localpart))
    bot_displayname: str = "Communities"
    as_token: str = GENERATE
    hs_token: str = GENERATE
    # The largest transaction the homeserver may push, in bytes: a full Synapse transaction
    # (100 events of up to 64 KiB, to-device messages and device lists) fits with room.
    max_body_bytes: int = field(default=32 * 1024 * 1024, metadata=_check(_positive))
    # An active/standby pair on one PostgreSQL database (docs/operators.md).
    high_availability: bool = False


@dataclass(frozen=True)
class EncryptionConfig:
    enabled: bool = True
    appservice: bool = True
    pickle_key: str = GENERATE
    share_announcement_history: bool = True


@dataclass(frozen=True)
class CommunitiesConfig:
    command_prefix: str = field(default="!community", metadata=_check(_prefix))
    room_version: str = field(default="12", metadata=_check(_one_of("10", "11", "12")))
    max_admins: int = field(default=20, metadata=_check(_positive))
    max_groups: int = field(default=100, metadata=_check(_positive))
    default_join_mode: str = field(
        default="approval", metadata=_check(_one_of(*(m.value for m in JoinMode)))
    )
    announcement_replies: str = field(default="none", metadata=_check(_one_of("none", "threads")))
    leave_space_leaves_groups: bool = True
    group_suggestions: bool = True
    reconcile_interval: int = field(default=600, metadata=_check(_positive))
    timezone: str = field(default="UTC", metadata=_check(_timezone))
    default_language: str = field(default="en", metadata=_check(_one_of(*LANGUAGES)))
    stats: bool = True
    stats_keep_days: int = field(default=400, metadata=_check(_positive))


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    listen: str = field(default="127.0.0.1:8001", metadata=_check(_listen))

    @property
    def host_port(self) -> tuple[str, int]:
        found = _host_port(self.listen)
        assert found is not None  # checked when parsed
        return found


@dataclass(frozen=True)
class Config:
    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    encryption: EncryptionConfig
    communities: CommunitiesConfig
    permissions: Mapping[str, Permission]
    logging: Mapping[str, Any] | None
    metrics: MetricsConfig = MetricsConfig()

    @property
    def bot_mxid(self) -> str:
        return f"@{self.appservice.bot_username}:{self.homeserver.domain}"

    @property
    def alias_prefix(self) -> str:
        """Localpart prefix of the room aliases the service owns (invite links)."""
        return f"{self.appservice.id}_"

    def check_tokens(self) -> None:
        """Running needs real tokens; `-g` generates them."""
        for key, value in (
            ("appservice.as_token", self.appservice.as_token),
            ("appservice.hs_token", self.appservice.hs_token),
        ):
            if value == GENERATE or not value:
                raise ConfigError(key, "not generated yet; run with -g to write the registration")
        if self.encryption.enabled and self.encryption.pickle_key in (GENERATE, ""):
            raise ConfigError(
                "encryption.pickle_key", "required when encryption is enabled; run with -g"
            )


_S = TypeVar("_S")


def _section(cls: type[_S], name: str, raw: Any, env: Mapping[str, str]) -> _S:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(name, "must be a mapping")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown key")
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key = f"{name}.{f.name}"
        env_name = f"{ENV_PREFIX}{name.upper()}__{f.name.upper()}"
        if env_name in env:
            value: Any = _env_value(key, env_name, env[env_name], str(f.type))
        elif f.name in raw:
            value = raw[f.name]
        else:
            values[f.name] = f.default
            continue
        values[f.name] = _coerce(key, value, f.type)
        check = f.metadata.get("check")
        if check is not None:
            check(key, values[f.name])
    return cls(**values)


def _env_value(key: str, env_name: str, text: str, type_name: str) -> Any:
    """Environment values are YAML (`5`, `true`); a string field also takes any plain text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        if type_name == "str":
            return text
        raise ConfigError(key, f"{env_name} is not a valid value") from None


def _coerce(key: str, value: Any, type_name: Any) -> Any:
    expected = {"str": str, "int": int, "bool": bool}[str(type_name)]
    if expected is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # `room_version: 12` means "12"
    if expected is int and isinstance(value, bool):
        raise ConfigError(key, f"must be a whole number, not {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(key, f"must be {_type_word(expected)}, not {value!r}")
    return value


def _type_word(t: type) -> str:
    return {str: "a string", int: "a whole number", bool: "true or false"}[t]


def _permissions(raw: Any) -> dict[str, Permission]:
    if raw is None:
        return {"*": Permission.MEMBER}
    if not isinstance(raw, dict):
        raise ConfigError("permissions", "must be a mapping of user, server or * to a level")
    table: dict[str, Permission] = {}
    for who, level in raw.items():
        key = f"permissions.{who}"
        who = str(who)
        if not (who == "*" or _SERVER_NAME.fullmatch(who) or re.fullmatch(r"@[^:\s]+:\S+", who)):
            raise ConfigError(key, "must be *, a server name or a user ID")
        try:
            table[who] = Permission[str(level).upper()]
        except KeyError:
            names = ", ".join(p.name.lower() for p in Permission)
            raise ConfigError(key, f"{level!r} is not one of {names}") from None
    return table


def _whole_sections(env: Mapping[str, str]) -> dict[str, Any]:
    """`permissions` and `logging` from COMMUNITIES_PERMISSIONS / COMMUNITIES_LOGGING."""
    found: dict[str, Any] = {}
    for section in ("permissions", "logging"):
        name = ENV_PREFIX + section.upper()
        if name not in env:
            continue
        try:
            value = yaml.safe_load(env[name])
        except yaml.YAMLError:
            raise ConfigError(section, f"{name} is not valid YAML") from None
        if not isinstance(value, dict):
            raise ConfigError(section, f"{name} must be a mapping")
        found[section] = value
    return found


def parse(raw: Any, env: Mapping[str, str] | None = None) -> Config:
    """Turn a YAML document (already parsed) into a Config, or raise one ConfigError."""
    env = os.environ if env is None else env
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("(top level)", "the config must be a mapping")
    sections = {
        "homeserver", "appservice", "encryption", "communities", "permissions", "logging",
        "metrics",
    }  # fmt: skip
    for key in raw:
        if key not in sections:
            raise ConfigError(str(key), "unknown section")
    for required in ("homeserver", "appservice"):
        if required not in raw:
            raise ConfigError(required, "missing section")
    raw = {**raw, **_whole_sections(env)}
    log_config = raw.get("logging")
    if log_config is not None and not isinstance(log_config, dict):
        raise ConfigError("logging", "must be a logging.config.dictConfig mapping")
    appservice = _section(AppserviceConfig, "appservice", raw.get("appservice"), env)
    if appservice.high_availability and not appservice.database.startswith("postgres"):
        raise ConfigError(
            "appservice.high_availability", "needs a PostgreSQL database (appservice.database)"
        )
    return Config(
        homeserver=_section(HomeserverConfig, "homeserver", raw.get("homeserver"), env),
        appservice=appservice,
        encryption=_section(EncryptionConfig, "encryption", raw.get("encryption"), env),
        communities=_section(CommunitiesConfig, "communities", raw.get("communities"), env),
        permissions=_permissions(raw.get("permissions")),
        logging=log_config,
        metrics=_section(MetricsConfig, "metrics", raw.get("metrics"), env),
    )


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), f"cannot read: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(path), f"not valid YAML{where}") from None
    return parse(raw, env)


# --- registration ------------------------------------------------------------------------


def _token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(64))


def registration(config: Config, sender_localpart: str) -> dict[str, Any]:
    """The homeserver's view of this service (what `-g` writes)."""
    domain = re.escape(config.homeserver.domain)
    bot = re.escape(config.appservice.bot_username)
    return {
        "id": config.appservice.id,
        "url": config.appservice.address,
        "as_token": config.appservice.as_token,
        "hs_token": config.appservice.hs_token,
        "sender_localpart": sender_localpart,
        "rate_limited": False,
        "namespaces": {
            "users": [{"regex": f"@{bot}:{domain}", "exclusive": True}],
            "aliases": [
                {"regex": f"#{re.escape(config.alias_prefix)}.*:{domain}", "exclusive": True}
            ],
            "rooms": [],
        },
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
        "org.matrix.msc3202": True,
        "io.element.msc4190": config.encryption.enabled,
    }


def fill_generated(text: str) -> str:
    """Replace every `key: generate` token value in the config text, keeping comments."""

    def replace(match: re.Match[str]) -> str:
        return f"{match.group(1)}{_token()}{match.group(3)}"  # group 2: the quote, dropped

    pattern = re.compile(
        r"^(\s*(?:as_token|hs_token|pickle_key):\s*)([\"']?)generate\2(\s*(?:#.*)?)$", re.M
    )
    return pattern.sub(replace, text)


def generate_registration(config_path: Path, registration_path: Path) -> Config:
    """Fill the config's tokens, then write the registration that matches them."""
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(config_path), f"cannot read: {e.strerror}") from None
    filled = fill_generated(text)
    if filled != text:
        config_path.write_text(filled, encoding="utf-8")
    config = load(config_path)
    for key, value in (
        ("appservice.as_token", config.appservice.as_token),
        ("appservice.hs_token", config.appservice.hs_token),
        (
            "encryption.pickle_key",
            config.encryption.pickle_key if config.encryption.enabled else "",
        ),
    ):
        if value == GENERATE:
            section, name = key.split(".")
            raise ConfigError(
                key, f"missing from the file; add `{name}: generate` under {section}:"
            )
    existing = _existing_sender(registration_path)
    sender = existing or "_communities_" + secrets.token_hex(8)
    reg = registration(config, sender)
    registration_path.write_text(yaml.safe_dump(reg, sort_keys=False), encoding="utf-8")
    return config


def _existing_sender(path: Path) -> str | None:
    try:
        old = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if isinstance(old, dict) and isinstance(old.get("sender_localpart"), str):
        return str(old["sender_localpart"])
    return None
