"""`core.notices`, the one door for what the bot says: `say` escapes every argument in the
HTML body (in text and in `<a href="{}">`) and strips the template's tags from the plain body;
`notice` always sets `m.mentions` and threads or replies as asked."""

from __future__ import annotations

from mautrix.types import UserID

from communities_appservice.core.notices import (
    Text,
    in_thread,
    lines,
    notice,
    paragraphs,
    say,
    verbatim,
)

ALICE = UserID("@alice:example.org")
BOB = UserID("@bob:example.org")

# --- say ----------------------------------------------------------------------------------


def test_say_escapes_every_argument() -> None:
    said = say("<b>{}</b> asks: {}", "Kids <&> co", "<script>alert(1)</script>")
    assert said.html == "<b>Kids &lt;&amp;&gt; co</b> asks: &lt;script&gt;alert(1)&lt;/script&gt;"
    assert said.plain == "Kids <&> co asks: <script>alert(1)</script>"


def test_say_keeps_the_templates_tags_out_of_the_plain_body() -> None:
    said = say("<b>{}</b><br>Answer with <code>{}</code><ul><li>{}</li></ul>", "A", "b", "c")
    assert said.plain == "A\nAnswer with b• c"
    assert said.html == "<b>A</b><br>Answer with <code>b</code><ul><li>c</li></ul>"


def test_an_arguments_line_breaks_become_br() -> None:
    said = say("Rules:<br>{}", "Be kind.\nNo <spam>.")
    assert said.html == "Rules:<br>Be kind.<br>No &lt;spam&gt;."
    assert said.plain == "Rules:\nBe kind.\nNo <spam>."


def test_say_escapes_a_link_argument() -> None:
    url = "https://matrix.to/#/#a:example.org?via=x&y=<z>"
    said = say('<a href="{}">{}</a>', url, url)
    escaped = "https://matrix.to/#/#a:example.org?via=x&amp;y=&lt;z&gt;"
    assert said.html == f'<a href="{escaped}">{escaped}</a>'
    assert said.plain == url


def test_say_escapes_quotes_in_an_attribute() -> None:
    said = say('<a href="{}">link</a>', 'https://x.org/" onclick="alert(1)')
    assert said.html == '<a href="https://x.org/&quot; onclick=&quot;alert(1)">link</a>'


def test_say_escapes_after_conversion() -> None:
    assert say("No community {!r} here.", "<x>").html == "No community '&lt;x&gt;' here."
    assert say("No community {!r} here.", "<x>").plain == "No community '<x>' here."


def test_say_takes_numeric_format_specs() -> None:
    said = say("The limit is {:,}.", 10_000)
    assert said == Text(plain="The limit is 10,000.", html="The limit is 10,000.")


def test_say_converts_the_same_in_both_bodies() -> None:
    said = say("Got {!r}.", 5)
    assert (said.plain, said.html) == ("Got 5.", "Got 5.")


def test_verbatim_is_never_a_template() -> None:
    said = verbatim("Created {name} <b>now</b>")
    assert said == Text(
        plain="Created {name} <b>now</b>", html="Created {name} &lt;b&gt;now&lt;/b&gt;"
    )


def test_lines_and_paragraphs() -> None:
    a, b = say("<b>{}</b>", "a"), say("{}", "b")
    assert lines(a, b) == Text(plain="a\nb", html="<b>a</b><br>b")
    assert paragraphs(a, b) == Text(plain="a\n\nb", html="<b>a</b><br><br>b")


# --- notice -----------------------------------------------------------------------------------


def test_notice_always_sets_mentions() -> None:
    content = notice(say("Hi {}", ALICE))
    assert content == {
        "msgtype": "m.notice",
        "body": f"Hi {ALICE}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"Hi {ALICE}",
        "m.mentions": {},
    }


def test_notice_mentions_exactly_whom_it_names() -> None:
    content = notice(say("Hi"), mentions=[BOB, ALICE, BOB])
    assert content["m.mentions"] == {"user_ids": [ALICE, BOB]}


def test_a_reply() -> None:
    content = notice(say("Done."), reply_to="$cmd")
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}


def test_a_reply_in_a_thread() -> None:
    content = notice(say("Done."), reply_to="$cmd", thread_root="$root")
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": "$cmd"},
    }


def test_in_a_thread_without_a_reply() -> None:
    content = notice(say("Done."), thread_root="$root")
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
    }


def test_other_content_in_a_thread() -> None:
    image = {"msgtype": "m.image", "body": "qr.png"}
    threaded = in_thread(image, "$cmd", "$root")
    assert threaded["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$cmd"},
    }
    assert threaded["m.mentions"] == {}
    assert "m.relates_to" not in image  # the caller's content is not changed
    assert in_thread(dict(image), "$cmd", None) == {**image, "m.mentions": {}}
