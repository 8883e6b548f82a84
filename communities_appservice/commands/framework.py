"""Commands: declaration, parsing, permission checks and replies, in one place.

A handler is declared with `@command(...)`, naming its words (one to three), usage, the role it
needs and its flags; it receives a parsed `Request` and returns a `Reply`. The dispatcher does
the rest: it reads the command from the message (mention pills become MXIDs), splits it like a
shell (double quotes group words; an apostrophe is just an apostrophe), picks the community (and,
for commands that act on one group, the group: `--group`, or the group room it was typed in),
checks the sender's role, runs the handler and answers with an `m.notice` threaded to the
command.
A `UserError` becomes a one-line reply (with the usage line when the syntax was wrong);
anything else is logged with a reference number, and only that number reaches the room.
"""

from __future__ import annotations

import contextlib
import enum
import html
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Forbidden, Invalid, NotFound, UserError
from ..operations import Origin
from ..rules import Permission
from ..service import Service

log = logging.getLogger("communities.commands")


class Need(enum.IntEnum):
    """Who may run a command, checked by the dispatcher before the handler runs."""

    ANYONE = 0
    CREATOR = 1  # allowed to create communities by `permissions`
    MEMBER = 2  # member of the community
    GROUP_ADMIN = 3  # admin of the community, or group admin of the group the command acts on
    ADMIN = 4  # admin of the community (or a service-wide admin)
    OWNER = 5


REFUSALS = {
    Need.MEMBER: "Only members of this community can do that.",
    Need.GROUP_ADMIN: "Only admins of this community or of this group can do that.",
    Need.ADMIN: "Only admins of this community can do that.",
    Need.OWNER: "Only the owner of this community can do that.",
}
# The longest command name, in words; longer names are tried first.
MAX_COMMAND_WORDS = 3


@dataclass(frozen=True)
class Reply:
    plain: str
    html: str
    # Sent after the reply itself, e.g. an image (see commands/links.py).
    after: Callable[[Incoming], Awaitable[object]] | None = field(default=None, compare=False)


def say(template: str, *args: object) -> Reply:
    """A reply from a template with `{}` slots; every argument is HTML-escaped.

    The template may use a few HTML tags (<b>, <i>, <code>, <br>, <ul>, <li>); the plain body
    is the template without them.
    """
    escaped = template.format(*(html.escape(str(a), quote=False) for a in args))
    plain_template = re.sub(r"<br\s*/?>|</li>", "\n", template)
    plain_template = re.sub(r"<li>", "• ", plain_template)
    plain_template = re.sub(r"<[^>]+>", "", plain_template)
    return Reply(plain=plain_template.format(*(str(a) for a in args)).strip(), html=escaped)


def join_replies(*parts: Reply) -> Reply:
    return Reply(plain="\n".join(p.plain for p in parts), html="<br>".join(p.html for p in parts))


@dataclass
class Request:
    sender: str
    room_id: str
    event_id: str
    args: list[str]
    flags: dict[str, Any]
    community: Community | None
    service: Service
    group_room: CommunityRoom | None = None
    thread_root: str | None = None

    def rest(self) -> str:
        return " ".join(self.args)

    @property
    def origin(self) -> Origin:
        """Where a long operation started by this command reports when it ends later."""
        return Origin(self.room_id, self.event_id, self.thread_root or "")

    @property
    def space(self) -> Community:
        assert self.community is not None, "declared community=True"
        return self.community

    @property
    def group(self) -> CommunityRoom:
        assert self.group_room is not None, "declared group=True"
        return self.group_room


Handler = Callable[[Request], Awaitable[Reply]]


@dataclass(frozen=True)
class Spec:
    name: str
    usage: str
    summary: str
    need: Need
    handler: Handler
    flags: Mapping[str, type] = field(default_factory=dict)
    min_args: int = 0
    max_args: int | None = None
    community: bool = True
    group: bool = False  # acts on one group of the community: --group, or the room it is in

    @property
    def usage_line(self) -> str:
        return f"{self.name} {self.usage}".strip()


