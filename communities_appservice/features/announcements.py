"""Announcements: `announce` posts for an admin into the announcement room (and groups);
`relay` copies a message of the announcement room into the groups. Both are posts
(`core.posts`): operations that reach every room once, whatever crashes in between.

Replies: with `replies threads` members may answer announcements in their threads. In an
encrypted room the homeserver sees every message as `m.room.encrypted`, so its power levels
can only let all of a member's encrypted events in or none; the bot lets them in and takes
down at once what is not a reaction or a vote in an open poll (`features.polls` opens the
room to members while one is) or, in `threads` mode, a thread reply or an edit of one's own
reply, judged from the cleartext `m.relates_to` (no decryption needed).
"""

from __future__ import annotations

import logging
from typing import Any

import nh3
from mautrix.types import EventID, RoomID, UserID

from ..core.dms import dm_with
from ..core.hooks import on_arrival
from ..core.notices import Text, lines, notice, say, txn_key
from ..core.operations import Origin
from ..core.posts import (
    Outcome,
    Post,
    captioned,
    groups_named,
    is_media,
    markdown,
    message,
    post,
    read_replied,
    signed,
)
from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Invalid, NotFound
from ..language import N_
from ..matrix.errors import is_transient
from ..rules.limits import MAX_LONG_TEXT, check_text
from ..rules.messages import body_text
from ..rules.model import AuditAction, Role

log = logging.getLogger("communities.announcements")

# The HTML a relayed message keeps: the tags the Matrix specification suggests clients allow
# in `formatted_body` (m.room.message, "HTML"), nothing else (no attributes but these).
_TAGS = {
    "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup",
    "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div", "table",
    "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "details", "summary",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}, "code": {"class"}}


def clean_html(html: str) -> str:
    """Someone else's HTML, reduced to what Matrix messages may carry."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"https", "http", "mailto"},
        clean_content_tags={"mx-reply", "script", "style"},  # gone with what they hold
        link_rel=None,
    )


class Announcements:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def _announcements(self, community: Community) -> CommunityRoom:
        room = await self.svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS)
        if room is None:
            raise NotFound("This community has no announcement room.")
        return room

    async def announce(
        self,
        community: Community,
        sender: UserID,
        text: str,
        groups: str | None,
        here: RoomID,
        reply_to: EventID | None,
        origin: Origin,
    ) -> tuple[Outcome, list[CommunityRoom]]:
        """Post `text` (Markdown) in the sender's name to the announcement room and the
        groups named; as a reply to a media message, with that media."""
        check_text(text, N_("announcement"), MAX_LONG_TEXT)
        media = None
        if reply_to is not None:
            replied = (await read_replied(self.svc, here, reply_to)).get("content") or {}
            media = replied if is_media(replied) else None
        if not text.strip() and media is None:
            raise Invalid("What should I announce? Add the text (or reply to an image or file).")
        rooms = [
            await self._announcements(community),
            *await groups_named(self.svc, community, groups),
        ]
        body = signed(markdown(text) if text.strip() else Text("", ""), sender)
        content = captioned(media, body) if media is not None else message(body)
        key = f"announce {origin.event_id}"
        done = await self._post(community, sender, key, content, media, rooms, origin)
        await self.svc.audit(
            community.space_id, sender, AuditAction.ANNOUNCE, f"{len(done.sent)} rooms"
        )
        return done, rooms

    async def relay(
        self,
        community: Community,
        sender: UserID,
        groups: str | None,
        here: RoomID,
        reply_to: EventID | None,
        origin: Origin,
    ) -> tuple[Outcome, list[CommunityRoom]]:
        """Copy the message `reply_to` of the announcement room (text, formatting, media)
        into the groups named (every group without `--groups`), attributed to its author."""
        announcements = await self._announcements(community)
        if reply_to is None or here != announcements.room_id:
            raise Invalid("Send relay as a reply to a message in the announcement room.")
        event = await read_replied(self.svc, here, reply_to)
        rooms = await groups_named(self.svc, community, groups or "all")
        if not rooms:
            raise Invalid("This community has no groups to relay to.")
        content, media = self.copy_of(event)
        key = f"relay {reply_to} by {origin.event_id}"
        done = await self._post(community, sender, key, content, media, rooms, origin)
        await self.svc.audit(
            community.space_id, sender, AuditAction.RELAY, reply_to, f"{len(done.sent)} groups"
        )
        return done, rooms

    def copy_of(self, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A message's content to post again elsewhere: its text and formatting (HTML
        cleaned), its media, and who wrote it (the bot's own posts are signed already)."""
        original = dict(event.get("content") or {})
        author = UserID(str(event.get("sender", "")))
        media = original if is_media(original) else None
        has_caption = media is None or original.get("filename") not in (None, original.get("body"))
        plain = body_text(original) if has_caption else ""
        rich = original.get("formatted_body")
        if original.get("format") == "org.matrix.custom.html" and isinstance(rich, str):
            text = Text(plain, clean_html(rich))
        else:
            text = say("{}", plain) if plain else Text("", "")
        if author != self.svc.bot:
            text = signed(text, author, relayed=True)
        if media is not None:
            return captioned(media, text if text.plain else None), media
        if not text.plain:
            raise Invalid("There is nothing in that message to relay.")
        return {**message(text), "msgtype": original.get("msgtype", "m.text")}, None

    async def _post(
        self,
        community: Community,
        sender: UserID,
        key: str,
        content: dict[str, Any],
        media: dict[str, Any] | None,
        rooms: list[CommunityRoom],
        origin: Origin,
    ) -> Outcome:
        params = Post(
            key=key,
            content=content,
            rooms=[r.room_id for r in rooms],
            media=media,
            space_id=community.space_id,
            names={r.room_id: r.name for r in rooms},
        )
        return await post(self.svc, params, sender, origin)


def summary(done: Outcome, rooms: list[CommunityRoom], *, verb: str) -> Text:
    """The acknowledgement: how many rooms got it, and which did not (named)."""
    failed = [r for r in rooms if r.room_id in done.failed]
    groups = sum(1 for r in rooms if r.role == Role.GROUP and r.room_id in done.sent)
    in_announcements = any(r.role == Role.ANNOUNCEMENTS and r.room_id in done.sent for r in rooms)
    if verb == "relay":
        said = say("Relayed into {} of {} groups.", groups, len(rooms))
    elif in_announcements:
        said = say("Announced in the announcement room and {} groups.", groups)
    else:
        said = say("Announced in {} groups.", groups)
    if failed:
        names = ", ".join(r.name for r in failed)
        said = lines(said, say("⚠️ Not posted in: {} (the bot may have been removed).", names))
    return said


# --- replies to announcements ------------------------------------------------------------

REPLY_TOPIC = "announcement replies"
# What members may post in the announcement room is told by the cleartext `m.relates_to`
# (an encrypted event carries it outside the ciphertext): a reaction, a vote in an open
# poll; with replies in threads, a thread reply (under an announcement: only admins post
# at the top) or an edit, checked against what it edits.
MEMBER_MESSAGES = (
    "m.room.encrypted",
    "m.room.message",
    "m.sticker",
    "m.poll.start",
    "org.matrix.msc3381.poll.start",
)


async def set_replies(svc: Service, community: Community, sender: UserID, mode: str) -> None:
    """`threads` or `off`: recorded, then written into the announcement room's power levels
    under the community's lock (reconciliation keeps them so)."""
    if mode not in ("threads", "off"):
        raise Invalid("Replies are threads or off, not {!r}.", mode)
    async with svc.ops.lock(community.space_id):
        await svc.db.communities.set_replies(community.space_id, mode)
        fresh = await svc.db.communities.get(community.space_id)
        room = await svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS)
        if fresh is not None and room is not None:
            await svc.apply_room_power(fresh, room)
    await svc.audit(community.space_id, sender, AuditAction.REPLIES, mode)


