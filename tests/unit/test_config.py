"""`config`: parsing and validation, environment overrides, tokens, registration, the CLI."""

from __future__ import annotations

import copy
import operator
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import communities_appservice
from communities_appservice import config
from communities_appservice.errors import ConfigError
from communities_appservice.rules.model import Permission

PROJECT = Path(communities_appservice.__file__).resolve().parent.parent

MINIMAL: dict[str, Any] = {
    "homeserver": {"address": "http://127.0.0.1:8008", "domain": "example.org"},
    "appservice": {"as_token": "AS", "hs_token": "HS"},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with `section.key` set to value (a missing section is created)."""
    raw = copy.deepcopy(MINIMAL)
    section, _, key = path.partition(".")
    if not key:
        raw[section] = value
    else:
        raw.setdefault(section, {})[key] = value
    return raw


def test_parse_minimal() -> None:
    c = config.parse(copy.deepcopy(MINIMAL), env={})
    assert c.homeserver.address == "http://127.0.0.1:8008"
    assert c.homeserver.domain == "example.org"
    assert c.bot_mxid == "@communities:example.org"
    assert c.alias_prefix == "communities_"
    assert c.appservice.as_token == "AS" and c.appservice.hs_token == "HS"
    assert c.appservice.database == "sqlite:communities.db"
    assert c.encryption.enabled is True
    assert c.communities.command_prefix == "!community"
    assert c.communities.room_version == "12"
    assert c.communities.max_admins == 20
    assert c.communities.max_groups == 100
    assert c.communities.default_join_mode == "approval"
    assert c.communities.timezone == "UTC"
    assert c.permissions == {"*": Permission.MEMBER}
    assert c.logging is None


def test_parse_full() -> None:
    raw = {
        **copy.deepcopy(MINIMAL),
        "appservice": {
            "address": "https://as.example.org:8443",
            "hostname": "0.0.0.0",
            "port": 8080,
            "database": "postgres://user:pw@db/communities",
            "id": "comm",
            "bot_username": "bot",
            "bot_displayname": "The Bot",
            "as_token": "AS",
            "hs_token": "HS",
        },
        "encryption": {"enabled": False, "appservice": False, "pickle_key": "PK"},
        "communities": {
            "room_version": 11,
            "max_admins": 5,
            "max_groups": 7,
            "default_join_mode": "open",
            "announcement_replies": "threads",
            "timezone": "Europe/Paris",
            "reconcile_interval": 60,
        },
        "permissions": {"*": "none", "example.org": "creator", "@ops:example.org": "ADMIN"},
        "logging": {"version": 1},
    }
    c = config.parse(raw, env={})
    assert c.bot_mxid == "@bot:example.org"
    assert c.appservice.port == 8080
    assert c.communities.room_version == "11"  # a YAML number is read as the string
    assert c.communities.max_admins == 5
    assert c.encryption.enabled is False
    assert c.permissions == {
        "*": Permission.NONE,
        "example.org": Permission.CREATOR,
        "@ops:example.org": Permission.ADMIN,
    }
    assert c.logging == {"version": 1}


def _without(section: str) -> dict[str, Any]:
    raw = copy.deepcopy(MINIMAL)
    del raw[section]
    return raw


BAD = [
    # (raw config, key named by the error)
    pytest.param(_without("homeserver"), "homeserver", id="missing-homeserver"),
    pytest.param(_without("appservice"), "appservice", id="missing-appservice"),
    pytest.param([1, 2], "(top level)", id="not-a-mapping"),
    pytest.param(_with("bridge", {}), "bridge", id="unknown-section"),
    pytest.param(_with("homeserver.adress", "http://x"), "homeserver.adress", id="unknown-key"),
    pytest.param(_with("homeserver", "http://x"), "homeserver", id="section-not-mapping"),
    pytest.param(_with("communities.max_admins", "x"), "communities.max_admins", id="int-str"),
    pytest.param(_with("communities.max_admins", True), "communities.max_admins", id="int-bool"),
    pytest.param(_with("communities.max_admins", 2.5), "communities.max_admins", id="int-float"),
    pytest.param(_with("communities.max_admins", 0), "communities.max_admins", id="max-admins-0"),
    pytest.param(_with("communities.max_groups", -1), "communities.max_groups", id="groups-neg"),
    pytest.param(_with("encryption.enabled", "yes"), "encryption.enabled", id="bool-str"),
    pytest.param(_with("encryption.enabled", 1), "encryption.enabled", id="bool-int"),
    pytest.param(
        _with("appservice.bot_displayname", ["x"]), "appservice.bot_displayname", id="str-list"
    ),
    pytest.param(_with("appservice.port", 70000), "appservice.port", id="port"),
    pytest.param(
        _with("homeserver.address", "localhost:8008"), "homeserver.address", id="url-no-scheme"
    ),
    pytest.param(
        _with("homeserver.address", "ftp://example.org"), "homeserver.address", id="url-scheme"
    ),
    pytest.param(_with("appservice.address", "http://"), "appservice.address", id="url-no-host"),
    pytest.param(_with("homeserver.domain", "example org"), "homeserver.domain", id="domain"),
    pytest.param(
        _with("homeserver.domain", "https://example.org"), "homeserver.domain", id="domain-url"
    ),
    pytest.param(
        _with("homeserver.domain", "example.org\n"),
        "homeserver.domain",
        id="domain-trailing-newline",
    ),
    pytest.param(
        _with("appservice.bot_username", "Bot"), "appservice.bot_username", id="localpart"
    ),
    pytest.param(
        _with("appservice.database", "mysql://db/x"), "appservice.database", id="database-scheme"
    ),
    pytest.param(
        _with("appservice.database", "communities.db"), "appservice.database", id="database-path"
    ),
    pytest.param(
        _with("communities.default_join_mode", "public"),
        "communities.default_join_mode",
        id="join-mode",
    ),
    pytest.param(
        _with("communities.announcement_replies", "all"),
        "communities.announcement_replies",
        id="announcement-replies",
    ),
    pytest.param(
        _with("communities.command_prefix", ""), "communities.command_prefix", id="empty-prefix"
    ),
    pytest.param(
        _with("communities.command_prefix", "!my community"),
        "communities.command_prefix",
        id="prefix-with-space",
    ),
    pytest.param(
        _with("communities.room_version", "9"), "communities.room_version", id="room-version"
    ),
    pytest.param(
        _with("communities.room_version", 12.0), "communities.room_version", id="room-version-float"
    ),
    pytest.param(
        _with("appservice.high_availability", True),  # on the default SQLite database
        "appservice.high_availability",
        id="standby-on-sqlite",
    ),
    pytest.param(_with("metrics.listen", "8001"), "metrics.listen", id="metrics-no-host"),
    pytest.param(_with("metrics.listen", "[::1]:99999"), "metrics.listen", id="metrics-port"),
    pytest.param(_with("metrics.enabled", "on"), "metrics.enabled", id="metrics-enabled"),
    pytest.param(
        _with("communities.timezone", "Mars/Olympus_Mons"), "communities.timezone", id="timezone"
    ),
    pytest.param(
        _with("communities.timezone", "../etc/passwd"), "communities.timezone", id="timezone-path"
    ),
    pytest.param(_with("permissions", {"*": "superuser"}), "permissions.*", id="perm-level"),
    pytest.param(
        _with("permissions", {"example.org": 3}), "permissions.example.org", id="perm-level-number"
    ),
    pytest.param(
        _with("permissions", {"not a server!": "member"}),
        "permissions.not a server!",
        id="perm-who",
    ),
    pytest.param(_with("permissions", "member"), "permissions", id="perm-not-mapping"),
    pytest.param(_with("logging", "debug"), "logging", id="logging"),
]


@pytest.mark.parametrize(("raw", "key"), BAD)
def test_parse_refuses(raw: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(raw, env={})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")
    assert "\n" not in str(caught.value)


# --- environment -------------------------------------------------------------------------


def test_env_overrides_the_file() -> None:
    raw = _with("communities.max_admins", 10)
    c = config.parse(raw, env={"COMMUNITIES_COMMUNITIES__MAX_ADMINS": "5"})
    assert c.communities.max_admins == 5


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("COMMUNITIES_HOMESERVER__DOMAIN", "other.org", "bot_mxid", "@communities:other.org"),
        ("COMMUNITIES_ENCRYPTION__ENABLED", "false", "encryption.enabled", False),
        ("COMMUNITIES_COMMUNITIES__ROOM_VERSION", "11", "communities.room_version", "11"),
        ("COMMUNITIES_APPSERVICE__HS_TOKEN", "fromenv", "appservice.hs_token", "fromenv"),
        (
            "COMMUNITIES_APPSERVICE__BOT_DISPLAYNAME",
            '"Team: Communities"',
            "appservice.bot_displayname",
            "Team: Communities",
        ),
    ],
)
def test_env_sets_keys(name: str, value: str, attribute: str, expected: object) -> None:
    c = config.parse(copy.deepcopy(MINIMAL), env={name: value})
    assert operator.attrgetter(attribute)(c) == expected


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMUNITIES_COMMUNITIES__MAX_ADMINS", "7")
    assert config.parse(copy.deepcopy(MINIMAL)).communities.max_admins == 7
    assert config.parse(copy.deepcopy(MINIMAL), env={}).communities.max_admins == 20


def test_env_replaces_the_permissions_and_logging_sections() -> None:
    raw = copy.deepcopy(MINIMAL)
    raw["permissions"] = {"*": "member", "example.org": "creator"}
    env = {
        "COMMUNITIES_PERMISSIONS": '{"*": none, "@ops:example.org": admin}',
        "COMMUNITIES_LOGGING": "version: 1\nroot: {level: WARNING}",
    }
    c = config.parse(raw, env=env)
    assert c.permissions == {"*": Permission.NONE, "@ops:example.org": Permission.ADMIN}
    assert c.logging == {"version": 1, "root": {"level": "WARNING"}}


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("COMMUNITIES_PERMISSIONS", "[*", "permissions"),
        ("COMMUNITIES_PERMISSIONS", "creator", "permissions"),
        ("COMMUNITIES_PERMISSIONS", "{'*': emperor}", "permissions.*"),
        ("COMMUNITIES_LOGGING", "- a list", "logging"),
    ],
)
def test_env_whole_sections_refuse_bad_values(name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(copy.deepcopy(MINIMAL), env={name: value})
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        pytest.param(
            "COMMUNITIES_COMMUNITIES__MAX_ADMINS", "0", "communities.max_admins", id="zero"
        ),
        pytest.param(
            "COMMUNITIES_COMMUNITIES__MAX_ADMINS",
            "many",
            "communities.max_admins",
            id="not-a-number",
        ),
        pytest.param(
            "COMMUNITIES_HOMESERVER__ADDRESS", "nowhere", "homeserver.address", id="not-a-url"
        ),
        # a value that is not YAML at all must still be one ConfigError naming the key
        pytest.param(
            "COMMUNITIES_COMMUNITIES__MAX_ADMINS",
            "[5",
            "communities.max_admins",
            id="not-yaml-bracket",
        ),
    ],
)
def test_env_bad_value(name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(copy.deepcopy(MINIMAL), env={name: value})
    assert caught.value.key == key


def test_env_string_that_is_not_yaml_is_taken_as_written() -> None:
    """A display name like "Team: Bot" needs no YAML quoting in the environment."""
    env = {"COMMUNITIES_APPSERVICE__BOT_DISPLAYNAME": "Team: Communities: Bot"}
    c = config.parse(copy.deepcopy(MINIMAL), env=env)
    assert c.appservice.bot_displayname == "Team: Communities: Bot"


# --- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("appservice.as_token", "generate", "appservice.as_token"),
        ("appservice.hs_token", "generate", "appservice.hs_token"),
        ("appservice.as_token", "", "appservice.as_token"),
        ("encryption.pickle_key", "generate", "encryption.pickle_key"),
        ("encryption.pickle_key", "", "encryption.pickle_key"),
    ],
)
def test_check_tokens_refuses(path: str, value: str, key: str) -> None:
    raw = _with("encryption.pickle_key", "PK")
    section, _, name = path.partition(".")
    raw[section][name] = value
    c = config.parse(raw, env={})
    with pytest.raises(ConfigError) as caught:
        c.check_tokens()
    assert caught.value.key == key


def test_check_tokens_accepts() -> None:
    config.parse(_with("encryption.pickle_key", "PK"), env={}).check_tokens()
    # without encryption no pickle key is needed
    config.parse(_with("encryption", {"enabled": False}), env={}).check_tokens()


TEMPLATE = """\
# The config, with comments that -g must keep.
homeserver:
  address: http://127.0.0.1:8008   # where we reach the homeserver
  domain: example.org
appservice:
  address: http://127.0.0.1:29333
  database: sqlite:communities.db
  bot_displayname: generate        # a display name that happens to be the word
  as_token: generate   # filled in by -g
  hs_token: "generate"
encryption:
  enabled: true
  pickle_key: generate
"""


def test_fill_generated() -> None:
    filled = config.fill_generated(TEMPLATE)
    before, after = TEMPLATE.splitlines(), filled.splitlines()
    assert len(before) == len(after)
    changed = {b.split(":")[0].strip(): a for b, a in zip(before, after, strict=True) if a != b}
    assert set(changed) == {"as_token", "hs_token", "pickle_key"}
    tokens = []
    for line in changed.values():
        match = re.fullmatch(r"\s*\w+: ([A-Za-z0-9]{64})(\s*#.*)?", line)
        assert match, line
        tokens.append(match.group(1))
    assert len(set(tokens)) == 3
    assert changed["as_token"].endswith("   # filled in by -g")
    displayname = "  bot_displayname: generate        # a display name that happens to be the word"
    assert displayname in after
    assert after[0] == "# The config, with comments that -g must keep."


@pytest.mark.parametrize(
    "line",
    [
        "as_token: generate",
        "as_token: 'generate'",
        'as_token: "generate"',
        "as_token:   generate  # comment",
        "as_token: generate\r",
        "as_token: generate   ",
    ],
)
def test_fill_generated_recognises(line: str) -> None:
    """Every way YAML spells the string `generate` is filled in."""
    text = f"appservice:\n  {line}\n  other: generate\n"
    assert yaml.safe_load(text)["appservice"]["as_token"] == "generate"
    filled = config.fill_generated(text)
    assert yaml.safe_load(filled)["appservice"]["as_token"] != "generate"
    assert filled.endswith("\n  other: generate\n")


def test_fill_generated_keeps_real_tokens() -> None:
    text = "appservice:\n  as_token: abc\n  hs_token: def  # set\n"
    assert config.fill_generated(text) == text


# --- registration ------------------------------------------------------------------------


def _generate(tmp_path: Path, text: str = TEMPLATE) -> tuple[config.Config, dict[str, Any]]:
    cfg, reg = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    if not cfg.exists():
        cfg.write_text(text, encoding="utf-8")
    result = config.generate_registration(cfg, reg)
    return result, yaml.safe_load(reg.read_text(encoding="utf-8"))


def test_generate_registration(tmp_path: Path) -> None:
    c, reg = _generate(tmp_path)
    assert reg["id"] == "communities"
    assert reg["url"] == "http://127.0.0.1:29333"
    assert reg["rate_limited"] is False
    assert reg["receive_ephemeral"] is True
    assert reg["de.sorunome.msc2409.push_ephemeral"] is True
    assert reg["org.matrix.msc3202"] is True
    assert reg["io.element.msc4190"] is True
    # the tokens in the config file are the registration's
    on_disk = config.load(tmp_path / "config.yaml", env={})
    assert on_disk.appservice.as_token == reg["as_token"] == c.appservice.as_token
    assert on_disk.appservice.hs_token == reg["hs_token"] == c.appservice.hs_token
    assert reg["as_token"] != reg["hs_token"]
    on_disk.check_tokens()
    # the bot is in an exclusive namespace; the sender is another user
    users = reg["namespaces"]["users"]
    assert len(users) == 1 and users[0]["exclusive"] is True
    assert re.fullmatch(users[0]["regex"], c.bot_mxid)
    assert not re.fullmatch(users[0]["regex"], "@someone:example.org")
    assert not re.fullmatch(users[0]["regex"], "@communities:example.com")
    sender = reg["sender_localpart"]
    assert isinstance(sender, str) and sender
    assert sender != c.appservice.bot_username
    assert f"@{sender}:example.org" != c.bot_mxid
    aliases = reg["namespaces"]["aliases"]
    assert re.fullmatch(aliases[0]["regex"], "#communities_abc:example.org")
    assert aliases[0]["exclusive"] is True
    # comments survive
    text = (tmp_path / "config.yaml").read_text(encoding="utf-8")
    assert "# filled in by -g" in text and "# where we reach the homeserver" in text


def test_generate_registration_twice_keeps_sender_and_tokens(tmp_path: Path) -> None:
    first, reg1 = _generate(tmp_path)
    second, reg2 = _generate(tmp_path)
    assert reg2["sender_localpart"] == reg1["sender_localpart"]
    assert reg2["as_token"] == reg1["as_token"] == second.appservice.as_token
    assert reg2["hs_token"] == reg1["hs_token"] == second.appservice.hs_token
    assert second.encryption.pickle_key == first.encryption.pickle_key


def test_generate_registration_without_encryption(tmp_path: Path) -> None:
    text = TEMPLATE.replace("enabled: true", "enabled: false")
    c, reg = _generate(tmp_path, text)
    assert c.encryption.enabled is False
    assert reg["io.element.msc4190"] is False


def test_generate_registration_refuses_a_bad_config(tmp_path: Path) -> None:
    cfg, reg = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    cfg.write_text(TEMPLATE.replace("domain: example.org", "domain: exa mple"), encoding="utf-8")
    with pytest.raises(ConfigError, match="homeserver.domain"):
        config.generate_registration(cfg, reg)
    assert not reg.exists()


# --- load and the command line -----------------------------------------------------------


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(missing, env={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("homeserver:\n  address: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        config.load(broken, env={})


GOOD_FILE = TEMPLATE.replace("generate", "filled")

CLI_CASES = [
    pytest.param(
        GOOD_FILE + "communities:\n  max_admins: 0\n", {}, "communities.max_admins", id="bad-value"
    ),
    pytest.param(TEMPLATE, {}, "appservice.as_token", id="tokens-not-generated"),
    pytest.param("homeserver: [\n", {}, "not valid YAML", id="not-yaml"),
    pytest.param(None, {}, "cannot read", id="missing-file"),
    pytest.param(
        GOOD_FILE,
        {"COMMUNITIES_COMMUNITIES__MAX_ADMINS": "none"},
        "communities.max_admins",
        id="bad-env",
    ),
    pytest.param(
        GOOD_FILE,
        {"COMMUNITIES_COMMUNITIES__MAX_ADMINS": "[5"},
        "communities.max_admins",
        id="env-not-yaml",
    ),
]


@pytest.mark.parametrize(("text", "env", "named"), CLI_CASES)
def test_cli_config_error(
    tmp_path: Path, text: str | None, env: dict[str, str], named: str
) -> None:
    bad = tmp_path / "BAD.yaml"
    if text is not None:
        bad.write_text(text, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMMUNITIES_")}
    environ["PYTHONPATH"] = str(PROJECT)
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "communities_appservice", "-c", str(bad)],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("config error: ")
    assert named in lines[0]
    assert result.stdout == ""


def test_generate_registration_without_token_lines(tmp_path: Path) -> None:
    """A config that never mentions the tokens: -g must not answer "run with -g"."""
    cfg, reg = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    cfg.write_text(
        "homeserver:\n  address: http://127.0.0.1:8008\n  domain: example.org\n"
        "appservice:\n  address: http://127.0.0.1:29333\n"
        "encryption:\n  enabled: false\n",
        encoding="utf-8",
    )
    try:
        c = config.generate_registration(cfg, reg)
    except ConfigError as e:
        assert "-g" not in e.problem, f"circular advice while running -g: {e}"
    else:
        written = yaml.safe_load(reg.read_text(encoding="utf-8"))
        assert written["as_token"] == c.appservice.as_token != config.GENERATE
        assert config.load(cfg, env={}).appservice.hs_token == written["hs_token"]


def test_generate_registration_without_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.generate_registration(tmp_path / "missing.yaml", tmp_path / "registration.yaml")
    assert "cannot read" in str(caught.value)
