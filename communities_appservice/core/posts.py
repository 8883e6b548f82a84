"""Speaking to many rooms at once: one message posted into rooms of a community (fan-out).

A post is an operation (`core.operations`): recorded before its first send, so that a crash
loses nothing; each room's send is a step saved as soon as the homeserver answers, so that a
resumed post skips the rooms that have it; and each send carries a transaction id made of
the post and the room, so that a send the crash cut short between the homeserver's answer
and our save is answered with the event already made rather than made twice (Synapse keeps
the ids of sends that name the bot's device for a day in its database; see
docs/architecture.md). Rooms are sent to with bounded concurrency; one that refuses (the bot
was removed from it) is reported by name and does not stop the others; one the homeserver
does not answer keeps the post running, and only the rooms left are sent again.

Media (an image, a video, a file) is downloaded once, decrypted when it came encrypted, and
uploaded again for each encrypted room with that room's own key, as Matrix requires (a
room's members can decrypt only what was encrypted for it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt
from mautrix.types import EventID, RoomID, UserID

from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Invalid, NotFound
from ..matrix.errors import MatrixError, Transient, is_transient
from ..matrix.gateway import matrix_to
from .notices import Text, lines, say, txn_key
from .operations import NOWHERE, Origin, operation
from .run import Params, Run

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("communities.posts")
SENDS_AT_ONCE = 8  # rooms sent to concurrently by one post
MAX_POST_BYTES = 40_000  # a post's content as JSON: encrypted, still under 64 KiB
MEDIA_TYPES = ("m.image", "m.video", "m.audio", "m.file")

# CommonMark, raw HTML in the source escaped (never passed through), single line breaks kept
# (people type announcements as lines), links only with safe schemes (the library's check).
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("strikethrough")


def markdown(text: str) -> Text:
    """Someone's text as a message: the plain body as typed, the HTML rendered from it."""
    rendered = _MARKDOWN.render(text).strip()
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        rendered = rendered[3:-4]  # one paragraph: no margins around it in clients
    return Text(plain=text.strip(), html=rendered)


def message(text: Text) -> dict[str, Any]:
    """The content of an `m.text` message the bot posts for someone (no mentions)."""
    return {
        "msgtype": "m.text",
        "body": text.plain,
        "format": "org.matrix.custom.html",
        "formatted_body": text.html,
        "m.mentions": {},
    }


def captioned(source: dict[str, Any], caption: Text | None) -> dict[str, Any]:
    """A media message's content to forward, without its file (each room gets its own):
    the type, the file's name and info, and `caption` (MSC2530: the body is the caption,
    `filename` the file's name)."""
    info = {
        k: v for k, v in dict(source.get("info") or {}).items() if not k.startswith("thumbnail")
    }
    filename = str(source.get("filename") or source.get("body") or "file")
    content: dict[str, Any] = {
        "msgtype": source.get("msgtype", "m.file"),
        "body": filename,
        "filename": filename,
        "info": info,
        "m.mentions": {},
    }
    if caption is not None and caption.plain:
        content.update(
            body=caption.plain, format="org.matrix.custom.html", formatted_body=caption.html
        )
    return content


def is_media(content: dict[str, Any]) -> bool:
    return content.get("msgtype") in MEDIA_TYPES and bool(content.get("url") or content.get("file"))


def signed(text: Text, author: UserID, *, relayed: bool = False) -> Text:
    """`text` with a last line naming who it is from (a pill: clients show the name; no
    mention, so nobody is notified)."""
    link = matrix_to(author)
    if relayed:
        line = Text(
            say("— relayed from {}", author).plain,
            say('— relayed from <a href="{}">{}</a>', link, author).html,
        )
    else:
        line = Text(say("— {}", author).plain, say('— <a href="{}">{}</a>', link, author).html)
    return lines(text, line) if text.plain else line


async def groups_named(svc: Service, community: Community, spec: str | None) -> list[CommunityRoom]:
    """`--groups`: none (not given), `all`, or names separated by commas; an unknown name
    is refused before anything is sent."""
    if spec is None:
        return []
    groups = await svc.groups(community.space_id)
    if spec.strip().lower() == "all":
        return groups
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise Invalid("--groups needs all or group names separated by commas.")
    return [await svc.find_group(community, name) for name in names]


@dataclass(frozen=True)
class Post(Params):
    """One message for several rooms. `key` names the post uniquely (what asked for it:
    `announce $event`, `schedule 12 at 1700000000000`): every room's transaction id is made
    of it. `media` is the content of the message whose file is forwarded with it."""

    key: str
    content: dict[str, Any]
    rooms: list[str]
    media: dict[str, Any] | None = None
    space_id: str = ""
    names: dict[str, str] = field(default_factory=dict)  # room → its name, for the report
    event_type: str = "m.room.message"
    # room → the event of that room the post refers to (`m.reference`: a poll's end)
    references: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """Where a post went: the event sent in each room that has it, the refusal of each that
    did not take it."""

    sent: dict[RoomID, EventID]
    failed: dict[RoomID, str]


