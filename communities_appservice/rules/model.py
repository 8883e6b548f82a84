"""The words of the domain: room roles, join modes, group access, permissions, admin roles;
the marker event every community room carries."""

from __future__ import annotations

import enum
from collections.abc import Mapping

MARKER_EVENT = "communities.room"


MEGOLM = "m.megolm.v1.aes-sha2"


class Role(enum.StrEnum):
    SPACE = "space"
    ANNOUNCEMENTS = "announcements"
    GROUP = "group"
    ADMINS = "admins"


class JoinMode(enum.StrEnum):
    """How people join the community (the space's join rule)."""

    INVITE = "invite"
    APPROVAL = "approval"
    OPEN = "open"


class GroupAccess(enum.StrEnum):
    """How members join one topic group."""

    OPEN = "open"  # restricted to the space
    APPROVAL = "approval"  # knock
    PRIVATE = "private"  # invite


class Permission(enum.IntEnum):
    """What a user may do with the service, from the `permissions` config section."""

    NONE = 0
    MEMBER = 1  # may talk to the bot and use communities
    CREATOR = 2  # may create communities
    ADMIN = 3  # may manage every community


class AdminRole(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"


def permission_for(user_id: str, table: Mapping[str, Permission]) -> Permission:
    """Most specific wins: the user, then their server, then "*"."""
    if user_id in table:
        return table[user_id]
    server = user_id.split(":", 1)[1] if ":" in user_id else ""
    if server in table:
        return table[server]
    return table.get("*", Permission.NONE)


class CommunityState(enum.StrEnum):
    CREATING = "creating"  # its `create` operation is still running
    ACTIVE = "active"
    DEACTIVATED = "deactivated"  # its groups unlinked, its announcements closed: only `info`


class SuggestionState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class AuditAction(enum.StrEnum):
    """What an audit-log entry records (the `action` column)."""

    CREATE = "create"
    RENAME = "rename"
    DESCRIBE = "describe"
    JOIN_MODE = "join mode"
    INVITE = "invite"
    APPROVE = "approve"
    DENY = "deny"
    GROUP_CREATE = "group create"
    GROUP_ADD = "group add"
    GROUP_REMOVE = "group remove"
    GROUP_SUGGEST = "group suggest"
    GROUP_ACCEPT = "group accept"
    GROUP_REJECT = "group reject"
    ADMIN_ADD = "admin add"
    ADMIN_REMOVE = "admin remove"
    OWNER_TRANSFER = "owner transfer"
    GROUP_ADMIN_ADD = "group admin add"
    GROUP_ADMIN_REMOVE = "group admin remove"
    GROUP_ADMIN_LEFT = "group admin left"
    LINK_CREATE = "link create"
    LINK_RESET = "link reset"
    RULES_SET = "rules set"
    WELCOME_SET = "welcome set"
    REMOVE = "remove"
    BAN = "ban"
    UNBAN = "unban"
    REPAIR = "repair"
    PROBLEM = "problem"
    OPERATION_CANCEL = "operation cancel"
    ANNOUNCE = "announce"
    RELAY = "relay"
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    TIMEZONE = "timezone"
    LANGUAGE = "language"
    REPLIES = "replies"
    REPLY_REMOVED = "reply removed"
    DEACTIVATE = "deactivate"
    AVATAR = "avatar"
    POLL = "poll"
    POLL_END = "poll end"
    EVENT = "event"
    EVENT_CANCEL = "event cancel"
