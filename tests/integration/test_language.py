"""The bot speaks each community's language, over a real Synapse: a French, a Hebrew and a
Chinese community get every reply in their own language (times typed and shown in it), and
an Element user reads the Hebrew replies, right-to-left, in an encrypted room."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from communities_appservice import language
from communities_appservice.commands.framework import REGISTRY
from communities_appservice.commands.help import summary
from communities_appservice.core.notices import RLM, notice, say
from communities_appservice.rules.when import show, zone

from .e2ee import E2EEUser
from .harness import Stack
from .test_encryption import open_encrypted_community
from .test_groups_and_admins import joined_community

TIMES = {"fr": "demain 9h", "he": "מחר ב-9:00", "zh": "明天上午9点"}


def told(code: str, template: str, *args: Any, before: str = "") -> str:
    """The body of the notice the bot sends for `template` in language `code`."""
    with language.speaking(code):
        return str(notice(say(template, *args, before=before))["body"])


@pytest.mark.parametrize("code", list(TIMES))
async def test_a_community_gets_every_reply_in_its_language(stack: Stack, code: str) -> None:
    assert stack.app is not None
    name = f"Chapter {code}"
    owner, rooms = await joined_community(stack, name)
    dm, space = rooms["dm"], rooms["space"]
    said = await owner.command(dm, f"language {code}")
    assert said["body"] == told(
        code, "From now on I speak {} in <b>{}</b>.", language.LANGUAGES[code], name
    )
    shown = await owner.command(dm, "language")
    assert shown["body"] == told(
        code,
        "I speak {} in <b>{}</b>. Admins can choose one of: {}.",
        language.LANGUAGES[code],
        name,
        ", ".join(f"{c} ({n})" for c, n in language.LANGUAGES.items()),
    )

    scheduled = await owner.command(dm, f"schedule {TIMES[code]} Bonjour à tous")
    [job] = await stack.app.tables.schedule.pending(space)  # type: ignore[arg-type]
    with language.speaking(code):
        when = show(datetime.fromtimestamp(job.due_at / 1000, UTC), zone(job.zone))
    assert scheduled["body"] == told(code, "Scheduled post #{} for {}.", job.id, when)

    prefix = stack.app.config.communities.command_prefix
    with language.speaking(code):
        about = summary(REGISTRY["unschedule"], stack.app.config)
    assert (await owner.command(dm, "help unschedule"))["body"] == told(
        code, "<code>{} {}</code> — {}", prefix, "unschedule <#id>", about
    )
    unknown = await owner.command(dm, "fly away")
    assert unknown["body"] == told(
        code, "Unknown command {!r}. Send `help` for the list.", "fly away", before="⚠️ "
    )
    cancelled = await owner.command(dm, f"unschedule #{job.id}")
    assert cancelled["body"] == told(code, "Cancelled scheduled post #{}.", job.id)
    assert language.untranslated() == frozenset(), language.untranslated()


async def test_hebrew_replies_read_right_to_left_in_an_encrypted_room(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner = await stack.e2ee_person("owner")  # type: ignore[attr-defined]
    rooms = await open_encrypted_community(stack, owner, "Haifa parents")
    admins_room = rooms["admins"]
    for role in ("space", "admins"):
        await owner.join(rooms[role])
    set_it = await owner.reply_to(await owner.send(admins_room, "!community language he"))
    assert set_it.decrypted and set_it.body.startswith(RLM), set_it.body
    reply = await owner.reply_to(await owner.send(admins_room, "!community timezone"))
    assert reply.decrypted and reply.body.startswith(RLM)
    assert reply.formatted_body is not None
    assert reply.formatted_body.startswith(f'<div dir="rtl">{RLM}')
    assert any("\u05d0" <= ch <= "\u05ea" for ch in reply.body)  # Hebrew letters
    assert "\u2068Haifa parents\u2069" in reply.body  # the Latin name isolated in the line
