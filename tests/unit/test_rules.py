"""`rules`: power-level maps, permissions, join rules, text limits and decisions, by tables."""

from __future__ import annotations

from typing import Any

import pytest

from communities_appservice.errors import Conflict, Forbidden, Invalid, LimitReached
from communities_appservice.rules.drift import admins_room_drift, join_rule_drifts, power_drift
from communities_appservice.rules.ids import check_user_id
from communities_appservice.rules.joins import (
    group_access_from_join_rule,
    group_join_rule,
    join_rule_content,
    space_join_rule,
    space_link,
)
from communities_appservice.rules.limits import (
    MAX_DESCRIPTION,
    MAX_LONG_TEXT,
    MAX_NAME,
    admin_excess,
    check_can_add_admin,
    check_can_add_group,
    check_can_add_group_admin,
    check_can_remove_admin,
    check_can_remove_group_admin,
    check_can_transfer_owner,
    check_group_names,
    check_log_limit,
    check_name,
    check_text,
)
from communities_appservice.rules.model import (
    AdminRole,
    GroupAccess,
    JoinMode,
    Permission,
    Role,
    permission_for,
)
from communities_appservice.rules.polls import RESPONSE_TYPES
from communities_appservice.rules.power import (
    BOT_ONLY_EVENTS,
    GROUP_ADMIN_LEVEL,
    Levels,
    adoption_problems,
    creator_problem,
    outranking,
    power_levels,
)

BOT = "@communities:example.org"
OWNER = "@owner:example.org"
ADMIN = "@admin:example.org"
HELPER = "@helper:example.org"  # a group admin

# --- power levels ------------------------------------------------------------------------

CREATOR = Levels.for_room("12", True)  # the bot created the room, room version 12
LISTED = Levels.for_room("11", True)  # the bot holds power explicitly


@pytest.mark.parametrize(
    ("version", "bot_is_creator", "expected"),
    [
        ("12", True, Levels(admin=100, bot=101, bot_listed=False)),
        ("12", False, Levels(admin=99, bot=100, bot_listed=True)),  # adopted room
        ("11", True, Levels(admin=99, bot=100, bot_listed=True)),
        ("10", True, Levels(admin=99, bot=100, bot_listed=True)),
        ("11", False, Levels(admin=99, bot=100, bot_listed=True)),
    ],
)
def test_levels_for_room(version: str, bot_is_creator: bool, expected: Levels) -> None:
    assert Levels.for_room(version, bot_is_creator) == expected


# role, levels, events_default, moderation level (state/invite/kick/ban/redact), m.reaction
POWER_CASES = [
    # room version 12, bot = creator: not listed, admins 100, bot-only 101
    (Role.SPACE, CREATOR, 100, 100, None),
    (Role.ANNOUNCEMENTS, CREATOR, 100, 100, 0),
    (Role.GROUP, CREATOR, 0, 50, 0),
    (Role.ADMINS, CREATOR, 0, 100, 0),
    # older versions and adopted rooms: bot listed at 100, admins 99, bot-only 100
    (Role.SPACE, LISTED, 99, 99, None),
    (Role.ANNOUNCEMENTS, LISTED, 99, 99, 0),
    (Role.GROUP, LISTED, 0, 50, 0),
    (Role.ADMINS, LISTED, 0, 99, 0),
]


@pytest.mark.parametrize(("role", "levels", "events_default", "moderate", "reaction"), POWER_CASES)
def test_power_levels(
    role: Role, levels: Levels, events_default: int, moderate: int, reaction: int | None
) -> None:
    content = power_levels(role, levels, bot=BOT, admins=[OWNER, ADMIN], group_admins=[HELPER])

    users: dict[str, int] = {OWNER: levels.admin, ADMIN: levels.admin}
    if role is Role.GROUP:
        users[HELPER] = GROUP_ADMIN_LEVEL
    if levels.bot_listed:
        users[BOT] = levels.bot
    assert content["users"] == users
    assert content["users_default"] == 0

    events = {event: levels.bot for event in BOT_ONLY_EVENTS}
    if reaction is not None:
        events["m.reaction"] = reaction
    if role is Role.ANNOUNCEMENTS:  # members take back their own reactions
        events["m.room.redaction"] = 0
        # and, replies off and no poll open, cannot send messages, encrypted or not, nor
        # poll responses (named: reconciled)
        events.update({"m.room.encrypted": levels.admin, "m.room.message": levels.admin})
        events.update(dict.fromkeys(RESPONSE_TYPES, levels.admin))
    assert content["events"] == events
    assert content["events_default"] == events_default
    for key in ("state_default", "invite", "kick", "ban", "redact"):
        assert content[key] == moderate, key
    assert content["notifications"] == {"room": moderate}