REGISTRY: dict[str, Spec] = {}


def command(
    name: str,
    usage: str,
    summary: str,
    need: Need,
    *,
    flags: Mapping[str, type] | None = None,
    min_args: int = 0,
    max_args: int | None = None,
    community: bool = True,
    group: bool = False,
) -> Callable[[Handler], Handler]:
    if len(name.split()) > MAX_COMMAND_WORDS:
        raise ValueError(f"command names have at most {MAX_COMMAND_WORDS} words: {name!r}")
    if need is Need.GROUP_ADMIN and not group:
        raise ValueError(f"{name!r}: Need.GROUP_ADMIN needs group=True")

    def register(handler: Handler) -> Handler:
        REGISTRY[name] = Spec(
            name=name,
            usage=usage,
            summary=summary,
            need=need,
            handler=handler,
            flags=dict(flags or {}),
            min_args=min_args,
            max_args=max_args,
            community=community,
            group=group,
        )
        return handler

    return register


# --- parsing -------------------------------------------------------------------------------

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


def find_spec(tokens: list[str]) -> tuple[Spec, list[str]]:
    """The command the first words name, the longest match first, and the words after it."""
    for words in range(min(MAX_COMMAND_WORDS, len(tokens)), 0, -1):
        name = " ".join(t.lower() for t in tokens[:words])
        if name in REGISTRY:
            return REGISTRY[name], tokens[words:]
    raise NotFound(
        f"Unknown command {' '.join(tokens[:2])!r}. Send `help` for the list."
        if tokens
        else "Send `help` for the list of commands."
    )


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
            raise Invalid(f"Unknown option --{name}.")
        if kind is bool:
            if has_value:
                raise Invalid(f"--{name} takes no value.")
            flags[name] = True
        else:
            if not has_value:
                i += 1
                if i >= len(tokens):
                    raise Invalid(f"--{name} needs a value.")
                value = tokens[i]
            flags[name] = value
        i += 1
    return args, flags


# --- dispatching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """A command message: who, where, and how to thread the answer."""

    sender: str
    room_id: str
    event_id: str
    text: str
    thread_root: str | None


