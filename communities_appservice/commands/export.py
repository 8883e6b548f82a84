"""export: the community's records as an archive, sent encrypted into the admins room."""

from __future__ import annotations

from ..core.notices import Text, say, txn_key
from ..errors import NotFound
from ..features import export as feature
from ..rules.model import Role
from .framework import Need, Request, command


@command(
    "export",
    "",
    "an archive of the community's records (groups, admins, members, join requests, audit "
    "log, scheduled posts, events as .ics, polls and tallies, daily stats as CSV), sent to "
    "the admins room; never message content",
    Need.ADMIN,
    max_args=0,
)
async def export(req: Request) -> Text:
    svc, space = req.service, req.space
    admins = await svc.room_of_role(space.space_id, Role.ADMINS)
    if admins is None:
        raise NotFound("This community has no admins room to send the archive to.")
    data, counts = await feature.build(svc, space)
    name = f"{feature.file_name(space)}.zip"
    content: dict[str, object] = {
        "msgtype": "m.file",
        "body": name,
        "filename": name,
        "info": {"mimetype": "application/zip", "size": len(data)},
        **await svc.gw.media(admins.room_id, data, "application/zip", name),
    }
    # Once per command, also when its handling is retried.
    await svc.gw.send_message(
        admins.room_id, "m.room.message", content, txn_key("export", req.event_id)
    )
    where = "below" if req.room_id == admins.room_id else "in the admins room"
    return say(
        "The archive of {} is {}. Members: {}, admins: {}, groups: {}, audit log entries: {},"
        " scheduled posts: {}, polls: {}, events: {}.",
        space.name, where, counts["members"], counts["admins"], counts["groups"],
        counts["audit_log"], counts["scheduled_posts"], counts["polls"], counts["events"],
    )  # fmt: skip
