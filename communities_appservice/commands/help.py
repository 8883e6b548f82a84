"""help: the commands, or one command's usage.

A summary, in the language spoken, names limits by their value on this server: `{max_admins}`
and `{max_groups}` in a summary are filled in from the config when help is shown, and the
command's own `values` fill its other `{names}`."""

from __future__ import annotations

from .. import language
from ..config import Config
from ..core.notices import Text, lines, say
from ..errors import Invalid
from .framework import REGISTRY, Need, Request, Spec, command


def summary(spec: Spec, config: Config) -> str:
    limits = {
        "max_admins": config.communities.max_admins,
        "max_groups": config.communities.max_groups,
    }
    return language.translate(spec.summary).format_map({**limits, **spec.values})


@command(
    "help",
    "[command]",
    "list the commands, or show one command's usage",
    Need.ANYONE,
    max_args=3,
    community=False,
)
async def help_(req: Request) -> Text:
    prefix = req.service.config.communities.command_prefix
    if req.args:
        name = " ".join(req.args).lower()
        spec = REGISTRY.get(name)
        if spec is None:
            raise Invalid("There is no command {!r}.", name)
        return say(
            "<code>{} {}</code> — {}", prefix, spec.usage_line, summary(spec, req.service.config)
        )
    parts = [say("<b>Commands</b> (type them after <code>{}</code>):", prefix)]
    parts += [
        say("<code>{}</code> — {}", spec.usage_line, summary(spec, req.service.config))
        for spec in sorted(REGISTRY.values(), key=lambda s: s.name)
    ]
    return lines(*parts)
