"""`commands.framework` parsing: tokens, flags, command lookup, mention pills, replies."""

from __future__ import annotations

from typing import Any

import pytest

import communities_appservice.index  # noqa: F401  (registers every command)
from communities_appservice.commands.framework import REGISTRY, Need, Spec, command, find_spec
from communities_appservice.commands.parse import command_text, split_flags, tokenize
from communities_appservice.core.notices import lines, say
from communities_appservice.errors import Invalid, NotFound

# --- tokenize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", []),
        ("   ", []),
        ("help", ["help"]),
        ("create Parents", ["create", "Parents"]),
        ("  create   Parents  ", ["create", "Parents"]),
        ("create\nParents\tgroup", ["create", "Parents", "group"]),
        ('create "Parents group"', ["create", "Parents group"]),
        (
            'create "Parents   group" --topic "School run"',
            ["create", "Parents   group", "--topic", "School run"],
        ),
        ("create \u201cParents group\u201d", ["create", "Parents group"]),  # “smart” quotes
        ("create \u201eEltern Gruppe\u201c", ["create", "Eltern Gruppe"]),  # „German“ quotes
        ('say ""', ["say", ""]),  # an empty quoted argument is still an argument
        ('x"y z"w', ["xy zw"]),
        # apostrophes are literal: no single-quote grouping
        ("describe Parents' group", ["describe", "Parents'", "group"]),
        ("describe Parents\u2019 group", ["describe", "Parents\u2019", "group"]),
        ("rename Don't panic", ["rename", "Don't", "panic"]),
        ("'quoted words'", ["'quoted", "words'"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_apostrophe_argument_is_two_words() -> None:
    _, rest = find_spec(tokenize("describe Parents' group"))
    assert rest == ["Parents'", "group"]


@pytest.mark.parametrize(
    "text",
    ['create "Parents', 'create Parents"', "create \u201cParents", 'a "b" "c'],
)
def test_tokenize_unclosed_quote(text: str) -> None:
    with pytest.raises(Invalid, match="not closed"):
        tokenize(text)


# --- split_flags -------------------------------------------------------------------------

KNOWN: dict[str, type] = {"topic": str, "approval": bool, "private": bool}


@pytest.mark.parametrize(
    ("tokens", "args", "flags"),
    [
        ([], [], {}),
        (["Parents"], ["Parents"], {}),
        (["Parents", "--topic", "School run"], ["Parents"], {"topic": "School run"}),
        (["--topic", "School", "Parents"], ["Parents"], {"topic": "School"}),
        (["Parents", "--topic=School"], ["Parents"], {"topic": "School"}),
        (["Parents", "--topic=a=b"], ["Parents"], {"topic": "a=b"}),
        (["Parents", "--topic="], ["Parents"], {"topic": ""}),
        (["--approval", "Parents"], ["Parents"], {"approval": True}),
        (["Parents", "--private"], ["Parents"], {"private": True}),
        (["Big", "--approval", "Parents"], ["Big", "Parents"], {"approval": True}),
        # a phone turns "--" into an em dash
        (["Parents", "\u2014topic", "School"], ["Parents"], {"topic": "School"}),
        (["Parents", "\u2014topic=School"], ["Parents"], {"topic": "School"}),
        (["\u2014approval", "Parents"], ["Parents"], {"approval": True}),
        # not flags
        (["--"], ["--"], {}),
        (["\u2014"], ["\u2014"], {}),
        (["-5", "-x"], ["-5", "-x"], {}),
        (["--topic", "--private"], [], {"topic": "--private"}),  # a value may look like a flag
        (["--topic", "a", "--topic", "b"], [], {"topic": "b"}),  # the last one wins
    ],
)
def test_split_flags(tokens: list[str], args: list[str], flags: dict[str, Any]) -> None:
    assert split_flags(tokens, KNOWN) == (args, flags)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["--bogus"], "Unknown option --bogus"),
        (["Parents", "--bogus=1"], "Unknown option --bogus"),
        (["\u2014bogus"], "Unknown option --bogus"),
        (["Parents", "--topic"], "--topic needs a value"),
        (["\u2014topic"], "--topic needs a value"),
        (["--approval=yes"], "--approval takes no value"),
        (["--approval="], "--approval takes no value"),
    ],
)
def test_split_flags_refuses(tokens: list[str], message: str) -> None:
    with pytest.raises(Invalid) as caught:
        split_flags(tokens, KNOWN)
    assert message in caught.value.message


