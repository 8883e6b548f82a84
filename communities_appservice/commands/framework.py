"""Commands: declaration, parsing, permission checks and replies, in one place.

A handler is declared with `@command(...)`, naming its words (one to three), usage, the role it
needs and its flags; it receives a parsed `Request` and returns a `Reply`. The dispatcher does
the rest: it reads the command from the message (mention pills become MXIDs), splits it like a
shell (double quotes group words; an apostrophe is just an apostrophe), picks the community (and,
for commands that act on one group, the group: `--group`, or the group room it was typed in),
checks the sender's role, runs the handler and answers with an `m.notice` threaded to the
command, in the language of the community it is for.
A `UserError` becomes a one-line reply (with the usage line when the syntax was wrong);
anything else is logged with a reference number, and only that number reaches the room.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mautrix.types import EventID, RoomID, UserID

from .. import language
from ..core.hooks import RawEvent, on_event, on_interrupted
from ..core.notices import Text, lines, notice, say, txn_key, verbatim
from ..core.operations import UNFINISHED, Origin
from ..core.service import Service
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Conflict, Forbidden, Invalid, NotFound, UserError, isolated
from ..language import N_
from ..matrix.errors import brief, is_transient
from ..rules.messages import body_text
from ..rules.model import CommunityState, Permission
from .parse import command_text, leading_flags, split_flags, text_arguments, tokenize

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
    Need.MEMBER: N_("Only members of this community can do that."),
    Need.GROUP_ADMIN: N_("Only admins of this community or of this group can do that."),
    Need.ADMIN: N_("Only admins of this community can do that."),
    Need.OWNER: N_("Only the owner of this community can do that."),
}
# The longest command name, in words; longer names are tried first.
MAX_COMMAND_WORDS = 3


@dataclass(frozen=True)
class Reply(Text):
    """A reply with something to send after it, e.g. an image (see commands/links.py)."""

    after: Callable[[Incoming], Awaitable[object]] | None = field(default=None, compare=False)


@dataclass
class Request:
    sender: UserID
    room_id: RoomID
    event_id: EventID
    args: list[str]
    flags: dict[str, Any]
    community: Community | None
    service: Service
    group_room: CommunityRoom | None = None
    thread_root: EventID | None = None
    reply_to: EventID | None = None  # the message the command answers (a rich reply)
    # Text commands (text=True): the message as typed after the prefix, and where the text
    # after `args[:i]` begins in it (`cuts[i]`), so that free text is kept verbatim.
    source: str = ""
    cuts: list[int] = field(default_factory=list)

    def rest(self) -> str:
        return " ".join(self.args)

    @property
    def text(self) -> str:
        """A text command's text after its leading flags, verbatim."""
        return self.source[self.cuts[0] :].strip() if self.cuts else self.rest()

    def text_after(self, n: int, known: Mapping[str, type]) -> tuple[dict[str, Any], str]:
        """A text command's flags right after its first `n` arguments, and the text after
        them, verbatim."""
        flags, end = leading_flags(self.args, known, n)
        return flags, self.source[self.cuts[end] :].strip()

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


Handler = Callable[[Request], Awaitable[Text]]


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
    text: bool = False  # ends with free text: flags only before it, the text kept verbatim
    values: Mapping[str, object] = field(default_factory=dict)  # the summary's {names}

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
    text: bool = False,
    values: Mapping[str, object] | None = None,
) -> Callable[[Handler], Handler]:
    if len(name.split()) > MAX_COMMAND_WORDS:
        raise ValueError(f"command names have at most {MAX_COMMAND_WORDS} words: {name!r}")
    if need is Need.GROUP_ADMIN and not group:
        raise ValueError(f"{name!r}: Need.GROUP_ADMIN needs group=True")

    def register(handler: Handler) -> Handler:
        REGISTRY[name] = Spec(
            name, usage, summary, need, handler, dict(flags or {}), min_args, max_args,
            community, group, text, dict(values or {}),
        )  # fmt: skip
        return handler

    return register


def find_spec(tokens: list[str]) -> tuple[Spec, list[str]]:
    """The command the first words name, the longest match first, and the words after it."""
    for words in range(min(MAX_COMMAND_WORDS, len(tokens)), 0, -1):
        name = " ".join(t.lower() for t in tokens[:words])
        if name in REGISTRY:
            return REGISTRY[name], tokens[words:]
    if tokens:
        raise NotFound("Unknown command {!r}. Send `help` for the list.", " ".join(tokens[:2]))
    raise NotFound("Send `help` for the list of commands.")


