"""Limits and checks of what admins ask for: names, texts, the admin and group limits,
group admins, the audit log's length."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mautrix.types import UserID

from .. import language
from ..errors import Conflict, Forbidden, Invalid, LimitReached
from ..language import N_
from .model import AdminRole

MAX_NAME = 100


MAX_DESCRIPTION = 2048


MAX_LONG_TEXT = 10_000


LOG_DEFAULT_LIMIT = 20


LOG_MAX_LIMIT = 200


def check_name(name: str, what: str = N_("name")) -> str:
    """A one-line name; `what` (marked with `N_`) says which, in the refusal."""
    what = language.translate(what)
    name = name.strip()
    if not name:
        raise Invalid("The {} must not be empty.", what)
    if len(name) > MAX_NAME:
        raise Invalid("The {} is {} characters long; the limit is {}.", what, len(name), MAX_NAME)
    if any(ch in name for ch in "\n\r\t"):
        raise Invalid("The {} must be a single line.", what)
    return name


def check_text(text: str, what: str, limit: int = MAX_DESCRIPTION) -> str:
    what = language.translate(what)
    text = text.strip()
    if len(text) > limit:
        raise Invalid("The {} is {} characters long; the limit is {:,}.", what, len(text), limit)
    return text


def check_can_add_admin(current: Iterable[str], user: str, max_admins: int) -> None:
    existing = set(current)
    if user in existing:
        raise Conflict("{} is already an admin.", user)
    if len(existing) > max_admins:
        raise LimitReached(
            "This community has {} admins but the limit is now {}: dismiss {} before "
            "promoting anyone.",
            len(existing),
            max_admins,
            len(existing) - max_admins,
        )
    if len(existing) == max_admins:
        raise LimitReached(
            "This community already has {} admins; the limit is {}.", len(existing), max_admins
        )


def admin_excess(count: int, max_admins: int) -> int:
    """How many admins over the limit there are, when the config's limit fell below their
    number (0 when it did not)."""
    return max(0, count - max_admins)


def check_can_remove_admin(roles: Mapping[UserID, AdminRole], user: UserID) -> None:
    """Any admin may dismiss another admin, as in WhatsApp; nobody dismisses the owner."""
    role = roles.get(user)
    if role is None:
        raise Conflict("{} is not an admin.", user)
    if role is AdminRole.OWNER:
        raise Forbidden("The owner cannot be removed; the owner can transfer ownership first.")


def check_can_transfer_owner(roles: Mapping[UserID, AdminRole], user: UserID) -> None:
    """Ownership goes only to another admin, so the admin limit holds without a check."""
    role = roles.get(user)
    if role is None:
        raise Conflict("{} is not an admin; make them an admin first.", user)
    if role is AdminRole.OWNER:
        raise Conflict("{} is already the owner.", user)


def check_can_add_group_admin(
    admins: Iterable[str], group_admins: Iterable[str], user: str, group: str
) -> None:
    """A community admin already holds more than a group admin in every group."""
    if user in set(admins):
        raise Conflict("{} is a community admin, which already outranks a group admin.", user)
    if user in set(group_admins):
        raise Conflict("{} is already an admin of {}.", user, group)


def check_can_remove_group_admin(group_admins: Iterable[str], user: str, group: str) -> None:
    if user not in set(group_admins):
        raise Conflict("{} is not an admin of {}.", user, group)


def check_log_limit(value: str | None) -> int:
    """The number of audit entries `log --limit` asks for (a default when not given)."""
    if value is None:
        return LOG_DEFAULT_LIMIT
    text = value.strip()
    limit = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= limit <= LOG_MAX_LIMIT:
        raise Invalid(
            "--limit must be a whole number from 1 to {}, not {!r}.", LOG_MAX_LIMIT, value
        )
    return limit


def check_group_names(names: Iterable[str], max_groups: int) -> list[str]:
    """The `--groups` of `create`: valid names, no name twice, within the limit."""
    checked = [check_name(n, N_("group name")) for n in names]
    seen: set[str] = set()
    for name in checked:
        if name.lower() in seen:
            raise Invalid("The group name {!r} appears twice.", name)
        seen.add(name.lower())
    if len(checked) > max_groups:
        raise LimitReached("{} groups asked for; the limit is {}.", len(checked), max_groups)
    return checked


def check_can_add_group(count: int, max_groups: int) -> None:
    if count >= max_groups:
        raise LimitReached(
            "This community already has {} groups; the limit is {}.", count, max_groups
        )
