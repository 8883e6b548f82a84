"""rules, rules set, welcome, welcome set."""

from __future__ import annotations

from ..core.notices import Text, say
from ..features.welcome import RULES, WELCOME, Welcome
from .framework import Need, Request, command


@command("rules", "", "the community's rules", Need.MEMBER, max_args=0)
async def show_rules(req: Request) -> Text:
    text = await Welcome(req.service).text(req.space, RULES)
    if not text:
        return say("<b>{}</b> has no rules yet.", req.space.name)
    return say("<b>Rules of {}</b><br>{}", req.space.name, text)


@command(
    "rules set",
    "<text>",
    "set the rules and pin them in the announcement room",
    Need.ADMIN,
    min_args=1,
)
async def set_rules(req: Request) -> Text:
    await Welcome(req.service).set_rules(req.space, req.sender, req.rest())
    return say("Set and pinned the rules of <b>{}</b>.", req.space.name)


@command("welcome", "", "the text new members receive", Need.MEMBER, max_args=0)
async def show_welcome(req: Request) -> Text:
    text = await Welcome(req.service).text(req.space, WELCOME)
    if not text:
        return say("<b>{}</b> has no welcome text yet.", req.space.name)
    return say("<b>Welcome text of {}</b><br>{}", req.space.name, text)


@command(
    "welcome set",
    "<text>",
    "set the text every new member gets once, by DM",
    Need.ADMIN,
    min_args=1,
)
async def set_welcome(req: Request) -> Text:
    await Welcome(req.service).set_welcome(req.space, req.sender, req.rest())
    return say("New members of <b>{}</b> will get this welcome by direct message.", req.space.name)
