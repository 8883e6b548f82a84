"""Reading a command: the text as typed (mention pills become MXIDs, a reply's quote is
dropped), split like a shell, and `--flags`. Pure functions of the message content."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from ..errors import Invalid

_PILL = re.compile(
    r'<a\s+href="https://matrix\.to/#/((?:@|%40)[^"?]+)[^"]*"\s*>.*?</a>', re.S | re.I
)
_REPLY_FALLBACK = re.compile(r"<mx-reply>.*?</mx-reply>", re.S)
_QUOTES = {"\u201c": '"', "\u201d": '"', "\u201e": '"'}


def command_text(content: Mapping[str, Any]) -> str:
    """The command as typed: mention pills become the MXIDs they point at, and the quoted
    message a reply carries (its fallback) is dropped."""
    body = str(content.get("body", ""))
    formatted = content.get("formatted_body")
    if not isinstance(formatted, str) or content.get("format") != "org.matrix.custom.html":
        formatted = ""
    if _PILL.search(formatted) or _REPLY_FALLBACK.search(formatted):
        text = _REPLY_FALLBACK.sub("", formatted)
        text = _PILL.sub(lambda m: unquote(m.group(1)), text)
        text = re.sub(r"<br\s*/?>", "\n", text)
        return html.unescape(re.sub(r"<[^>]+>", "", text))
    if (content.get("m.relates_to") or {}).get("m.in_reply_to") and body.startswith("> "):
        lines = body.split("\n")
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        body = "\n".join(lines).lstrip("\n")
    return body


def tokenize(text: str) -> list[str]:
    """Split on white space; double quotes group words. Unclosed quotes are an error."""
    for fancy, plain in _QUOTES.items():
        text = text.replace(fancy, plain)
    tokens: list[str] = []
    current: list[str] = []
    quoted = in_token = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            in_token = True
        elif ch.isspace() and not quoted:
            if in_token:
                tokens.append("".join(current))
            current, in_token = [], False
        else:
            current.append(ch)
            in_token = True
    if quoted:
        raise Invalid("A quotation mark is not closed.")
    if in_token:
        tokens.append("".join(current))
    return tokens


def split_flags(tokens: list[str], known: Mapping[str, type]) -> tuple[list[str], dict[str, Any]]:
    """Positional words and `--flag [value]` pairs; `—flag` (a phone's em dash) counts too."""
    args: list[str] = []
    flags: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("\u2014") and len(token) > 1:
            token = "--" + token[1:]
        if not token.startswith("--") or token == "--":
            args.append(tokens[i])
            i += 1
            continue
        name, has_value, value = token[2:].partition("=")
        kind = known.get(name)
        if kind is None:
            raise Invalid("Unknown option --{}.", name)
        if kind is bool:
            if has_value:
                raise Invalid("--{} takes no value.", name)
            flags[name] = True
        else:
            if not has_value:
                i += 1
                if i >= len(tokens):
                    raise Invalid("--{} needs a value.", name)
                value = tokens[i]
            flags[name] = value
        i += 1
    return args, flags
