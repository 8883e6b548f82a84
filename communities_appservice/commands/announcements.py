"""announce, relay."""

from __future__ import annotations

from ..core.notices import Text
from ..features.announcements import Announcements, summary
from .framework import Need, Request, command


@command(
    "announce",
    "[--groups all|NAME,…] <text>",
    "post to the announcement room (and to groups) in your name; as a reply to an image or "
    "file, with it",
    Need.ADMIN,
    flags={"groups": str},
    text=True,
)
async def announce(req: Request) -> Text:
    done, rooms = await Announcements(req.service).announce(
        req.space,
        req.sender,
        req.text,
        req.flags.get("groups"),
        req.room_id,
        req.reply_to,
        req.origin,
    )
    return summary(done, rooms, verb="announce")


@command(
    "relay",
    "[--groups all|NAME,…]",
    "as a reply to a message in the announcement room: copy it into every group",
    Need.ADMIN,
    flags={"groups": str},
    max_args=0,
)
async def relay(req: Request) -> Text:
    done, rooms = await Announcements(req.service).relay(
        req.space, req.sender, req.flags.get("groups"), req.room_id, req.reply_to, req.origin
    )
    return summary(done, rooms, verb="relay")