# --- find_spec ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "name", "rest"),
    [
        (["help"], "help", []),
        (["help", "group", "create"], "help", ["group", "create"]),
        (["create", "Parents"], "create", ["Parents"]),
        (["CREATE", "Parents"], "create", ["Parents"]),
        (["group", "create", "Parents"], "group create", ["Parents"]),
        (["Group", "CREATE", "Parents"], "group create", ["Parents"]),
        (["group", "list"], "group list", []),
        (["admin", "add", "@alice:example.org"], "admin add", ["@alice:example.org"]),
        (["admin", "list"], "admin list", []),
        (["create", "group", "Parents"], "create", ["group", "Parents"]),
        (["invite", "@alice:example.org"], "invite", ["@alice:example.org"]),
    ],
)
def test_find_spec(tokens: list[str], name: str, rest: list[str]) -> None:
    spec, remaining = find_spec(tokens)
    assert spec.name == name
    assert remaining == rest


@pytest.mark.parametrize(
    ("tokens", "shown"),
    [
        (["bogus"], "bogus"),
        (["bogus", "words", "more"], "bogus words"),
        (["group"], "group"),  # only a prefix of two-word commands
        (["group", "bogus"], "group bogus"),
        (["admin"], "admin"),
        ([], "help"),
    ],
)
def test_find_spec_unknown(tokens: list[str], shown: str) -> None:
    with pytest.raises(NotFound) as caught:
        find_spec(tokens)
    assert shown in caught.value.message


def test_two_word_commands_win_over_one_word() -> None:
    """A one-word command sharing the first word must not swallow `group create`."""
    one_word = {name for name in REGISTRY if " " not in name}
    two_words = [name for name in REGISTRY if " " in name]
    assert two_words
    for name in two_words:
        spec, rest = find_spec([*name.split(), "x"])
        assert (spec.name, rest) == (name, ["x"])
    assert "group" not in one_word and "admin" not in one_word


# --- the registry ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=list(REGISTRY))
def test_every_command_has_usage_and_summary(spec: Spec) -> None:
    assert spec.usage_line.startswith(spec.name)
    assert spec.summary.strip()
    assert spec.summary == spec.summary.strip()
    assert "\n" not in spec.usage_line and "\n" not in spec.summary
    if spec.min_args and spec.usage:
        assert "<" in spec.usage  # a required argument is shown as <arg>


def test_the_documented_commands_are_registered() -> None:
    for name in (
        "help",
        "create",
        "info",
        "rename",
        "describe",
        "invite",
        "group create",
        "group add",
        "group remove",
        "group list",
        "admin add",
        "admin remove",
        "admin list",
    ):
        assert name in REGISTRY, name


# --- command_text ------------------------------------------------------------------------

HTML = "org.matrix.custom.html"
PILL = '<a href="https://matrix.to/#/@alice:example.org">Alice</a>'


