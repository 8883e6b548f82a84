"""announce, relay, replies."""

from __future__ import annotations

from ..core.notices import Text, say
from ..errors import Forbidden
from ..features.announcements import Announcements, set_replies, summary
from .framework import REFUSALS, Need, Request, command


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


@command(
    "replies",
    "[threads|off]",
    "whether members may answer announcements in threads (admins set it)",
    Need.MEMBER,
    max_args=1,
)
async def replies(req: Request) -> Text:
    svc = req.service
    if not req.args:
        mode = svc.replies_mode(req.space)
        if mode == "threads":
            return say("Members may answer announcements in their threads.")
        return say("Only admins post in the announcement room; members react.")
    if not await svc.is_admin(req.space.space_id, req.sender):
        raise Forbidden(REFUSALS[Need.ADMIN])
    mode = req.args[0].lower()
    await set_replies(svc, req.space, req.sender, mode)
    if mode == "threads":
        return say(
            "Members may now answer announcements in their threads; anything else they post "
            "in the announcement room is taken down."
        )
    return say("Members can no longer post in the announcement room (they can still react).")
