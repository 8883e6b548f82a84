"""Reading a command: the text as typed (mention pills become MXIDs, a reply's quote is
dropped), split like a shell, and `--flags`. Pure functions of the message content."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from ..errors import Invalid
from ..rules.messages import body_text

_PILL = re.compile(
    r'<a\s+href="https://matrix\.to/#/((?:@|%40)[^"?]+)[^"]*"\s*>.*?</a>', re.S | re.I
)
_REPLY_FALLBACK = re.compile(r"<mx-reply>.*?</mx-reply>", re.S)
_QUOTES = {"\u201c": '"', "\u201d": '"', "\u201e": '"'}


def command_text(content: Mapping[str, Any]) -> str:
    """The command as typed: mention pills become the MXIDs they point at, and the quoted
    message a reply carries (its fallback) is dropped."""
    formatted = content.get("formatted_body")
    if not isinstance(formatted, str) or content.get("format") != "org.matrix.custom.html":
        formatted = ""
    if _PILL.search(formatted) or _REPLY_FALLBACK.search(formatted):
        text = _REPLY_FALLBACK.sub("", formatted)
        text = _PILL.sub(lambda m: unquote(m.group(1)), text)
        text = re.sub(r"<br\s*/?>", "\n", text)
        return html.unescape(re.sub(r"<[^>]+>", "", text))
    return body_text(content)


def tokenize(text: str, *, strict: bool = True) -> list[str]:
    """Split on white space; double quotes group words. Unclosed quotes are an error (or,
    not `strict`, run to the end)."""
    return [token for token, _ in spans(text, strict=strict)]


def spans(text: str, *, strict: bool = True) -> list[tuple[str, int]]:
    """`tokenize`, with where each token ends in `text` (so that what follows a few words
    can be taken verbatim, line breaks and all)."""
    tokens: list[tuple[str, int]] = []
    current: list[str] = []
    quoted = in_token = False
    for i, ch in enumerate(text):
        ch = _QUOTES.get(ch, ch)
        if ch == '"':
            quoted = not quoted
            in_token = True
        elif ch.isspace() and not quoted:
            if in_token:
                tokens.append(("".join(current), i))
            current, in_token = [], False
        else:
            current.append(ch)
            in_token = True
    if quoted and strict:
        raise Invalid("A quotation mark is not closed.")
    if in_token:
        tokens.append(("".join(current), len(text)))
    return tokens


def leading_flags(
    tokens: list[str], known: Mapping[str, type], start: int = 0
) -> tuple[dict[str, Any], int]:
    """The `--flag [value]` pairs from `tokens[start]` up to the first other word, and the
    index of that word: for commands whose last argument is free text."""
    end = start
    while end < len(tokens) and _is_flag(tokens[end]):
        name = _flag_name(tokens[end])
        takes_value = known.get(name) is not bool and "=" not in tokens[end]
        end += 2 if takes_value else 1
    flags = split_flags(tokens[start:end], known)[1]
    return flags, min(end, len(tokens))


def _is_flag(token: str) -> bool:
    return (token.startswith("--") and token != "--") or (
        token.startswith("\u2014") and len(token) > 1
    )


def _flag_name(token: str) -> str:
    return token.lstrip("-\u2014").partition("=")[0]


def split_flags(tokens: list[str], known: Mapping[str, type]) -> tuple[list[str], dict[str, Any]]:
    """Positional words and `--flag [value]` pairs; `—flag` (a phone's em dash) counts too."""
    args: list[str] = []
    flags: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_flag(token):
            args.append(tokens[i])
            i += 1
            continue
        name, has_value, value = token.lstrip("-\u2014").partition("=")
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


def text_arguments(
    source: str, words: int, known: Mapping[str, type]
) -> tuple[list[str], dict[str, Any], list[int]]:
    """A text command (`source` after the prefix; its name is `words` words long): the words
    after its leading flags, the flags, and where the text after the first i of those
    words begins in `source` (i from 0). Quotes in free text are text."""
    spanned = spans(source, strict=False)
    args = [token for token, _ in spanned[words:]]
    flags, first = leading_flags(args, known)
    cuts = [end for _, end in spanned[words + first - 1 :]]
    return args[first:], flags, cuts
