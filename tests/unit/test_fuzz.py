"""Property-based tests (hypothesis) of what reads user text: whatever a message says, the
parser answers with a value or a one-line `UserError`, never a traceback, and what the bot
says escapes every argument. CI runs a small budget; `FUZZ_INPUTS=N` (or `bench/fuzz.py`)
runs N inputs a test."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import communities_appservice.index  # noqa: F401  (registers every command)
from communities_appservice.commands.framework import find_spec
from communities_appservice.commands.parse import command_text, split_flags, tokenize
from communities_appservice.core.notices import notice, say
from communities_appservice.errors import UserError

from ..fuzzing import budget

settings.register_profile(
    "fuzz",
    max_examples=budget(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("fuzz")

# What phones and clients type: letters of several scripts, quotes of every kind, dashes,
# pills' HTML, control characters.
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("\"“”„'—-–<>&@#!:/ \n\t=")),
    ),
    max_size=300,
)
FLAGS = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    st.sampled_from([bool, str]),
    max_size=5,
)


def _one_line(error: UserError) -> None:
    assert error.message.strip(), error
    assert "\n" not in error.message.strip() or error.args_, error


@given(TEXT)
def test_tokenize_splits_or_refuses_in_one_line(text: str) -> None:
    try:
        tokens = tokenize(text)
    except UserError as e:
        _one_line(e)
        return
    assert all(isinstance(t, str) for t in tokens)
    assert all(t or '"' in text or "“" in text or "”" in text or "„" in text for t in tokens)


@given(st.lists(TEXT, max_size=12), FLAGS)
def test_flags_parse_or_refuse(tokens: list[str], known: dict[str, type]) -> None:
    try:
        args, flags = split_flags(tokens, known)
    except UserError as e:
        _one_line(e)
        return
    assert set(flags) <= set(known)
    assert len(args) + len(flags) <= len(tokens)


@given(TEXT, st.one_of(st.none(), TEXT), st.booleans())
def test_command_text_reads_any_message(body: str, formatted: str | None, reply: bool) -> None:
    content: dict[str, object] = {"msgtype": "m.text", "body": body}
    if formatted is not None:
        content.update(format="org.matrix.custom.html", formatted_body=formatted)
    if reply:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": "$x"}}
    assert isinstance(command_text(content), str)


@given(TEXT)
def test_any_words_name_a_command_or_get_one_line(text: str) -> None:
    try:
        spec, rest = find_spec(tokenize(text))
    except UserError as e:
        _one_line(e)
        return
    assert spec.name and isinstance(rest, list)


@given(st.lists(st.one_of(TEXT, st.integers(), st.floats(allow_nan=False)), max_size=4))
def test_what_the_bot_says_escapes_every_argument(args: list[object]) -> None:
    template = "<b>{}</b> " * len(args) + '<a href="{}">link</a>'
    said = say(template, *args, "https://matrix.to/#/#x:example.org")
    stripped = re.sub(r"</?b>|<a href=\"[^\"]*\">|</a>|<br>", "", said.html)
    assert "<" not in stripped and ">" not in stripped  # every < and > of an argument escaped
    content = notice(said)
    assert content["m.mentions"] == {} and content["msgtype"] == "m.notice"
