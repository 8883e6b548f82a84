"""`rules` for moderation: who may be removed or banned, and in which rooms, by tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from communities_appservice.errors import Forbidden, Invalid
from communities_appservice.rules.model import AdminRole
from communities_appservice.rules.moderation import (
    MAX_REASON,
    check_can_moderate,
    check_reason,
    rooms_to_ban,
    rooms_to_remove,
    rooms_to_unban,
    shared_rooms,
)

BOT = "@communities:example.org"
OWNER = "@owner:example.org"
ADMIN = "@admin:example.org"
MEMBER = "@member:example.org"
Select = Callable[[Mapping[str, str | None]], list[str]]
ROLES = {OWNER: AdminRole.OWNER, ADMIN: AdminRole.ADMIN}


@pytest.mark.parametrize("action", ["remove", "ban"])
@pytest.mark.parametrize(
    ("user", "refusal"),
    [
        (MEMBER, None),
        ("@stranger:elsewhere.org", None),  # never joined: a ban still applies
        (ADMIN, "admin remove @admin:example.org"),
        (OWNER, "is the owner"),
        (BOT, "The bot cannot be"),
    ],
)
def test_check_can_moderate(action: str, user: str, refusal: str | None) -> None:
    if refusal is None:
        check_can_moderate(ROLES, user, BOT, action)
        return
    with pytest.raises(Forbidden, match=refusal) as caught:
        check_can_moderate(ROLES, user, BOT, action)
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(("action", "word"), [("remove", "removed"), ("ban", "banned")])
def test_owner_refusal_names_the_action(action: str, word: str) -> None:
    with pytest.raises(Forbidden, match=f"cannot be {word}"):
        check_can_moderate(ROLES, OWNER, BOT, action)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("", None),
        ("   ", None),
        ("spam", "spam"),
        ("  too many links  ", "too many links"),
        ("x" * MAX_REASON, "x" * MAX_REASON),
    ],
)
def test_check_reason(reason: str, expected: str | None) -> None:
    assert check_reason(reason) == expected


def test_check_reason_refuses_a_long_reason() -> None:
    with pytest.raises(Invalid, match=f"limit is {MAX_REASON}"):
        check_reason("x" * (MAX_REASON + 1))


MEMBERSHIPS: dict[str, str | None] = {
    "!space": "join",
    "!ann": "invite",
    "!g1": "knock",
    "!g2": "leave",
    "!g3": None,
    "!g4": "ban",
    "!admins": "join",
}


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        (rooms_to_remove, ["!space", "!ann", "!g1", "!admins"]),
        (rooms_to_ban, ["!space", "!ann", "!g1", "!g2", "!g3", "!admins"]),
        (rooms_to_unban, ["!g4"]),
    ],
)
def test_rooms_to_act_on(select: Select, expected: list[str]) -> None:
    assert select(MEMBERSHIPS) == expected


@pytest.mark.parametrize(
    ("memberships", "remove", "ban", "unban"),
    [
        ({}, [], [], []),
        ({"!a": None, "!b": None}, [], ["!a", "!b"], []),  # never joined
        ({"!a": "ban", "!b": "ban"}, [], [], ["!a", "!b"]),  # banned everywhere
        ({"!a": "leave"}, [], ["!a"], []),
    ],
)
def test_rooms_to_act_on_edges(
    memberships: dict[str, str | None], remove: list[str], ban: list[str], unban: list[str]
) -> None:
    assert rooms_to_remove(memberships) == remove
    assert rooms_to_ban(memberships) == ban
    assert rooms_to_unban(memberships) == unban


@pytest.mark.parametrize(
    ("joined", "expected"),
    [
        ({}, []),
        ({"!g1": {OWNER, MEMBER}, "!g2": {OWNER}, "!g3": {MEMBER}}, ["!g1"]),
        ({"!g1": {OWNER, MEMBER, BOT}, "!g2": {MEMBER, OWNER}}, ["!g1", "!g2"]),
        ({"!g1": set(), "!g2": {BOT}}, []),
        ({"!g1": {MEMBER}}, []),  # the asker is not in it: never listed
    ],
)
def test_shared_rooms(joined: dict[str, set[str]], expected: list[str]) -> None:
    assert shared_rooms(joined, OWNER, MEMBER) == expected
    assert shared_rooms(joined, MEMBER, OWNER) == expected
