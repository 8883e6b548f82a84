"""The one door for what the bot says: every user-facing string, every message it sends.

`say(template, *args)` is the function every user-facing string passes through: the template
is looked up in the catalogue of the language being spoken (`language.speaking`), and every
argument is HTML-escaped in the rich body; `say_n` picks the plural form for a count. A
number given with the `{:,}` spec is written the locale's way ("1 234" in French). In a
right-to-left language each argument is a bidirectional isolate (a Latin name keeps its
order inside Hebrew), and `notice()` starts the message with a right-to-left mark, which is
what sets the direction in Element (it shows a body with `dir="auto"` and drops `dir`
attributes), besides `<div dir="rtl">` for the clients that honour it.

`notice()` alone builds the content of an `m.notice`, and it always sets `m.mentions`: empty,
unless the bot means to mention someone.

A template may use a few HTML tags (<b>, <i>, <code>, <br>, <ul>, <li>, <a href="{}">);
the plain body is the template without them.
"""

from __future__ import annotations

import hashlib
import html
import re
import string
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from babel.numbers import format_decimal
from mautrix.types import EventID, RoomID, UserID

from .. import language

if TYPE_CHECKING:
    from .service import Service

# A reply stops adding lines before it outgrows one Matrix event (64 KiB), which must also
# hold the plain body and, in an encrypted room, the base64 ciphertext of both.
MAX_REPLY_HTML = 24_000
PAGE_SIZE = 50
RLM, FSI, PDI = "\u200f", "\u2068", "\u2069"


@dataclass(frozen=True)
class Text:
    """Something the bot says, as a plain body and as HTML."""

    plain: str
    html: str


def _plain_template(template: str) -> str:
    text = re.sub(r"<br\s*/?>|</li>", "\n", template)
    text = re.sub(r"<li>", "• ", text)
    return re.sub(r"<[^>]+>", "", text)


class _Rendering(string.Formatter):
    """Formats each slot as usual (`{!r}`, `{:02}`; `{:,}` the locale's way); for the HTML
    body, escapes what it produced: inside a tag (an attribute value, as in `<a href="{}">`)
    quotes too, elsewhere `<`, `>`, `&`."""

    def render(self, template: str, args: tuple[object, ...], rich: bool) -> str:
        out: list[str] = []
        auto = 0
        isolate = language.right_to_left()
        for literal, field, spec, conversion in self.parse(template):
            out.append(literal)
            if field is None:
                continue
            if field == "":
                value, auto = args[auto], auto + 1
            else:
                value = self.get_field(field, args, {})[0]
            value = self.convert_field(value, conversion)
            if spec == "," and isinstance(value, int | float):
                text = format_decimal(value, locale=language.locale())
            else:
                text = self.format_field(value, spec or "")
            if not rich:
                out.append(FSI + text + PDI if isolate and text else text)
                continue
            so_far = "".join(out)
            in_tag = so_far.rfind("<") > so_far.rfind(">")
            text = html.escape(text, quote=in_tag).replace("\n", "<br>")
            out.append(FSI + text + PDI if isolate and text and not in_tag else text)
        return "".join(out)


_RENDERING = _Rendering()


def _render(template: str, args: tuple[object, ...]) -> Text:
    """`template` (already in the reader's language) with its slots filled."""
    rich = _RENDERING.render(template, args, rich=True)
    plain = _RENDERING.render(_plain_template(template), args, rich=False)
    return Text(plain=plain.strip(), html=rich)


def say(template: str, *args: object, before: str = "") -> Text:
    """A user-facing text from a template with `{}` slots; every argument is escaped.

    An argument's own line breaks become `<br>` in the HTML body. `before` goes in front of
    the translated template (a sign such as "⚠️ ")."""
    return _render(before + language.translate(template), args)


def say_n(singular: str, plural: str, n: int, *args: object) -> Text:
    """`say` with the template of the plural form for `n` (the language's own rules)."""
    return _render(language.translate_n(singular, plural, n), args)