# --- dispatching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """A command message: who, where, and how to thread the answer."""

    sender: UserID
    room_id: RoomID
    event_id: EventID
    text: str
    thread_root: EventID | None
    body: str = ""  # the plain body after the prefix (Markdown kept): what text commands read
    reply_to: EventID | None = None


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
        # In a thread, a reply to the thread's last message is only the fallback.
        replied = None if relates.get("is_falling_back") else relates.get("m.in_reply_to")
        replied_id = replied.get("event_id") if isinstance(replied, dict) else None
        body = body_text(content).strip()
        return Incoming(
            sender=UserID(str(event["sender"])),
            room_id=RoomID(str(event["room_id"])),
            event_id=EventID(str(event["event_id"])),
            text=rest,
            thread_root=EventID(str(thread)) if thread else None,
            body=body[len(self.prefix) :] if body.lower().startswith(self.prefix.lower()) else "",
            reply_to=EventID(str(replied_id)) if isinstance(replied_id, str) else None,
        )

    async def handle(self, incoming: Incoming) -> EventID:
        """Run one command and send its reply; returns the reply's event id."""
        reply: Text | None = None
        with isolated(log, "command failed in %s", incoming.room_id) as failure:
            try:
                reply = await self.run(incoming)
            except UserError as e:
                reply = refusal(e, self.prefix)
            except Exception as e:
                if not is_transient(e):
                    raise
                log.warning(
                    "command in %s: no answer from the homeserver (%s)", incoming.room_id, brief(e)
                )
                reply = say(
                    "⏳ The homeserver is not answering at the moment: try again in a minute."
                )
        if reply is None:
            reply = say("⚠️ Something went wrong on our side (reference {}).", failure.ref)
        event_id = await self.send_reply(incoming, reply)
        if isinstance(reply, Reply) and reply.after is not None:
            with isolated(log, "sending after the reply failed in %s", incoming.room_id):
                await reply.after(incoming)
        return event_id

    async def run(self, incoming: Incoming) -> Text:
        try:
            tokens = tokenize(incoming.text)
        except Invalid as e:
            named: Spec | None = None
            with contextlib.suppress(NotFound):
                named = find_spec(incoming.text.split())[0]
            if named is None or not named.text:
                e.usage = named.usage_line if named else None
                raise
            tokens = tokenize(incoming.text, strict=False)  # a quote in free text is text
        if not tokens:
            tokens = ["help"]
        spec, rest = find_spec(tokens)
        known = {**spec.flags, "community": str, **({"group": str} if spec.group else {})}
        words = len(tokens) - len(rest)
        source, cuts = "", list[int]()
        try:
            if spec.text:  # flags first, then the text as typed (Markdown: the plain body)
                source = incoming.body or incoming.text
                args, flags, cuts = text_arguments(source, words, known)
            else:
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
            if community.state == CommunityState.DEACTIVATED and spec.name != "info":
                raise Conflict("{} is deactivated: only info answers for it.", community.name)
        if community is not None:  # the reply is in the language of the community it is for
            language.use(self.svc.language_for(community))
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
            reply_to=incoming.reply_to,
            source=source,
            cuts=cuts,
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
        here = await svc.community_of_room(incoming.room_id, deactivated=True)
        if here is not None:
            return here
        mine = await svc.communities_of(incoming.sender, admin=spec.need >= Need.GROUP_ADMIN)
        if not mine and spec.need >= Need.GROUP_ADMIN:
            # A member asking for an admin command learns that it needs an admin.
            mine = await svc.communities_of(incoming.sender, admin=False)
        if not mine:  # only a deactivated one? It answers that it is.
            mine = await svc.communities_of(
                incoming.sender, admin=False, state=CommunityState.DEACTIVATED
            )
        if len(mine) == 1:
            return mine[0]
        if not mine:
            raise NotFound("You are not in any community here; name one with --community.")
        names = ", ".join(f"{c.name} ({c.space_id})" for c in mine)
        raise Invalid("Which community? Add --community with one of: {}", names)

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
        self, spec: Spec, sender: UserID, community: Community | None, group: CommunityRoom | None
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
        self, need: Need, sender: UserID, community: Community, group: CommunityRoom | None
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

    async def send_reply(self, incoming: Incoming, reply: Text) -> EventID:
        """The one reply to a command, sent under a transaction id of the command's: sent
        again (the command retried, or answered after a crash cut it short), the homeserver
        returns the reply it already made instead of a second one."""
        content = notice(reply, reply_to=incoming.event_id, thread_root=incoming.thread_root)
        txn_id = txn_key("reply", incoming.event_id)
        return await self.svc.gw.send_message(incoming.room_id, "m.room.message", content, txn_id)

    async def interrupted(self, event: RawEvent) -> None:
        """A command the previous run was handling when it died: an operation it started
        reports by itself when finished; otherwise the sender learns it may not be done."""
        incoming = self.parse_incoming(event)
        if incoming is None:
            return
        op = await self.svc.db.operations.for_event(incoming.event_id)
        if op is None:
            await self.send_reply(incoming, say(INTERRUPTED))
        elif op.state not in UNFINISHED:  # over, but its answer may never have been sent
            await self.send_reply(incoming, verbatim(op.outcome))


def refusal(error: UserError, prefix: str) -> Text:
    """A `UserError` as the one-line reply (and the usage line, when the syntax was wrong)."""
    if error.args_:
        reply = say(error.template, *error.args_, before="⚠️ ")
    else:
        reply = say("⚠️ {}", error.message)
    if error.usage:
        reply = lines(reply, say("Usage: <code>{} {}</code>", prefix, error.usage))
    return reply


INTERRUPTED = (
    "⚠️ The service restarted while it was handling this command, so it may not be done. "
    "Check (for example with <code>info</code> or <code>log</code>) and send it again if not."
)


@on_event("m.room.message")
async def _commands(svc: Service, event: RawEvent) -> None:
    dispatcher = Dispatcher(svc)
    incoming = dispatcher.parse_incoming(event)
    if incoming is not None:
        await dispatcher.handle(incoming)


@on_interrupted("m.room.message")
async def _interrupted(svc: Service, event: RawEvent) -> None:
    await Dispatcher(svc).interrupted(event)
