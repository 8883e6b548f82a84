"""Matrix identifiers: what a user ID, a room ID and a room alias look like."""

from __future__ import annotations

import re

from ..errors import Invalid

_MXID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


_ROOM_ID = re.compile(r"^![A-Za-z0-9._~\-+/=]+(:[A-Za-z0-9.\-]+(:[0-9]{1,5})?)?$")


_ALIAS = re.compile(r"^#[^:\s]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


def is_user_id(value: str) -> bool:
    return bool(_MXID.fullmatch(value)) and len(value) <= 255


def check_user_id(value: str) -> str:
    if not is_user_id(value):
        raise Invalid("{!r} is not a Matrix user ID (like @alice:example.org).", value)
    return value


def is_room_id(value: str) -> bool:
    return bool(_ROOM_ID.fullmatch(value))


def is_room_alias(value: str) -> bool:
    return bool(_ALIAS.fullmatch(value))
