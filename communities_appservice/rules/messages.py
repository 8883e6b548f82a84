"""Reading a message's content: pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def body_text(content: Mapping[str, Any]) -> str:
    """The plain body as typed (Markdown stays Markdown), without the quote a reply may
    carry (its fallback, `> ` lines before a blank line)."""
    body = str(content.get("body", ""))
    if (content.get("m.relates_to") or {}).get("m.in_reply_to") and body.startswith("> "):
        lines = body.split("\n")
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        body = "\n".join(lines).lstrip("\n")
    return body
