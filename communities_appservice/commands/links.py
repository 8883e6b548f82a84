"""link [reset] [--qr]: the community's invite link, and its QR code as an image."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import Invalid
from ..links import Link, Links
from .framework import Incoming, Need, Reply, Request, command, say

log = logging.getLogger("communities.commands.links")


@command(
    "link",
    "[reset] [--qr]",
    "the community's invite link (reset: replace it, the old one stops working)",
    Need.ADMIN,
    flags={"qr": bool},
    max_args=1,
)
async def link(req: Request) -> Reply:
    if req.args and req.args[0].lower() != "reset":
        raise Invalid(f"Unknown word {req.args[0]!r}; only `reset` may follow `link`.")
    links = Links(req.service)
    if req.args:
        made = await links.reset(req.space, req.sender)
    else:
        made = await links.link(req.space, req.sender)
    reply = link_reply(req.space.name, made, reset=bool(req.args))
    if not req.flags.get("qr"):
        return reply
    image = await links.upload_qr(made, req.room_id)
    return Reply(reply.plain, reply.html, after=_image_sender(req, image))


def link_reply(name: str, made: Link, *, reset: bool) -> Reply:
    url = made.url
    if reset:
        return say(
            'New invite link to <b>{}</b>: <a href="{}">{}</a><br>The old link no longer works.',
            name,
            url,
            url,
        )
    return say('Invite link to <b>{}</b>: <a href="{}">{}</a>', name, url, url)


def _image_sender(req: Request, content: dict[str, Any]) -> Callable[[Incoming], Awaitable[None]]:
    """Sends the QR image after the text reply, in the same thread when there is one."""

    async def send(incoming: Incoming) -> None:
        event = dict(content)
        if incoming.thread_root:
            event["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": incoming.thread_root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": incoming.event_id},
            }
        try:
            await req.service.gw.send_message(incoming.room_id, "m.room.message", event)
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("sending the QR code failed (ref %s) in %s", ref, incoming.room_id)

    return send