async def _allowed(
    svc: Service, room_id: RoomID, sender: UserID, relates: Any, threads: bool
) -> bool:
    """Whether what `relates` says makes a member's event welcome in the announcement room:
    a reaction; a vote (a reference to an open poll posted there); with `threads`, a thread
    reply or an edit of one's own."""
    if not isinstance(relates, dict):
        return False
    relation = relates.get("rel_type")
    if relation == "m.annotation":
        return True
    target = relates.get("event_id")
    if not isinstance(target, str):
        return False
    if relation == "m.reference":
        poll = await svc.db.polls.by_event(room_id, target)
        return poll is not None and poll.is_open
    if not threads:
        return False
    if relation == "m.thread":
        return True
    if relation != "m.replace":
        return False
    try:  # an edit of the sender's own thread reply
        edited = await svc.gw.get_event(room_id, EventID(target))
    except Exception as e:
        if is_transient(e):
            raise
        return False  # gone or unreadable: judged by what the edit says
    original = (edited.get("content") or {}).get("m.relates_to") or {}
    return edited.get("sender") == sender and original.get("rel_type") == "m.thread"


@on_arrival(*MEMBER_MESSAGES)
async def _only_replies(svc: Service, event: dict[str, Any]) -> None:
    """A member's message in the announcement room that is not a thread reply, a reaction,
    a vote or an edit of their own reply is taken down at once, and they are told why, once."""
    room_id, sender = RoomID(str(event.get("room_id"))), UserID(str(event.get("sender")))
    if sender == svc.bot or "state_key" in event:
        return
    room = await svc.db.rooms.get(room_id)
    if room is None or room.role != Role.ANNOUNCEMENTS:
        return
    community = await svc.db.communities.get(room.space_id)
    if community is None or await svc.is_admin(room.space_id, sender):
        return
    content = event.get("content") or {}
    threads = svc.replies_mode(community) == "threads"
    if await _allowed(svc, room_id, sender, content.get("m.relates_to"), threads):
        return
    event_id = EventID(str(event.get("event_id")))
    await svc.gw.redact(
        room_id, event_id, say("Only thread replies are open to members here").plain
    )
    log.info("took down %s of %s in the announcements of %s", event_id, sender, room.space_id)
    await svc.audit(room.space_id, sender, AuditAction.REPLY_REMOVED, event_id)
    if not await svc.db.told_once.claim(room.space_id, sender, REPLY_TOPIC, now_ms()):
        return
    if threads:
        text = say(
            "Your message in {} was taken down: members answer an announcement in its thread "
            "(“Reply in thread”), not in the room itself.",
            room.name,
        )
    else:
        text = say("Your message in {} was taken down: only admins post there.", room.name)
    dm = await dm_with(svc, sender)
    await svc.gw.send_message(dm, "m.room.message", notice(text), txn_key("told", event_id))