class Dispatcher:
    def __init__(self, service: Service) -> None:
        self.svc = service
        self.prefix = service.config.communities.command_prefix

    def parse_incoming(self, event: Mapping[str, Any]) -> Incoming | None:
        content = event.get("content") or {}
        if event.get("type") != "m.room.message" or content.get("msgtype") not in (
            "m.text",
            None,
        ):
            return None
        if event.get("sender") == self.svc.bot:
            return None
        text = command_text(content).strip()
        first, _, rest = text.partition(" ")
        if first.lower() != self.prefix.lower():
            if text.lower() != self.prefix.lower():
                return None
            rest = ""
        relates = content.get("m.relates_to") or {}
        thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        return Incoming(
            sender=str(event["sender"]),
            room_id=str(event["room_id"]),
            event_id=str(event["event_id"]),
            text=rest,
            thread_root=thread,
        )

    async def handle(self, incoming: Incoming) -> str | None:
        """Run one command and send its reply; returns the reply's event id."""
        try:
            reply = await self.run(incoming)
        except UserError as e:
            reply = say("⚠️ {}", e.message)
            if e.usage:
                reply = join_replies(reply, say("Usage: <code>{} {}</code>", self.prefix, e.usage))
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("command failed (ref %s) in %s", ref, incoming.room_id)
            reply = say("⚠️ Something went wrong on our side (reference {}).", ref)
        event_id = await self.send_reply(incoming, reply)
        if reply.after is not None:
            await reply.after(incoming)
        return event_id

    async def run(self, incoming: Incoming) -> Reply:
        try:
            tokens = tokenize(incoming.text)
        except Invalid as e:
            with contextlib.suppress(NotFound):
                e.usage = find_spec(incoming.text.split())[0].usage_line
            raise
        if not tokens:
            tokens = ["help"]
        spec, rest = find_spec(tokens)
        known = {**spec.flags, "community": str, **({"group": str} if spec.group else {})}
        try:
            args, flags = split_flags(rest, known)
            if len(args) < spec.min_args or (
                spec.max_args is not None and len(args) > spec.max_args
            ):
                raise Invalid("Wrong number of arguments.")
        except Invalid as e:
            e.usage = spec.usage_line
            raise
        community = group = None
        if spec.community:
            community = await self._community(incoming, spec, flags.pop("community", None))
        if spec.group and community is not None:
            group = await self._group(incoming, community, flags.pop("group", None))
        await self._check_need(spec, incoming.sender, community, group)
        request = Request(
            sender=incoming.sender,
            room_id=incoming.room_id,
            event_id=incoming.event_id,
            args=args,
            flags=flags,
            community=community,
            service=self.svc,
            group_room=group,
            thread_root=incoming.thread_root,
        )
        try:
            return await spec.handler(request)
        except Invalid as e:  # a wrong argument: the usage line goes with the reason
            e.usage = e.usage or spec.usage_line
            raise

    async def _community(self, incoming: Incoming, spec: Spec, ref: str | None) -> Community:
        svc = self.svc
        if ref:
            return await svc.find_community(ref)
        here = await svc.community_of_room(incoming.room_id)
        if here is not None:
            return here
        mine = await svc.communities_of(incoming.sender, admin=spec.need >= Need.GROUP_ADMIN)
        if not mine and spec.need >= Need.GROUP_ADMIN:
            # A member asking for an admin command learns that it needs an admin.
            mine = await svc.communities_of(incoming.sender, admin=False)
        if len(mine) == 1:
            return mine[0]
        if not mine:
            raise NotFound("You are not in any community here; name one with --community.")
        names = ", ".join(f"{c.name} ({c.space_id})" for c in mine)
        raise Invalid(f"Which community? Add --community with one of: {names}")

    async def _group(
        self, incoming: Incoming, community: Community, ref: str | None
    ) -> CommunityRoom:
        if ref:
            return await self.svc.find_group(community, ref)
        here = await self.svc.group_of_room(community, incoming.room_id)
        if here is None:
            raise Invalid("Which group? Add --group NAME, or type this in the group's room.")
        return here

    async def _check_need(
        self, spec: Spec, sender: str, community: Community | None, group: CommunityRoom | None
    ) -> None:
        svc = self.svc
        if self.svc.permission(sender) < Permission.MEMBER:
            raise Forbidden("You are not allowed to use this service.")
        if spec.need is Need.CREATOR and svc.permission(sender) < Permission.CREATOR:
            raise Forbidden("You are not allowed to create communities on this server.")
        if community is None or spec.need < Need.MEMBER:
            return
        if not await self._holds(spec.need, sender, community, group):
            raise Forbidden(REFUSALS[spec.need])

    async def _holds(
        self, need: Need, sender: str, community: Community, group: CommunityRoom | None
    ) -> bool:
        """Whether the sender has the role `need` names in this community (or group)."""
        svc, space_id = self.svc, community.space_id
        if need is Need.OWNER:
            return sender == community.owner or svc.permission(sender) is Permission.ADMIN
        if need is Need.ADMIN:
            return await svc.is_admin(space_id, sender)
        if need is Need.GROUP_ADMIN:
            assert group is not None, "declared group=True"
            return await svc.is_admin(space_id, sender) or await svc.is_group_admin(
                group.room_id, sender
            )
        return await svc.is_member(space_id, sender)

    async def send_reply(self, incoming: Incoming, reply: Reply) -> str:
        relates: dict[str, Any] = {"m.in_reply_to": {"event_id": incoming.event_id}}
        if incoming.thread_root:
            relates.update(
                rel_type="m.thread", event_id=incoming.thread_root, is_falling_back=False
            )
        content = {
            "msgtype": "m.notice",
            "body": reply.plain,
            "format": "org.matrix.custom.html",
            "formatted_body": reply.html,
            "m.relates_to": relates,
            "m.mentions": {},
        }
        return await self.svc.gw.send_message(incoming.room_id, "m.room.message", content)
