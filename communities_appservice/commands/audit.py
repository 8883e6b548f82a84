"""log: the community's audit log, newest first."""

from __future__ import annotations

from datetime import UTC, datetime

from .. import rules
from ..db.audit import AuditEntry
from .framework import Need, Reply, Request, command, join_replies, say

# Stop adding lines before the reply outgrows a Matrix event (64 KiB), which must also hold
# the plain body and, in encrypted rooms, the base64 ciphertext of both; the last 100
# characters are kept for the note saying that lines were left out.
MAX_REPLY_HTML = 24_000
_NOTE_ROOM = 100


def audit_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def audit_line(entry: AuditEntry) -> Reply:
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


def audit_reply(name: str, entries: list[AuditEntry]) -> Reply:
    if not entries:
        return say("The audit log of <b>{}</b> is empty.", name)
    lines = [say("Audit log of <b>{}</b>, newest first:", name)]
    size = len(lines[0].html)
    for shown, entry in enumerate(entries):
        line = audit_line(entry)
        size += len(line.html) + len("<br>")
        if size > MAX_REPLY_HTML - _NOTE_ROOM:
            lines.append(say("… {} older entries not shown; ask for fewer.", len(entries) - shown))
            break
        lines.append(line)
    return join_replies(*lines)


@command(
    "log",
    "[--limit N]",
    f"the audit log of admin actions, newest first ({rules.LOG_DEFAULT_LIMIT} entries unless "
    f"--limit says up to {rules.LOG_MAX_LIMIT})",
    Need.ADMIN,
    flags={"limit": str},
    max_args=0,
)
async def show_log(req: Request) -> Reply:
    limit = rules.check_log_limit(req.flags.get("limit"))
    entries = await req.service.audit_log(req.space, limit)
    return audit_reply(req.space.name, entries)