def test_power_levels_bot_only_events_are_the_documented_ones() -> None:
    assert set(BOT_ONLY_EVENTS) == {
        "m.room.power_levels",
        "m.space.child",
        "m.space.parent",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.encryption",
        "m.room.tombstone",
        "m.room.server_acl",
        "communities.room",
    }


@pytest.mark.parametrize("levels", [CREATOR, LISTED], ids=["v12-creator", "listed"])
@pytest.mark.parametrize("role", list(Role))
def test_power_levels_nobody_but_the_bot_reaches_bot_only_events(
    role: Role, levels: Levels
) -> None:
    content = power_levels(role, levels, bot=BOT, admins=[OWNER], group_admins=[HELPER])
    humans = {u: lvl for u, lvl in content["users"].items() if u != BOT}
    assert max(humans.values()) < levels.bot
    assert (BOT in content["users"]) is levels.bot_listed


@pytest.mark.parametrize("role", [Role.SPACE, Role.ANNOUNCEMENTS, Role.ADMINS])
def test_power_levels_group_admins_only_count_in_groups(role: Role) -> None:
    content = power_levels(role, CREATOR, bot=BOT, admins=[OWNER], group_admins=[HELPER])
    assert HELPER not in content["users"]


def test_power_levels_community_admin_who_is_also_group_admin_keeps_admin_level() -> None:
    content = power_levels(
        Role.GROUP, CREATOR, bot=BOT, admins=[ADMIN], group_admins=[ADMIN, HELPER]
    )
    assert content["users"] == {ADMIN: 100, HELPER: 50}


# --- permissions -------------------------------------------------------------------------

TABLE = {
    "*": Permission.MEMBER,
    "example.org": Permission.CREATOR,
    "@ops:example.org": Permission.ADMIN,
    "@blocked:example.org": Permission.NONE,
}


@pytest.mark.parametrize(
    ("user", "table", "expected"),
    [
        ("@ops:example.org", TABLE, Permission.ADMIN),  # the user
        ("@bob:example.org", TABLE, Permission.CREATOR),  # their server
        ("@carol:other.org", TABLE, Permission.MEMBER),  # "*"
        ("@blocked:example.org", TABLE, Permission.NONE),  # user beats server, even NONE
        ("@dave:sub.example.org", TABLE, Permission.MEMBER),  # a subdomain is another server
        ("@erin:example.org:8448", TABLE, Permission.MEMBER),  # so is another port
        ("@bob:example.org", {}, Permission.NONE),  # default
        ("@carol:other.org", {"example.org": Permission.CREATOR}, Permission.NONE),
        ("@ops:example.org", {"@ops:example.org": Permission.ADMIN}, Permission.ADMIN),
    ],
)
def test_permission_for(user: str, table: dict[str, Permission], expected: Permission) -> None:
    assert permission_for(user, table) is expected


# --- join rules --------------------------------------------------------------------------

SPACE = "!space:example.org"


@pytest.mark.parametrize(
    ("rule", "space", "expected"),
    [
        ("invite", None, {"join_rule": "invite"}),
        ("knock", None, {"join_rule": "knock"}),
        ("public", None, {"join_rule": "public"}),
        ("invite", SPACE, {"join_rule": "invite"}),
        (
            "restricted",
            SPACE,
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": SPACE}]},
        ),
    ],
)
def test_join_rule_content(rule: str, space: str | None, expected: dict[str, Any]) -> None:
    assert join_rule_content(rule, space) == expected


def test_restricted_join_rule_needs_the_space() -> None:
    with pytest.raises(ValueError):
        join_rule_content("restricted")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(JoinMode.INVITE, "invite"), (JoinMode.APPROVAL, "knock"), (JoinMode.OPEN, "public")],
)
def test_space_join_rule(mode: JoinMode, expected: str) -> None:
    assert space_join_rule(mode) == expected


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        (GroupAccess.OPEN, "restricted"),
        (GroupAccess.APPROVAL, "knock"),
        (GroupAccess.PRIVATE, "invite"),
    ],
)
def test_group_join_rule(access: GroupAccess, expected: str) -> None:
    assert group_join_rule(access) == expected
    assert group_access_from_join_rule(expected) is access


