"""`log`'s reply: one escaped line per audit entry, newest first, within one event's size."""

from __future__ import annotations

import pytest

from communities_appservice.commands.audit import (
    MAX_REPLY_HTML,
    audit_line,
    audit_reply,
    audit_time,
)
from communities_appservice.db.audit import AuditEntry

SPACE = "!space:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"


def _entry(id: int = 7, target: str = BOB, **kw: object) -> AuditEntry:
    values: dict[str, object] = dict(
        id=id,
        space_id=SPACE,
        actor=ALICE,
        action="admin add",
        target=target,
        detail="",
        result="ok",
        ts=1_767_225_600_000,  # 2026-01-01 00:00:00 UTC
    )
    values.update(kw)
    return AuditEntry(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ts", "shown"),
    [
        (0, "1970-01-01 00:00:00 UTC"),
        (1_767_225_600_000, "2026-01-01 00:00:00 UTC"),
        (1_767_225_659_999, "2026-01-01 00:00:59 UTC"),
    ],
)
def test_audit_time_is_utc(ts: int, shown: str) -> None:
    assert audit_time(ts) == shown


@pytest.mark.parametrize(
    ("entry", "plain"),
    [
        (_entry(), f"#7 2026-01-01 00:00:00 UTC {ALICE} admin add {BOB} (ok)"),
        (_entry(target=""), f"#7 2026-01-01 00:00:00 UTC {ALICE} admin add (ok)"),
        (
            _entry(12, action="owner transfer", result="failed"),
            f"#12 2026-01-01 00:00:00 UTC {ALICE} owner transfer {BOB} (failed)",
        ),
    ],
)
def test_audit_line(entry: AuditEntry, plain: str) -> None:
    assert audit_line(entry).plain == plain


def test_audit_line_escapes_every_field() -> None:
    entry = _entry(actor="<a>", action="x & y", target="<script>", result="<i>")
    line = audit_line(entry)
    assert line.html == "#7 2026-01-01 00:00:00 UTC &lt;a&gt; x &amp; y &lt;script&gt; (&lt;i&gt;)"
    assert "<" not in line.html


def test_audit_reply_newest_first_as_given() -> None:
    reply = audit_reply("Parents & co", [_entry(3), _entry(2), _entry(1)])
    lines = reply.plain.split("\n")
    assert lines[0] == "Audit log of Parents & co, newest first:"
    assert [line.split()[0] for line in lines[1:]] == ["#3", "#2", "#1"]
    assert "Parents &amp; co" in reply.html


def test_audit_reply_empty() -> None:
    assert audit_reply("P", []).plain == "The audit log of P is empty."


def test_audit_reply_stays_within_one_event() -> None:
    long_target = "@" + "x" * 240 + ":example.org"
    entries = [_entry(i, target=long_target) for i in range(200, 0, -1)]
    reply = audit_reply("P", entries)
    assert len(reply.html) <= MAX_REPLY_HTML
    *shown, note = reply.plain.split("\n")[1:]
    assert shown and all(line.startswith("#") for line in shown)
    assert note == f"… {200 - len(shown)} older entries not shown; ask for fewer."
    assert shown[0].startswith("#200 ")
