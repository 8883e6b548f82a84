"""The message catalogues: every user-facing template of the package, and each language's
translations of them.

    python -m communities_appservice.dev.catalogue          update locales/*.po from the code
    python -m communities_appservice.dev.catalogue --check  exit 1 when a .po lacks a string

A template is found where it is used: the first argument of `say`, `say_n` (both forms), an
error (`NotFound("…", …)`), `N_("…")`, and the summary of a `@command`. Updating keeps every
translation whose English stayed the same; a new or changed template arrives untranslated,
which `--check` (and the test suite) refuses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from ..language import ENGLISH, LANGUAGES, LOCALES

PACKAGE = Path(__file__).resolve().parents[1]
PROJECT = "communities-appservice"
HEADER = (
    "# The {} translations of communities-appservice's messages.\n"
    "# Kept in step with the code by: python -m communities_appservice.dev.catalogue"
)
ERRORS = ("UserError", "NotFound", "Forbidden", "Invalid", "Conflict", "LimitReached")
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "say": None,
    "say_n": (1, 2),
    "N_": None,
    "command": (3,),
    **{name: None for name in (*ERRORS, "Pending", "Undone")},
}


def templates() -> Iterator[tuple[str | tuple[str, str], str]]:
    """Every template in the package's code, with where it is (`path:line`)."""
    found = extract_from_dir(
        str(PACKAGE),
        method_map=[("dev/**.py", "ignore"), ("**.py", "python")],
        keywords=KEYWORDS,
        comment_tags=(),
        strip_comment_tags=True,
    )
    for filename, lineno, message, _comments, _context in found:
        if isinstance(message, tuple):  # say_n: (singular, plural)
            yield (message[0], message[1]), f"{filename}:{lineno}"
        elif message:
            yield message, f"{filename}:{lineno}"


def template_catalogue() -> Catalog:
    catalog = Catalog(project=PROJECT, fuzzy=False)
    for message, where in templates():
        path, line = where.rsplit(":", 1)
        catalog.add(message, locations=[(path, int(line))])
    return catalog


def read(code: str) -> Catalog:
    path = LOCALES / f"{code}.po"
    if not path.exists():
        return Catalog(
            locale=code,
            project=PROJECT,
            version="",
            msgid_bugs_address="",
            last_translator="",
            language_team="",
            header_comment=HEADER.format(code),
            fuzzy=False,
        )
    with path.open("rb") as f:
        return read_po(f, locale=code)


def missing(code: str, template: Catalog | None = None) -> list[str]:
    """The templates `code`'s catalogue does not translate (or marks as fuzzy)."""
    template = template or template_catalogue()
    have = read(code)
    gaps = []
    for message in template:
        if not message.id:
            continue
        known: Message | None = have.get(message.id)
        found = None if known is None else known.string
        strings = list(found) if isinstance(found, tuple | list) else [found]
        if known is None or known.fuzzy or not all(strings):
            gaps.append(message.id if isinstance(message.id, str) else message.id[0])
    return gaps


def update() -> None:
    template = template_catalogue()
    for code in LANGUAGES:
        if code == ENGLISH:
            continue
        catalog = read(code)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with (LOCALES / f"{code}.po").open("wb") as f:
            write_po(f, catalog, width=100, sort_output=True, include_lineno=False)
        print(f"{code}: {len(missing(code, template))} to translate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a string is missing")
    args = parser.parse_args()
    if not args.check:
        update()
        return
    gaps = {code: missing(code) for code in LANGUAGES if code != ENGLISH}
    for code, lacking in gaps.items():
        for text in lacking:
            print(f"{code}: untranslated: {text!r}")
    sys.exit(1 if any(gaps.values()) else 0)


if __name__ == "__main__":
    main()
