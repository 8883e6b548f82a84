"""The catalogues are complete and faithful, and `say` speaks the language of the moment:
translated templates, escaped arguments, the locale's numbers and times, right-to-left
Hebrew."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import pytest

from communities_appservice import language
from communities_appservice.core.notices import FSI, PDI, RLM, notice, say
from communities_appservice.dev import catalogue
from communities_appservice.errors import Invalid
from communities_appservice.rules.events import offset_words
from communities_appservice.rules.when import EXAMPLES, parse_when, show, zone

TRANSLATED = [code for code in language.LANGUAGES if code != language.ENGLISH]
TEMPLATES = catalogue.template_catalogue()


def _slots(template: str) -> list[tuple[str, str, str | None]]:
    found, auto = [], 0
    for _literal, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if field == "":
            field, auto = str(auto), auto + 1
        found.append((field, spec or "", conversion))
    return sorted(found)


def _tags(template: str) -> list[str]:
    return sorted(re.findall(r"</?[a-z]+[^>]*>", template))


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_template_of_the_code_is_translated(code: str) -> None:
    """Fails when a template was added or changed and a catalogue was not brought along
    (python -m communities_appservice.dev.catalogue, then translate what it lists)."""
    assert catalogue.missing(code, TEMPLATES) == []


@pytest.mark.parametrize("code", TRANSLATED)
def test_each_translation_keeps_the_slots_tags_and_commands_of_its_template(code: str) -> None:
    for message in catalogue.read(code):
        if not message.id or not message.string:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for translated in strings:
            assert _slots(translated) == _slots(english), (english, translated)
            assert _tags(translated) == _tags(english), (english, translated)
            commands = sorted(re.findall(r"`[^`]*`", english))
            assert sorted(re.findall(r"`[^`]*`", translated)) == commands, (english, translated)


def test_there_is_a_template_for_each_kind_of_place_one_is_written() -> None:
    found = {m.id for m in TEMPLATES}
    assert "Only admins of this community can do that." in found  # N_()
    assert "There is no command {!r}." in found  # an error
    assert "list the commands, or show one command's usage" in found  # a command's summary


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("fr", "fr"),
        ("FR-fr", "fr"),
        ("Français", "fr"),
        ("he", "he"),
        ("iw", "he"),
        ("עברית", "he"),
        ("zh", "zh"),
        ("zh-Hans", "zh"),
        ("zh_CN", "zh"),
        ("中文", "zh"),
        ("en-GB", "en"),
        ("zh-TW", None),  # traditional Chinese is not what we speak
        ("klingon", None),
        ("", None),
    ],
)
def test_code_of_reads_codes_and_names(typed: str, code: str | None) -> None:
    assert language.code_of(typed) == code


def test_speaking_nests_and_ends() -> None:
    assert language.current() == language.ENGLISH
    with language.speaking("fr"):
        assert language.current() == "fr"
        with language.speaking("he"):
            assert language.current() == "he"
            language.use("zh")
            assert language.current() == "zh"
        assert language.current() == "fr"
    assert language.current() == language.ENGLISH


def test_say_translates_and_still_escapes() -> None:
    english = say("No community {!r} here.", "<b>x</b>")
    with language.speaking("fr"):
        french = say("No community {!r} here.", "<b>x</b>")
    assert english.plain == "No community '<b>x</b>' here."
    assert french.plain != english.plain and "'<b>x</b>'" in french.plain
    assert "&lt;b&gt;x&lt;/b&gt;" in french.html and "<b>x</b>" not in french.html


def test_numbers_with_the_thousands_spec_follow_the_locale() -> None:
    template = "That is too long to post: {:,} bytes with its formatting, at most {:,}."
    assert "12,345 bytes" in say(template, 12345, 60000).plain
    with language.speaking("fr"):
        assert "12\u202f345" in say(template, 12345, 60000).plain


def test_hebrew_isolates_arguments_and_starts_right_to_left() -> None:
    with language.speaking("he"):
        text = say("No community {!r} here.", "Paris")
        content = notice(text)
    assert f"{FSI}'Paris'{PDI}" in text.plain and f"{FSI}'Paris'{PDI}" in text.html
    assert content["body"].startswith(RLM)
    assert content["formatted_body"].startswith(f'<div dir="rtl">{RLM}')
    assert not notice(say("No community {!r} here.", "Paris"))["body"].startswith(RLM)


def test_a_user_error_is_told_in_the_language_spoken() -> None:
    error = Invalid("There is no command {!r}.", "fly")
    assert error.message == "There is no command 'fly'."
    with language.speaking("zh"):
        assert error.message != "There is no command 'fly'." and "'fly'" in error.message


def test_times_are_shown_in_the_language_spoken() -> None:
    moment, tz = datetime(2026, 12, 5, 17, 0, tzinfo=UTC), zone("Europe/Paris")
    assert show(moment, tz) == "Sat 5 Dec 2026 18:00 (Europe/Paris)"
    shown = {}
    for code in TRANSLATED:
        with language.speaking(code):
            shown[code] = show(moment, tz)
    assert shown["fr"] == "sam. 5 déc. 2026 18:00 (Europe/Paris)"
    assert shown["zh"].startswith("2026年12月5日") and shown["zh"].endswith("18:00 (Europe/Paris)")
    assert "2026" in shown["he"] and "18:00" in shown["he"] and "שבת" in shown["he"]


def test_reminder_offsets_are_words_of_the_language() -> None:
    assert offset_words(7200) == "2 hours"
    with language.speaking("fr"):
        assert offset_words(86_400 * 2) == "2\xa0jours"
    with language.speaking("zh"):
        assert offset_words(1800) == "30分钟"


@pytest.mark.parametrize("code", list(EXAMPLES))
def test_every_example_time_of_a_language_is_read_in_it(code: str) -> None:
    now, tz = datetime(2026, 12, 3, 10, 0, tzinfo=UTC), zone("Europe/Paris")
    for typed in EXAMPLES[code]:
        assert parse_when(typed, now=now, tz=tz, language=code) > now, typed
