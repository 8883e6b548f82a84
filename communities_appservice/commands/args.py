"""Typed argument parsers: a word as typed → the value a handler needs, or a one-line
`Invalid` (the dispatcher adds the usage line)."""

from __future__ import annotations

from mautrix.types import UserID

from ..core.notices import say
from ..errors import Invalid
from ..language import N_
from ..rules.ids import check_user_id
from ..rules.model import GroupAccess, JoinMode

_JOIN_WORDS = {
    JoinMode.INVITE: N_("invite only"),
    JoinMode.APPROVAL: N_("approval by an admin"),
    JoinMode.OPEN: N_("open to anyone with the link"),
}
_ACCESS_WORDS = {
    GroupAccess.OPEN: N_("open to members"),
    GroupAccess.APPROVAL: N_("needs approval"),
    GroupAccess.PRIVATE: N_("private"),
}


def join_words(mode: JoinMode) -> str:
    """How a community's join mode reads in a reply ("approval by an admin")."""
    return say(_JOIN_WORDS[mode]).plain


def access_words(access: GroupAccess) -> str:
    """How a group's access reads in a reply ("needs approval")."""
    return say(_ACCESS_WORDS[access]).plain


def user(word: str) -> UserID:
    """A full Matrix user ID (a mention pill has already become one)."""
    return UserID(check_user_id(word))


def join_mode(word: str) -> JoinMode:
    try:
        return JoinMode(word.lower())
    except ValueError:
        raise Invalid("The join mode is invite, approval or open, not {!r}.", word) from None


def group_access(approval: bool, private: bool) -> GroupAccess:
    """`--approval` / `--private` of `group create`."""
    if approval and private:
        raise Invalid("Choose either --approval or --private, not both.")
    if approval:
        return GroupAccess.APPROVAL
    if private:
        return GroupAccess.PRIVATE
    return GroupAccess.OPEN


def page(value: str | None) -> int:
    """`--page N` of a list (1 when not given)."""
    if value is None:
        return 1
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise Invalid("--page must be a whole number from 1, not {!r}.", value)
    return int(text)


def number(word: str, what: str) -> int:
    """`<#id>`: the short number the bot showed, with or without `#`."""
    digits = word.strip().removeprefix("#")
    if not (digits.isascii() and digits.isdecimal()) or len(digits) > 18:
        raise Invalid("{!r} is not a {} number like #12.", word, say(what).plain)
    return int(digits)