async def read_replied(svc: Service, room_id: RoomID, event_id: EventID) -> dict[str, Any]:
    """The message a command replies to, as the bot reads it (decrypted)."""
    try:
        event = await svc.gw.get_event(room_id, event_id)
    except MatrixError as e:
        if is_transient(e):
            raise
        raise NotFound("I cannot see the message this replies to.") from None
    except Exception as e:  # its keys never reached the bot
        if is_transient(e):
            raise
        raise Invalid("I cannot read the message this replies to (it is encrypted).") from e
    if event.get("type") != "m.room.message":
        raise Invalid("This replies to something that is not a message.")
    return event


def check_fits(content: dict[str, Any]) -> None:
    """A post must fit in one Matrix event (64 KiB) once encrypted (its ciphertext is base64,
    a third larger): refused before anything is sent."""
    size = len(json.dumps(content, ensure_ascii=False).encode())
    if size > MAX_POST_BYTES:
        raise Invalid(
            "That is too long to post: {:,} bytes with its formatting, at most {:,}.",
            size,
            MAX_POST_BYTES,
        )


async def post(svc: Service, params: Post, actor: UserID, origin: Origin = NOWHERE) -> Outcome:
    """Post `params` as an operation; where it went. Raises `Pending` when the homeserver
    stopped answering (the post goes on by itself and reports where it was asked for)."""
    check_fits(params.content)
    return outcome(await svc.ops.run(params, actor, origin, params.space_id))


def outcome(run: Run[Any]) -> Outcome:
    sent: dict[RoomID, EventID] = {}
    failed: dict[RoomID, str] = {}
    for key, value in run.results("sent:").items():
        room = RoomID(key.removeprefix("sent:"))
        if isinstance(value, dict) and value.get("event_id"):
            sent[room] = EventID(str(value["event_id"]))
        elif isinstance(value, dict):
            failed[room] = str(value.get("failed", "refused"))
    return Outcome(sent, failed)


@operation("post", Post)
async def _post(svc: Service, run: Run[Post]) -> str:
    await deliver(svc, run, run.params)
    return report(outcome(run), run.params).plain


Sent = Callable[[RoomID, EventID], Awaitable[None]]


async def deliver(svc: Service, run: Run[Any], p: Post, on_sent: Sent | None = None) -> None:
    """The sends of post `p`, as steps of `run` (an operation of kind post, or one that
    posts among other steps); `on_sent` records a room's event before its step is saved
    (so again after a crash, with the same event: it must be safe to repeat)."""
    source: list[bytes] = []  # downloaded once per attempt, on first need
    fetching = asyncio.Lock()

    async def media_for(room: RoomID) -> dict[str, Any]:
        assert p.media is not None
        async with fetching:
            if not source:
                source.append(await svc.gw.download(p.media))
        info = p.content.get("info") or {}
        mimetype = str(info.get("mimetype") or "application/octet-stream")
        return await svc.gw.media(room, source[0], mimetype, str(p.content.get("filename", "")))

    async def send(room: RoomID) -> dict[str, str]:
        content = dict(p.content)
        if room in p.references:
            content["m.relates_to"] = {"rel_type": "m.reference", "event_id": p.references[room]}
        try:
            if p.media is not None:
                content.update(await media_for(room))
            event_id = await svc.gw.send_message(
                room, p.event_type, content, txn_key("post", p.key, room)
            )
        except MatrixError as e:
            if is_transient(e):
                raise
            log.warning("post %d: %s refused it (%s)", run.op.id, room, e.errcode)
            return {"failed": e.errcode}
        if on_sent is not None:
            await on_sent(room, event_id)
        return {"event_id": str(event_id)}

    limit = asyncio.Semaphore(SENDS_AT_ONCE)

    async def one(room: RoomID) -> None:
        async with limit:
            await run.step(f"sent:{room}", lambda: send(room))

    results = await asyncio.gather(
        *(one(RoomID(r)) for r in p.rooms), return_exceptions=True
    )  # every room gets its turn, whatever another's fate
    for result in results:
        if isinstance(result, BaseException):
            if is_transient(result):
                raise Transient(f"{sum(isinstance(r, BaseException) for r in results)} rooms")
            raise result


def report(done: Outcome, p: Post) -> Text:
    """How many rooms have the post, and which did not take it (by name)."""
    if not done.failed:
        return say("Posted in {} rooms.", len(done.sent))
    names = ", ".join(p.names.get(room, room) for room in done.failed)
    return say(
        "Posted in {} of {} rooms; these did not take it: {}.", len(done.sent), len(p.rooms), names
    )
