"""help: the commands, or one command's usage."""

from __future__ import annotations

from ..core.notices import Text, lines, say
from ..errors import Invalid
from .framework import REGISTRY, Need, Request, command


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
        return say("<code>{} {}</code> — {}", prefix, spec.usage_line, spec.summary)
    parts = [say("<b>Commands</b> (type them after <code>{}</code>):", prefix)]
    parts += [
        say("<code>{}</code> — {}", spec.usage_line, spec.summary)
        for spec in sorted(REGISTRY.values(), key=lambda s: s.name)
    ]
    return lines(*parts)