def _html(formatted: str, body: str = "x") -> dict[str, Any]:
    return {"body": body, "format": HTML, "formatted_body": formatted}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param({"body": "!community help"}, "!community help", id="plain"),
        pytest.param({}, "", id="empty"),
        pytest.param(
            _html(f"!community admin add {PILL}", "!community admin add Alice"),
            "!community admin add @alice:example.org",
            id="pill",
        ),
        pytest.param(
            _html('admin add <a href="https://matrix.to/#/@b.o_b=1/x:example.org">Bob</a>'),
            "admin add @b.o_b=1/x:example.org",
            id="pill-odd-localpart",
        ),
        pytest.param(
            _html('invite <a href="https://matrix.to/#/@alice:example.org?via=x.org">Alice</a>'),
            "invite @alice:example.org",
            id="pill-with-via",
        ),
        pytest.param(  # the spec's own form of a user link (Appendices, matrix.to navigation)
            _html(
                'invite <a href="https://matrix.to/#/%40alice%3Aexample.org">Alice</a>',
                "invite Alice",
            ),
            "invite @alice:example.org",
            id="pill-percent-encoded",
        ),
        pytest.param(
            _html(
                f"<p>admin add {PILL} &amp; "
                '<a href="https://matrix.to/#/@zed:example.org">Zed</a></p>'
            ),
            "admin add @alice:example.org & @zed:example.org",
            id="two-pills-and-entities",
        ),
        pytest.param(
            _html("describe <b>Tom</b> &amp; Jerry", "describe Tom & Jerry"),
            "describe Tom & Jerry",
            id="no-pill-uses-body",
        ),
        pytest.param(
            _html(
                'describe see <a href="https://example.org">https://example.org</a>',
                "describe see https://example.org",
            ),
            "describe see https://example.org",
            id="other-link-is-not-a-pill",
        ),
        pytest.param(
            {"body": "admin add Alice", "format": "other", "formatted_body": PILL},
            "admin add Alice",
            id="other-format-ignored",
        ),
        pytest.param(
            _html(
                f"<mx-reply><blockquote>hello</blockquote></mx-reply>admin add {PILL}",
                "> <@bob:example.org> hello\n\nadmin add Alice",
            ),
            "admin add @alice:example.org",
            id="reply-fallback-with-pill",
        ),
        pytest.param(
            _html(
                "<mx-reply><blockquote>"
                '<a href="https://matrix.to/#/@bob:example.org">Bob</a> hello'
                "</blockquote></mx-reply>!community relay",
                "> <@bob:example.org> hello\n\n!community relay",
            ),
            "!community relay",
            id="reply-fallback-pill-in-quote",
        ),
        pytest.param(
            _html(
                "<mx-reply><blockquote>hello</blockquote></mx-reply>!community relay",
                "> <@bob:example.org> hello\n\n!community relay",
            ),
            "!community relay",
            id="reply-fallback-without-pill",
        ),
        pytest.param(
            _html(f"invite<br/>{PILL}"),
            "invite\n@alice:example.org",
            id="br-is-newline",
        ),
    ],
)
def test_command_text(content: dict[str, Any], expected: str) -> None:
    assert command_text(content) == expected


def test_pill_becomes_an_argument() -> None:
    content = {"body": "admin add Alice", "format": HTML, "formatted_body": f"admin add {PILL}"}
    spec, rest = find_spec(tokenize(command_text(content)))
    assert (spec.name, rest) == ("admin add", ["@alice:example.org"])


# --- say ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "args", "plain", "html"),
    [
        ("Created <b>{}</b>.", ["<script>"], "Created <script>.", "Created <b>&lt;script&gt;</b>."),
        ("{} & {}", ["Tom & Jerry", "a<b"], "Tom & Jerry & a<b", "Tom &amp; Jerry & a&lt;b"),
        ("Hi <i>{}</i>", ['"quoted"'], 'Hi "quoted"', 'Hi <i>"quoted"</i>'),
        ("one<br>two {}", ["x"], "one\ntwo x", "one<br>two x"),
        ("one<br/>two", [], "one\ntwo", "one<br/>two"),
        (
            "<ul><li>{}</li><li>{}</li></ul>",
            ["a", "b"],
            "• a\n• b",
            "<ul><li>a</li><li>b</li></ul>",
        ),
        ("<code>{}</code>", ["{}"], "{}", "<code>{}</code>"),  # braces in arguments stay
        ("Members: {}", [42], "Members: 42", "Members: 42"),
        ("  {}  ", ["x"], "x", "  x  "),
    ],
)
def test_say(template: str, args: list[object], plain: str, html: str) -> None:
    reply = say(template, *args)
    assert reply.plain == plain
    assert reply.html == html


