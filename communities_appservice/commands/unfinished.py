"""operations, operations cancel: the community's unfinished operations."""

from __future__ import annotations

from datetime import UTC, datetime

from ..core.notices import Text, lines, say, verbatim
from ..features.unfinished import Unfinished
from .framework import Need, Request, command


@command("operations", "", "the community's unfinished operations", Need.ADMIN, max_args=0)
async def operations(req: Request) -> Text:
    running = await Unfinished(req.service).of(req.space)
    if not running:
        return say("Nothing is unfinished in <b>{}</b>.", req.space.name)
    parts = [say("<b>{}</b>: {} unfinished", req.space.name, len(running))]
    for op in running:
        since = datetime.fromtimestamp(op.created_at / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts.append(
            say(
                "• #{} {} by {}, since {}, {} attempts ({})",
                op.id,
                op.kind,
                op.actor,
                since,
                op.attempts,
                op.state,
            )
        )
    return lines(*parts)


@command(
    "operations cancel",
    "<#id>",
    "stop an unfinished operation: undo it where it can be undone",
    Need.ADMIN,
    min_args=1,
    max_args=1,
)
async def cancel(req: Request) -> Text:
    return verbatim(await Unfinished(req.service).cancel(req.space, req.sender, req.args[0]))
