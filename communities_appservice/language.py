"""The languages the bot speaks, and which one it is speaking now.

Every user-facing template is an English msgid; `locales/<code>.po` holds its translation in
French, Hebrew and Simplified Chinese (gettext catalogues, read with Babel, plural forms and
all). The language of the moment is a context variable: whoever handles something for a
community (an event, a command, a timed job, an operation) says `speaking(code)` and
everything rendered inside, down to the times and numbers, is in that language.

`code_of` reads what people type ("fr", "fr-FR", "Français", "he", "עברית", "zh-Hans", "中文").
"""

from __future__ import annotations

import gettext
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ENGLISH = "en"
# code → its own name for itself
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "he": "עברית", "zh": "简体中文"}
RIGHT_TO_LEFT = frozenset({"he"})
LOCALES = Path(__file__).with_name("locales")

_ALIASES = {
    "english": "en",
    "anglais": "en",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
    "hebrew": "he",
    "hébreu": "he",
    "iw": "he",
    "עברית": "he",
    "chinese": "zh",
    "chinois": "zh",
    "中文": "zh",
    "简体中文": "zh",
    "汉语": "zh",
    "zh-hans": "zh",
    "zh-cn": "zh",
    "zh-sg": "zh",
}

log = logging.getLogger("communities.language")
_current: ContextVar[str] = ContextVar("language", default="")


def code_of(text: str) -> str | None:
    """The code of a language we speak, from a code or a name (None when we do not)."""
    word = text.strip().casefold().replace("_", "-")
    if word in LANGUAGES:
        return word
    if word in _ALIASES:
        return _ALIASES[word]
    base = word.split("-")[0]
    return base if base in LANGUAGES and base != "zh" else None


def current() -> str:
    """The language being spoken: the innermost `speaking`, else English."""
    return _current.get() or ENGLISH


@contextmanager
def speaking(code: str | None) -> Iterator[None]:
    """Everything rendered inside is in `code` (empty or None: English; the service passes
    the community's, or the operator's default, `Service.language_in`)."""
    token = _current.set(code_of(code or "") or ENGLISH)
    try:
        yield
    finally:
        _current.reset(token)


def use(code: str | None) -> None:
    """From here on in this task, speak `code` (inside a `speaking`, which ends it)."""
    _current.set(code_of(code or "") or ENGLISH)


class Catalogue:
    """One language's translations, compiled from its `.po` file (gettext's plural rules)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.known: frozenset[str] = frozenset()
        self.gettext: gettext.NullTranslations = gettext.NullTranslations()
        path = LOCALES / f"{code}.po"
        if code == ENGLISH or not path.exists():
            return
        with path.open("rb") as f:
            parsed = read_po(f, locale=code)
        self.known = frozenset(
            m.id if isinstance(m.id, str) else m.id[0]
            for m in parsed
            if m.id and m.string and not m.fuzzy
        )
        compiled = io.BytesIO()
        write_mo(compiled, parsed)
        compiled.seek(0)
        self.gettext = gettext.GNUTranslations(compiled)

    def lacks(self, template: str) -> bool:
        if self.code == ENGLISH or template in self.known:
            return False
        if template not in _untranslated:
            _untranslated.add(template)
            log.warning("no %s translation of %r; said in English", self.code, template)
        return True


_untranslated: set[str] = set()


@cache
def catalogue(code: str) -> Catalogue:
    return Catalogue(code)


def untranslated() -> frozenset[str]:
    """The templates said in English for want of a translation since start-up."""
    return frozenset(_untranslated)


def translate(template: str) -> str:
    found = catalogue(current())
    if not template or found.lacks(template):
        return template
    return found.gettext.gettext(template)


def translate_n(singular: str, plural: str, n: int) -> str:
    found = catalogue(current())
    found.lacks(singular)
    return found.gettext.ngettext(singular, plural, n)


@cache
def _locale(code: str) -> Locale:
    return Locale.parse("zh_Hans" if code == "zh" else code)


def locale() -> Locale:
    """Babel's locale of the language being spoken (dates, numbers)."""
    return _locale(current())


def right_to_left() -> bool:
    return current() in RIGHT_TO_LEFT


def N_(template: str) -> str:  # noqa: N802 (gettext's name for it)
    """Marks a template defined ahead of its use (a table of refusals) for the catalogues;
    `say` translates it where it is used."""
    return template