@pytest.mark.parametrize("join_rule", ["public", "restricted", "knock_restricted", "weird"])
def test_adopted_rooms_that_are_not_knock_or_invite_become_open(join_rule: str) -> None:
    assert group_access_from_join_rule(join_rule) is GroupAccess.OPEN


# --- text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Parents", "Parents"),
        ("  Parents' group  ", "Parents' group"),
        ("x" * 100, "x" * 100),
        ("  " + "x" * 100 + "  ", "x" * 100),  # the limit counts what is kept
        ("Élèves 👩‍🏫", "Élèves 👩‍🏫"),
    ],
)
def test_check_name_accepts(name: str, expected: str) -> None:
    assert check_name(name) == expected


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", ["name", "empty"]),
        ("   ", ["name", "empty"]),
        ("x" * 101, ["101", "100"]),
        ("first line\nsecond line", ["single line"]),
        ("first\r\nsecond", ["single line"]),
        ("tab\there", ["single line"]),
    ],
)
def test_check_name_refuses(name: str, words: list[str]) -> None:
    with pytest.raises(Invalid) as caught:
        check_name(name)
    for word in words:
        assert word in caught.value.message
    assert "\n" not in caught.value.message


def test_check_name_names_what_it_checks() -> None:
    with pytest.raises(Invalid, match="group name"):
        check_name("", "group name")


def _digits(message: str) -> str:
    return message.replace(",", "")


@pytest.mark.parametrize(
    ("limit", "what"),
    [(MAX_DESCRIPTION, "description"), (MAX_LONG_TEXT, "rules")],
)
def test_check_text_limit_is_named(limit: int, what: str) -> None:
    assert check_text("x" * limit, what, limit) == "x" * limit
    with pytest.raises(Invalid) as caught:
        check_text("x" * (limit + 1), what, limit)
    message = caught.value.message
    assert what in message
    assert str(limit) in _digits(message)  # "2,048" and "2048" both name the limit
    assert str(limit + 1) in _digits(message)


def test_text_limits_are_the_documented_ones() -> None:
    assert (MAX_NAME, MAX_DESCRIPTION, MAX_LONG_TEXT) == (100, 2048, 10_000)


def test_check_text_default_limit_is_the_description_limit() -> None:
    check_text("x" * 2048, "topic")
    with pytest.raises(Invalid, match="topic"):
        check_text("x" * 2049, "topic")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),  # a description may be empty
        ("   ", ""),
        ("line one\nline two", "line one\nline two"),  # and span lines
        ("  padded\n", "padded"),
    ],
)
def test_check_text_accepts(text: str, expected: str) -> None:
    assert check_text(text, "description") == expected


# --- user ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [
        "@alice:example.org",
        "@alice:localhost",
        "@alice:example.org:8448",
        "@a.b_c=d-e/f+g:example.org",
        "@123:sub.example-host.org",
        "@" + "a" * 200 + ":example.org",
    ],
)
def test_check_user_id_accepts(user: str) -> None:
    assert check_user_id(user) == user


