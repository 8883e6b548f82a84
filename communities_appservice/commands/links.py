"""link [reset] [--qr]: the community's invite link, and its QR code as an image."""

from __future__ import annotations

from ..core.notices import Text, say, send_after
from ..errors import Invalid
from ..features.links import Link, Links
from .framework import Need, Reply, Request, command


@command(
    "link",
    "[reset] [--qr]",
    "the community's invite link (reset: replace it, the old one stops working)",
    Need.ADMIN,
    flags={"qr": bool},
    max_args=1,
)
async def link(req: Request) -> Text:
    if req.args and req.args[0].lower() != "reset":
        raise Invalid("Unknown word {!r}; only `reset` may follow `link`.", req.args[0])
    links = Links(req.service)
    if req.args:
        made = await links.reset(req.space, req.sender)
    else:
        made = await links.link(req.space, req.sender)
    reply = link_reply(req.space.name, made, reset=bool(req.args))
    if not req.flags.get("qr"):
        return reply
    image = await links.upload_qr(made, req.room_id)
    return Reply(reply.plain, reply.html, after=send_after(req.service, image))


def link_reply(name: str, made: Link, *, reset: bool) -> Text:
    url = made.url
    if reset:
        return say(
            'New invite link to <b>{}</b>: <a href="{}">{}</a><br>The old link no longer works.',
            name,
            url,
            url,
        )
    return say('Invite link to <b>{}</b>: <a href="{}">{}</a>', name, url, url)
