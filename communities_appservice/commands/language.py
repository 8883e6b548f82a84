"""language: which language the bot speaks in a community."""

from __future__ import annotations

from .. import language
from ..core.notices import Text, say
from ..errors import Forbidden, Invalid
from ..rules.model import AuditAction
from .framework import REFUSALS, Need, Request, command

CHOICES = ", ".join(f"{code} ({name})" for code, name in language.LANGUAGES.items())


@command(
    "language",
    "[en|fr|he|zh]",
    "the language I speak in this community (admins set it); commands stay English words",
    Need.MEMBER,
    max_args=1,
)
async def language_(req: Request) -> Text:
    svc, community = req.service, req.space
    if not req.args:
        code = svc.language_for(community)
        return say(
            "I speak {} in <b>{}</b>. Admins can choose one of: {}.",
            language.LANGUAGES[code],
            community.name,
            CHOICES,
        )
    if not await svc.is_admin(community.space_id, req.sender):
        raise Forbidden(REFUSALS[Need.ADMIN])
    chosen = language.code_of(req.args[0])
    if chosen is None:
        raise Invalid("I do not speak {!r}; choose one of: {}.", req.args[0], CHOICES)
    await svc.set_language(community.space_id, chosen)
    await svc.audit(community.space_id, req.sender, AuditAction.LANGUAGE, chosen)
    language.use(chosen)
    return say("From now on I speak {} in <b>{}</b>.", language.LANGUAGES[chosen], community.name)