@pytest.mark.parametrize(
    "value",
    [
        "",
        "alice",
        "@alice",
        "alice:example.org",
        "@:example.org",
        "@alice:",
        "@Alice:example.org",
        "@ali ce:example.org",
        "@alice:exa mple.org",
        "#room:example.org",
        "!room:example.org",
        "@alice:example.org:port",
        "@" + "a" * 250 + ":example.org",  # over 255 characters
        "@alice:example.org\n",  # a trailing newline is not part of an id
    ],
)
def test_check_user_id_refuses(value: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_user_id(value)
    assert repr(value) in caught.value.message


# --- admins and groups -------------------------------------------------------------------


def _admins(n: int) -> list[str]:
    return [f"@admin{i}:example.org" for i in range(n)]


@pytest.mark.parametrize(
    ("current", "user", "max_admins"),
    [
        ([], OWNER, 20),
        (_admins(1), ADMIN, 20),
        (_admins(19), ADMIN, 20),  # the 20th
        (_admins(1), ADMIN, 2),
    ],
)
def test_check_can_add_admin_accepts(current: list[str], user: str, max_admins: int) -> None:
    check_can_add_admin(current, user, max_admins)


@pytest.mark.parametrize(
    ("current", "user", "max_admins", "error", "words"),
    [
        (_admins(20), ADMIN, 20, LimitReached, ["20"]),  # the 21st of 20
        (_admins(25), ADMIN, 20, LimitReached, ["20"]),
        (_admins(1), ADMIN, 1, LimitReached, ["1"]),
        (_admins(3), "@admin1:example.org", 20, Conflict, ["@admin1:example.org", "already"]),
        (_admins(20), "@admin1:example.org", 20, Conflict, ["already"]),  # duplicate first
    ],
)
def test_check_can_add_admin_refuses(
    current: list[str], user: str, max_admins: int, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        check_can_add_admin(current, user, max_admins)
    for word in words:
        assert word in str(caught.value)


def test_check_can_add_admin_names_the_limit() -> None:
    with pytest.raises(LimitReached) as caught:
        check_can_add_admin(_admins(20), ADMIN, 20)
    assert "the limit is 20" in caught.value.message


ROLES = {OWNER: AdminRole.OWNER, ADMIN: AdminRole.ADMIN}


def test_check_can_remove_admin_accepts_an_admin() -> None:
    check_can_remove_admin(ROLES, ADMIN)


@pytest.mark.parametrize(
    ("user", "error"),
    [
        (OWNER, Forbidden),  # nobody dismisses the owner
        ("@stranger:example.org", Conflict),  # not an admin
    ],
)
def test_check_can_remove_admin_refuses(user: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_can_remove_admin(ROLES, user)


@pytest.mark.parametrize(("count", "max_groups"), [(0, 100), (99, 100), (0, 1)])
def test_check_can_add_group_accepts(count: int, max_groups: int) -> None:
    check_can_add_group(count, max_groups)


@pytest.mark.parametrize(("count", "max_groups"), [(100, 100), (101, 100), (1, 1)])
def test_check_can_add_group_refuses(count: int, max_groups: int) -> None:
    with pytest.raises(LimitReached) as caught:
        check_can_add_group(count, max_groups)
    assert f"the limit is {max_groups}" in caught.value.message


# --- adoption ----------------------------------------------------------------------------

ALICE = "@alice:example.org"
ZED = "@zed:example.org"


@pytest.mark.parametrize(
    ("power", "expected"),
    [
        ({"users": {BOT: 100}}, []),
        ({"users": {BOT: 100, ALICE: 99}}, []),
        ({"users": {BOT: 100, ALICE: 50}, "users_default": 0}, []),
        ({"users": {BOT: "100"}}, []),  # levels as strings (old rooms)
        ({"users": {BOT: 150, ALICE: 120}}, []),  # the bot outranks alice
        ({"users_default": 100}, []),  # the bot holds 100 by default
        (
            {"users": {BOT: 50}},
            [f"give {BOT} power level 100 in the room (it has 50)"],
        ),
        ({}, [f"give {BOT} power level 100 in the room (it has 0)"]),
        (
            {"users": {BOT: 100}, "events": {"m.room.power_levels": 150}},
            [f"give {BOT} power level 100 in the room (it has 100)"],
        ),
        (
            {"users": {BOT: 100, ZED: 100, ALICE: 100}},
            [f"lower these users below the bot: {ALICE}, {ZED}"],
        ),
        (
            {"users": {ALICE: 100}},
            [
                f"give {BOT} power level 100 in the room (it has 0)",
                f"lower these users below the bot: {ALICE}",
            ],
        ),
        (
            {"users": {BOT: 100, ALICE: 150}},
            [f"lower these users below the bot: {ALICE}"],
        ),
    ],
)
def test_adoption_problems(power: dict[str, Any], expected: list[str]) -> None:
    assert adoption_problems(power, BOT) == expected


@pytest.mark.parametrize(
    ("create", "culprits"),
    [
        ({"room_version": "11", "creator": ALICE}, None),  # creators are not special
        ({"room_version": "10", "creator": ALICE}, None),
        ({}, None),  # version 1
        ({"room_version": "12", "creator": BOT}, None),
        ({"room_version": "12", "sender": BOT}, None),
        ({"room_version": "12", "creator": BOT, "additional_creators": []}, None),
        ({"room_version": "12", "creator": ALICE}, [ALICE]),
        ({"room_version": "12", "sender": ALICE}, [ALICE]),
        ({"room_version": "12", "creator": BOT, "additional_creators": [ZED, ALICE]}, [ALICE, ZED]),
        ({"room_version": "12", "creator": ALICE, "additional_creators": [BOT]}, [ALICE]),
    ],
)
def test_creator_problem(create: dict[str, Any], culprits: list[str] | None) -> None:
    problem = creator_problem(create, BOT)
    if culprits is None:
        assert problem is None
        return
    assert problem is not None
    assert ", ".join(culprits) in problem
    assert BOT not in problem
    assert "group create" in problem


# --- owner transfer and group admins ---------------------------------------------------


def test_check_can_transfer_owner_accepts_an_admin() -> None:
    check_can_transfer_owner(ROLES, ADMIN)


@pytest.mark.parametrize(
    ("user", "words"),
    [
        (OWNER, ["already the owner"]),
        ("@stranger:example.org", ["@stranger:example.org", "not an admin"]),
        (HELPER, ["not an admin"]),  # a group admin is no community admin
    ],
)
def test_check_can_transfer_owner_refuses(user: str, words: list[str]) -> None:
    with pytest.raises(Conflict) as caught:
        check_can_transfer_owner(ROLES, user)
    for word in words:
        assert word in caught.value.message


@pytest.mark.parametrize(
    ("group_admins", "user"),
    [
        ([], HELPER),
        (["@other:example.org"], HELPER),
    ],
)
def test_check_can_add_group_admin_accepts(group_admins: list[str], user: str) -> None:
    check_can_add_group_admin(ROLES, group_admins, user, "Chat")


@pytest.mark.parametrize(
    ("group_admins", "user", "words"),
    [
        ([HELPER], HELPER, ["already an admin of Chat"]),
        ([], ADMIN, ["community admin"]),  # already outranks a group admin everywhere
        ([], OWNER, ["community admin"]),
        ([OWNER], OWNER, ["community admin"]),
    ],
)
def test_check_can_add_group_admin_refuses(
    group_admins: list[str], user: str, words: list[str]
) -> None:
    with pytest.raises(Conflict) as caught:
        check_can_add_group_admin(ROLES, group_admins, user, "Chat")
    for word in words:
        assert word in caught.value.message


def test_check_can_remove_group_admin() -> None:
    check_can_remove_group_admin([HELPER], HELPER, "Chat")
    with pytest.raises(Conflict) as caught:
        check_can_remove_group_admin([HELPER], ADMIN, "Chat")
    assert caught.value.message == f"{ADMIN} is not an admin of Chat."


# --- log --limit -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        (None, 20),
        ("1", 1),
        ("2", 2),
        ("20", 20),
        ("200", 200),
        (" 7 ", 7),
        ("007", 7),
    ],
)
def test_check_log_limit_accepts(value: str | None, limit: int) -> None:
    assert check_log_limit(value) == limit


@pytest.mark.parametrize(
    "value",
    ["0", "201", "1000000000000000000000", "-1", "+5", "abc", "", "2.5", "1e2", "٣", "²"],
)
def test_check_log_limit_refuses(value: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_log_limit(value)
    assert "from 1 to 200" in caught.value.message
    assert "\n" not in caught.value.message


def test_check_can_add_admin_after_the_limit_was_lowered_says_how_many_to_dismiss() -> None:
    with pytest.raises(LimitReached) as caught:
        check_can_add_admin(_admins(22), ADMIN, 20)
    assert "22 admins but the limit is now 20: dismiss 2" in caught.value.message


@pytest.mark.parametrize(("count", "limit"), [(0, 20), (19, 20), (20, 20), (1, 1)])
def test_admin_excess_none_within_the_limit(count: int, limit: int) -> None:
    assert admin_excess(count, limit) == 0


def test_admin_excess_counts_the_admins_over_the_limit() -> None:
    assert admin_excess(22, 20) == 2


# --- create --groups ---------------------------------------------------------------------


def test_check_group_names_trims_and_keeps_order() -> None:
    assert check_group_names([" Chat ", "Sports"], 100) == ["Chat", "Sports"]


@pytest.mark.parametrize(
    ("names", "limit", "error", "words"),
    [
        (["Chat", "chat"], 100, Invalid, ["twice"]),
        (["A", "B", "C"], 2, LimitReached, ["3 groups", "limit is 2"]),
        (["ok", " "], 100, Invalid, []),
        (["x" * 101], 100, Invalid, ["100"]),
    ],
)
def test_check_group_names_refuses(
    names: list[str], limit: int, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        check_group_names(names, limit)
    for word in words:
        assert word in str(caught.value)


# --- reconciliation ----------------------------------------------------------------------


def _desired() -> dict[str, Any]:
    return power_levels(Role.ANNOUNCEMENTS, CREATOR, bot=BOT, admins=[OWNER])


def test_power_drift_none_when_equal_and_extra_keys_are_ignored() -> None:
    actual = {**_desired(), "historical": 100}
    assert power_drift(actual, _desired()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["users"].update({ADMIN: 100}), [f"{ADMIN}: 100 → unset"]),
        (lambda p: p["users"].pop(OWNER), [f"{OWNER}: unset → 100"]),
        (lambda p: p["events"].update({"m.space.child": 50}), ["m.space.child: 50 → 101"]),
        (lambda p: p.update(events_default=0), ["events_default: 0 → 100"]),
        (lambda p: p.pop("state_default"), ["state_default: unset → 100"]),
    ],
)
def test_power_drift_names_each_difference(change: Any, expected: list[str]) -> None:
    actual = _desired()
    actual["users"] = dict(actual["users"])
    actual["events"] = dict(actual["events"])
    change(actual)
    assert power_drift(actual, _desired()) == expected


def test_outranking_lists_users_at_or_above_the_bot() -> None:
    power = {"users": {BOT: 100, OWNER: 100, ADMIN: 99, HELPER: "bogus"}}
    assert outranking(power, BOT, 100) == [OWNER]
    assert outranking({}, BOT, 100) == []


SPACE_ID = "!space:example.org"


@pytest.mark.parametrize(
    ("actual", "desired", "drifts"),
    [
        ({"join_rule": "invite"}, {"join_rule": "invite"}, False),
        ({"join_rule": "public"}, {"join_rule": "knock"}, True),
        ({}, {"join_rule": "invite"}, True),
        (
            join_rule_content("restricted", SPACE_ID),
            join_rule_content("restricted", SPACE_ID),
            False,
        ),
        (
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!x"}]},
            join_rule_content("restricted", SPACE_ID),
            True,
        ),
        (
            {"join_rule": "restricted", "allow": "junk"},
            join_rule_content("restricted", SPACE_ID),
            True,
        ),
    ],
)
def test_join_rule_drifts(actual: dict[str, Any], desired: dict[str, Any], drifts: bool) -> None:
    assert join_rule_drifts(actual, desired) is drifts


def test_admins_room_drift() -> None:
    members = {
        BOT: ("join", BOT),
        OWNER: ("join", OWNER),
        ADMIN: ("leave", ADMIN),  # left by themselves: their choice
        HELPER: ("join", HELPER),  # not an admin
        "@kicked:example.org": ("leave", "@mallory:example.org"),
        "@invited:example.org": ("invite", BOT),
    }
    admins = [OWNER, ADMIN, "@kicked:example.org", "@new:example.org"]
    invite, remove = admins_room_drift(members, admins, BOT)
    assert invite == ["@kicked:example.org", "@new:example.org"]
    assert remove == [HELPER, "@invited:example.org"]


@pytest.mark.parametrize(
    ("role", "position", "expected"),
    [
        (Role.ANNOUNCEMENTS, 1, {"via": ["example.org"], "order": "0", "suggested": True}),
        (Role.GROUP, 7, {"via": ["example.org"], "order": "g00007", "suggested": False}),
        (Role.SPACE, 0, None),
        (Role.ADMINS, 9, None),
    ],
)
def test_space_link(role: Role, position: int, expected: dict[str, Any] | None) -> None:
    assert space_link("example.org", role, position) == expected


@pytest.mark.parametrize("levels", [Levels(100, 101, False), Levels(99, 100, True)])
def test_announcement_replies_and_a_closed_announcement_room(levels: Levels) -> None:
    def events(**options: bool) -> dict[str, int]:
        content = power_levels(Role.ANNOUNCEMENTS, levels, bot="@b:x", admins=["@a:x"], **options)
        return dict(content["events"], default=content["events_default"])

    threads = events(replies=True)
    assert threads["m.room.encrypted"] == threads["m.room.message"] == 0
    assert threads["default"] == levels.admin
    assert threads[RESPONSE_TYPES[0]] == levels.admin  # no poll open
    votes = events(votes=True)  # a poll open: encrypted events and responses, no messages
    assert votes["m.room.encrypted"] == votes[RESPONSE_TYPES[0]] == votes[RESPONSE_TYPES[1]] == 0
    assert votes["m.room.message"] == votes["default"] == levels.admin
    closed = events(replies=True, votes=True, closed=True)
    for key in (
        "m.room.encrypted", "m.room.message", "m.reaction", "m.room.redaction", "default",
        *RESPONSE_TYPES,
    ):  # fmt: skip
        assert closed[key] == levels.bot > levels.admin, key
