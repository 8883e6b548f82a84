"""Announcements: `announce` posts for an admin into the announcement room (and groups);
`relay` copies a message of the announcement room into the groups. Both are posts
(`core.posts`): operations that reach every room once, whatever crashes in between.
"""

from __future__ import annotations

import logging
from typing import Any

import nh3
from mautrix.types import EventID, RoomID, UserID

from ..core.notices import Text, lines, say
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
    signed,
)
from ..core.service import Service
from ..db.community import Community
from ..db.room import CommunityRoom
from ..errors import Invalid, NotFound
from ..matrix.errors import MatrixError, is_transient
from ..rules.limits import MAX_LONG_TEXT, check_text
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

    async def _read(self, room_id: RoomID, event_id: EventID) -> dict[str, Any]:
        """The message a command replies to, as the bot reads it."""
        try:
            event = await self.svc.gw.get_event(room_id, event_id)
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
        check_text(text, "announcement", MAX_LONG_TEXT)
        media = None
        if reply_to is not None:
            replied = (await self._read(here, reply_to)).get("content") or {}
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
        event = await self._read(here, reply_to)
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
        plain = str(original.get("body", "")) if has_caption else ""
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
