"""Invite links: one alias per community in the service's namespace, shown as a matrix.to link
and a QR code.

The alias says what the link is for: `#<alias_prefix><slug>-<4 random letters/digits>`, the
slug made of the community's name in its own script (`#communities_parents-berlin-x7k2`,
`#communities_北京家长会-0ceq`); a name without letters or digits gets 8 random ones. It
points at the community's space; the bot creates it through the client API, so the
homeserver answers it without asking us. `reset` deletes the old alias before making a new
one (a new suffix), so the old link stops working even when making the new one fails. In
`invite` mode there is no link: the space admits nobody through it.
"""

from __future__ import annotations

import io
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass

import segno
from mautrix.types import RoomID, UserID

from ..core.service import Service
from ..db import now_ms
from ..db.community import Community
from ..db.invite_link import InviteLink
from ..errors import Conflict, Forbidden
from ..matrix.errors import MatrixError
from ..matrix.gateway import matrix_to
from ..rules.model import AuditAction, JoinMode

TOKEN_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_LENGTH = 8  # the random part of an alias whose name gives no slug
SUFFIX_LENGTH = 4  # the random part after a slug
SLUG_LENGTH = 40  # characters of the name kept, at most
# A fresh random alias is taken only by bad luck; try a few before giving up.
ALIAS_ATTEMPTS = 5
QR_FILENAME = "invite-link.png"
QR_SCALE = 8
QR_BORDER = 4


def slug(name: str) -> str:
    """The name's letters and digits, any script, lower case, words joined by '-'."""
    words = "".join(c if c.isalnum() else " " for c in unicodedata.normalize("NFC", name))
    return "-".join(words.lower().split())[:SLUG_LENGTH].strip("-")


def new_alias(prefix: str, domain: str, name: str = "") -> str:
    readable = slug(name)
    length = SUFFIX_LENGTH if readable else TOKEN_LENGTH
    token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))
    return f"#{prefix}{readable}-{token}:{domain}" if readable else f"#{prefix}{token}:{domain}"


def is_link_alias(alias: str, prefix: str, domain: str) -> bool:
    """An alias `new_alias` could have made."""
    token = rf"[a-z0-9]{{{TOKEN_LENGTH}}}"
    slugged = rf"[^\W_]+(?:-[^\W_]+)*-[a-z0-9]{{{SUFFIX_LENGTH}}}"
    pattern = rf"#{re.escape(prefix)}(?:{token}|{slugged}):{re.escape(domain)}"
    return re.fullmatch(pattern, alias) is not None


@dataclass(frozen=True)
class QrImage:
    png: bytes
    width: int
    height: int


def qr_png(text: str) -> QrImage:
    """A PNG QR code that encodes exactly `text`."""
    code = segno.make(text, micro=False, error="m")
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=QR_SCALE, border=QR_BORDER)
    width, height = code.symbol_size(scale=QR_SCALE, border=QR_BORDER)
    return QrImage(buffer.getvalue(), int(width), int(height))


@dataclass(frozen=True)
class Link:
    alias: str
    created: bool

    @property
    def url(self) -> str:
        return matrix_to(self.alias)


class Links:
    def __init__(self, service: Service) -> None:
        self.svc = service

    async def link(self, community: Community, sender: UserID) -> Link:
        """The community's link, made on first use; a stored alias that no longer resolves
        to the space is replaced rather than revived."""
        self._check_mode(community)
        stored = await self.svc.db.invite_links.get(community.space_id)
        if stored is not None:
            if await self.svc.gw.resolve_alias(stored.alias) == community.space_id:
                return Link(stored.alias, created=False)
            await self.svc.db.invite_links.delete(community.space_id)
        alias = await self._create(community)
        await self.svc.audit(community.space_id, sender, AuditAction.LINK_CREATE, alias)
        return Link(alias, created=True)

    async def reset(self, community: Community, sender: UserID) -> Link:
        """Delete the old alias (so the old link stops working), then make a new one."""
        self._check_mode(community)
        stored = await self.svc.db.invite_links.get(community.space_id)
        if stored is not None:
            await self.svc.gw.delete_alias(stored.alias)
            await self.svc.db.invite_links.delete(community.space_id)
        alias = await self._create(community)
        old = stored.alias if stored else ""
        await self.svc.audit(
            community.space_id, sender, AuditAction.LINK_RESET, alias, f"replaced {old}"
        )
        return Link(alias, created=True)

    async def upload_qr(self, link: Link, room_id: RoomID) -> dict[str, object]:
        """Upload the link's QR code for a message in `room_id` (encrypted when the room is);
        returns the content of an `m.image` event showing it."""
        image = qr_png(link.url)
        media = await self.svc.gw.media(room_id, image.png, "image/png", QR_FILENAME)
        return {
            "msgtype": "m.image",
            "body": QR_FILENAME,
            **media,
            "info": {
                "mimetype": "image/png",
                "size": len(image.png),
                "w": image.width,
                "h": image.height,
            },
        }

    def _check_mode(self, community: Community) -> None:
        if community.join_mode == JoinMode.INVITE:
            prefix = self.svc.config.communities.command_prefix
            raise Forbidden(
                "{} is invite-only, so a link would let nobody in; switch with "
                "`{} join approval` or `{} join open` first.",
                community.name,
                prefix,
                prefix,
            )

    async def _create(self, community: Community) -> str:
        config = self.svc.config
        for _ in range(ALIAS_ATTEMPTS):
            alias = new_alias(config.alias_prefix, config.homeserver.domain, community.name)
            try:
                await self.svc.gw.create_alias(alias, community.space_id)
            except MatrixError as e:
                if e.status == 409:
                    continue
                raise
            await self.svc.db.invite_links.put(InviteLink(community.space_id, alias, now_ms()))
            return alias
        raise Conflict("Could not find a free invite alias; try again.")
