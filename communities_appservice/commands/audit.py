"""log: the community's audit log, newest first."""

from __future__ import annotations

from datetime import UTC, datetime

from ..core.notices import MAX_REPLY_HTML, Text, lines, say
from ..db.audit import AuditEntry
from ..rules.limits import LOG_DEFAULT_LIMIT, LOG_MAX_LIMIT, check_log_limit
from .framework import Need, Request, command

# The last 100 characters under the limit are kept for the note saying that lines were left
# out.
_NOTE_ROOM = 100


def audit_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def audit_line(entry: AuditEntry) -> Text:
    """`#id date-time UTC actor action target (result)`; every field is escaped."""
    if entry.target:
        return say(
            "#{} {} {} {} {} ({})",
            entry.id,
            audit_time(entry.ts),
            entry.actor,
            entry.action,
            entry.target,
            entry.result,
        )
    return say(
        "#{} {} {} {} ({})", entry.id, audit_time(entry.ts), entry.actor, entry.action, entry.result
    )


def audit_reply(name: str, entries: list[AuditEntry]) -> Text:
    if not entries:
        return say("The audit log of <b>{}</b> is empty.", name)
    parts = [say("Audit log of <b>{}</b>, newest first:", name)]
    size = len(parts[0].html)
    for shown, entry in enumerate(entries):
        line = audit_line(entry)
        size += len(line.html) + len("<br>")
        if size > MAX_REPLY_HTML - _NOTE_ROOM:
            parts.append(say("… {} older entries not shown; ask for fewer.", len(entries) - shown))
            break
        parts.append(line)
    return lines(*parts)


@command(
    "log",
    "[--limit N]",
    "the audit log of admin actions, newest first ({default} entries unless --limit says up "
    "to {most})",
    Need.ADMIN,
    values={"default": LOG_DEFAULT_LIMIT, "most": LOG_MAX_LIMIT},
    flags={"limit": str},
    max_args=0,
)
async def show_log(req: Request) -> Text:
    limit = check_log_limit(req.flags.get("limit"))
    entries = await req.service.db.audit.recent(req.space.space_id, limit)
    return audit_reply(req.space.name, entries)