def test_lines() -> None:
    reply = lines(say("<b>{}</b>", "a&b"), say("c"))
    assert reply.plain == "a&b\nc"
    assert reply.html == "<b>a&amp;b</b><br>c"


# --- three-word commands -----------------------------------------------------------------

ALICE = "@alice:example.org"


@pytest.mark.parametrize(
    ("tokens", "name", "rest"),
    [
        (["group", "admin", "add", ALICE], "group admin add", [ALICE]),
        (["GROUP", "Admin", "ADD", ALICE], "group admin add", [ALICE]),
        (
            ["group", "admin", "add", ALICE, "--group", "Chat"],
            "group admin add",
            [ALICE, "--group", "Chat"],
        ),
        (["group", "admin", "remove", ALICE], "group admin remove", [ALICE]),
        (["group", "admin", "add"], "group admin add", []),  # the usage check comes later
        # two- and one-word names still work next to three-word ones
        (["group", "add", "#room:example.org"], "group add", ["#room:example.org"]),
        (["group", "add", "admin"], "group add", ["admin"]),
        (["admin", "add", ALICE], "admin add", [ALICE]),
        (["owner", "transfer", ALICE], "owner transfer", [ALICE]),
        (["log"], "log", []),
        (["log", "--limit", "2"], "log", ["--limit", "2"]),
        (["help", "group", "admin", "add"], "help", ["group", "admin", "add"]),
    ],
)
def test_find_spec_three_words(tokens: list[str], name: str, rest: list[str]) -> None:
    spec, remaining = find_spec(tokens)
    assert (spec.name, remaining) == (name, rest)


@pytest.mark.parametrize(
    "tokens",
    [
        ["group", "admin"],  # a prefix of three-word commands only
        ["group", "admin", "bogus"],
        ["group", "admin", "list"],
        ["owner"],
        ["admin", "group", "add"],
    ],
)
def test_find_spec_three_words_unknown(tokens: list[str]) -> None:
    with pytest.raises(NotFound):
        find_spec(tokens)


def test_the_longest_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """With `group admin` and `group admin add` both registered, three words beat two."""
    shorter = Spec("group admin", "", "a two-word prefix", Need.MEMBER, REGISTRY["help"].handler)
    monkeypatch.setitem(REGISTRY, "group admin", shorter)
    assert find_spec(["group", "admin", "add", ALICE])[0].name == "group admin add"
    spec, rest = find_spec(["group", "admin", "list"])
    assert (spec.name, rest) == ("group admin", ["list"])


def test_every_registered_name_is_found_with_arguments_after_it() -> None:
    for name in REGISTRY:
        spec, rest = find_spec([*name.split(), "x", "y"])
        assert (spec.name, rest) == (name, ["x", "y"])


@pytest.mark.parametrize(
    ("name", "need", "group", "message"),
    [
        ("one two three four", Need.ADMIN, False, "at most 3 words"),
        ("group admin poke", Need.GROUP_ADMIN, False, "needs group=True"),
    ],
)
def test_command_declarations_refused(name: str, need: Need, group: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        command(name, "", "x", need, group=group)
    assert name not in REGISTRY


def test_the_role_commands_are_registered() -> None:
    for name in ("owner transfer", "group admin add", "group admin remove", "log"):
        assert name in REGISTRY, name
    assert REGISTRY["owner transfer"].need is Need.OWNER
    assert REGISTRY["log"].need is Need.ADMIN
    for name in ("group admin add", "group admin remove"):
        assert REGISTRY[name].need is Need.GROUP_ADMIN and REGISTRY[name].group


def test_help_takes_every_command_name() -> None:
    help_spec = REGISTRY["help"]
    assert help_spec.max_args is not None
    assert max(len(name.split()) for name in REGISTRY) <= help_spec.max_args
