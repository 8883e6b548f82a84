"""The community's photo (`avatar`) and its end (`deactivate`).

Deactivating is an operation: the records first (the community is marked deactivated, so
no command but `info` acts on it from then on, and reconciliation leaves it alone), its
scheduled posts cancelled, then every group unlinked (each lives on as a plain room with
its members and its admins), the announcement room closed to everyone (power levels), the
space's marker saying so. Resumed after a crash, it does what was left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mautrix.types import EventID, RoomID, UserID

from ..core.notices import say
from ..core.operations import Origin, operation
from ..core.posts import is_media, read_replied
from ..core.rooms import quietly, unlink_group
from ..core.run import Params, Run
from ..core.service import Service
from ..db.community import Community
from ..errors import Invalid
from ..rules.joins import marker_content
from ..rules.model import MARKER_EVENT, AuditAction, CommunityState, GroupAccess, Role

log = logging.getLogger("communities.lifecycle")
AVATAR_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Deactivate(Params):
    name: str


class Lifecycle:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def deactivate(self, community: Community, sender: UserID, origin: Origin) -> None:
        await self.svc.ops.run(Deactivate(community.name), sender, origin, community.space_id)

    async def set_avatar(
        self, community: Community, sender: UserID, here: RoomID, reply_to: EventID | None
    ) -> None:
        """The image `reply_to` becomes the photo of the space and the announcement room.
        Room avatars are public pictures (never encrypted): an image that came encrypted
        is decrypted and uploaded again as it is."""
        svc = self.svc
        if reply_to is None:
            raise Invalid("Send avatar as a reply to an image.")
        content = (await read_replied(svc, here, reply_to)).get("content") or {}
        if content.get("msgtype") != "m.image" or not is_media(content):
            raise Invalid("Send avatar as a reply to an image.")
        info = dict(content.get("info") or {})
        if int(info.get("size") or 0) > AVATAR_MAX_BYTES:
            raise Invalid("That image is too large for a photo (at most 10 MB).")
        url = content.get("url")
        if not isinstance(url, str) or "file" in content:
            data = await svc.gw.download(content)
            mimetype = str(info.get("mimetype") or "image/png")
            url = await svc.gw.upload(data, mimetype, str(content.get("body") or "avatar"))
        avatar: dict[str, Any] = {"url": url}
        if info.get("mimetype"):
            avatar["info"] = {k: info[k] for k in ("mimetype", "w", "h", "size") if k in info}
        rooms = [community.space_id]
        announcements = await svc.room_of_role(community.space_id, Role.ANNOUNCEMENTS)
        if announcements is not None:
            rooms.append(announcements.room_id)
        for room_id in rooms:
            await svc.gw.send_state(room_id, "m.room.avatar", avatar)
        await svc.audit(community.space_id, sender, AuditAction.AVATAR, str(url))


@operation("deactivate", Deactivate)
async def _deactivate(svc: Service, run: Run[Deactivate]) -> str:
    space_id = run.op.space_id

    async def mark() -> None:
        await svc.db.communities.set_state(space_id, CommunityState.DEACTIVATED)
        await svc.db.schedule.cancel_all(space_id)

    await run.step("mark", mark)
    for group in await svc.groups(space_id):
        is_open = GroupAccess(group.access) is GroupAccess.OPEN

        async def out(room_id: RoomID = group.room_id, open_: bool = is_open) -> None:
            await unlink_group(svc, space_id, room_id, open_)
            await svc.db.rooms.delete(room_id)

        await run.step(f"unlink:{group.room_id}", out)

    async def close() -> None:
        community = await svc.db.communities.get(space_id)
        room = await svc.room_of_role(space_id, Role.ANNOUNCEMENTS)
        if community is not None and room is not None:
            await svc.apply_room_power(community, room)  # closed: nobody posts any more
        marker = {**marker_content(space_id, Role.SPACE), "deactivated": True}
        await quietly(svc.gw.send_state(space_id, MARKER_EVENT, marker))

    await run.step("close", close)
    await run.step(
        "audit",
        lambda: svc.audit(
            space_id, run.op.actor, AuditAction.DEACTIVATE, space_id, run.params.name
        ),
    )
    return say(
        "Deactivated {}: its groups live on as rooms of their own, its announcement room is "
        "closed, and its scheduled posts are cancelled.",
        run.params.name,
    ).plain


def explained(community: Community, groups: int) -> str:
    """What `deactivate` without `--confirm` says will happen."""
    return say(
        "Deactivating {} unlinks its {} groups (each stays as a room with its members), closes "
        "the announcement room to everyone, cancels its scheduled posts, and leaves only "
        "`info` answering for it. This cannot be undone. Send `deactivate --confirm` to do it.",
        community.name,
        groups,
    ).plain