def verbatim(text: str) -> Text:
    """Text that is already in the reader's words (an operation's saved outcome, a rendered
    error): escaped, never a template."""
    return say("{}", text)


def lines(*parts: Text) -> Text:
    """Texts one below the other."""
    return Text(plain="\n".join(p.plain for p in parts), html="<br>".join(p.html for p in parts))


def paragraphs(*parts: Text) -> Text:
    """Texts with a blank line between them."""
    return Text(
        plain="\n\n".join(p.plain for p in parts), html="<br><br>".join(p.html for p in parts)
    )


def notice(
    text: Text,
    *,
    reply_to: EventID | str | None = None,
    thread_root: EventID | str | None = None,
    mentions: Iterable[UserID] = (),
) -> dict[str, Any]:
    """The content of an `m.notice` saying `text`: a reply (threaded when the command was in
    a thread) when `reply_to` is given; `m.mentions` names exactly `mentions`."""
    users = sorted(set(mentions))
    plain, rich = text.plain, text.html
    if language.right_to_left():
        plain, rich = RLM + plain, f'<div dir="rtl">{RLM}{rich}</div>'
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": plain,
        "format": "org.matrix.custom.html",
        "formatted_body": rich,
        "m.mentions": {"user_ids": users} if users else {},
    }
    relates: dict[str, Any] = {}
    if reply_to:
        relates["m.in_reply_to"] = {"event_id": reply_to}
    if thread_root:
        relates.update(rel_type="m.thread", event_id=thread_root, is_falling_back=not reply_to)
        if reply_to:
            relates["is_falling_back"] = False
    if relates:
        content["m.relates_to"] = relates
    return content


def in_thread(content: dict[str, Any], reply_to: str, thread_root: str | None) -> dict[str, Any]:
    """Any other message content (an image) sent in answer to a command: in its thread when
    there is one, as the thread's fallback reply."""
    if thread_root:
        content = {
            **content,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": thread_root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": reply_to},
            },
        }
    return {"m.mentions": {}, **content}


def txn_key(*parts: str) -> str:
    """A transaction id for a message that must be sent once even when its sending is
    retried (the homeserver answers a repeated id with the event it already made)."""
    digest = hashlib.sha256("\x1f".join(("communities", *parts)).encode()).hexdigest()
    return "c" + digest[:32]


def page(header: Text, items: Sequence[Text], number: int, hint: str = "") -> Text:
    """Page `number` (from 1) of a list reply: the header, `PAGE_SIZE` items, and which page
    of how many; a page also stops before the reply would outgrow one Matrix event. `hint`
    says how to ask for another page."""
    pages = max(1, -(-len(items) // PAGE_SIZE))
    number = min(max(number, 1), pages)
    shown = items[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    parts = [header]
    used = len(header.html)
    for i, item in enumerate(shown):
        used += len(item.html) + len("<br>")
        if used > MAX_REPLY_HTML - 200:
            parts.append(say("… {} more of this page not shown.", len(shown) - i))
            break
        parts.append(item)
    if pages > 1:
        parts.append(say("Page {} of {}. {}", number, pages, hint))
    return lines(*parts)


class Answered(Protocol):
    """Where a command was typed (commands.framework.Incoming)."""

    @property
    def room_id(self) -> RoomID: ...
    @property
    def event_id(self) -> EventID: ...
    @property
    def thread_root(self) -> EventID | None: ...


def send_after(svc: Service, content: dict[str, Any]) -> Callable[[Answered], Awaitable[None]]:
    """Sends `content` (an image) after a command's text reply, in its thread if any."""

    async def send(incoming: Answered) -> None:
        event = in_thread(dict(content), incoming.event_id, incoming.thread_root)
        await svc.gw.send_message(incoming.room_id, "m.room.message", event)

    return send
