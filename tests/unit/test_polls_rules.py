"""MSC3381's rules, as a table: what a response selects and how votes are tallied."""

from __future__ import annotations

import pytest

from communities_appservice.errors import Invalid
from communities_appservice.rules import polls
from communities_appservice.rules.polls import Vote, tally

IDS = ["1", "2", "3"]


def vote(sender: str, ts: int, *answers: str, spoiled: bool = False) -> Vote:
    return Vote(sender, ts, f"${sender}{ts}", None if spoiled else answers)


@pytest.mark.parametrize(
    ("votes", "max_selections", "end", "counts", "voters", "spoiled"),
    [
        ([vote("a", 1, "1"), vote("b", 2, "2")], 1, None, [1, 1, 0], 2, 0),
        # the latest by timestamp counts, whatever order they arrive in
        ([vote("a", 5, "2"), vote("a", 1, "1")], 1, None, [0, 1, 0], 1, 0),
        # the latest counts even when it is invalid: spoiled, the earlier vote gone
        ([vote("a", 1, "1"), vote("a", 2, "9")], 1, None, [0, 0, 0], 0, 1),
        ([vote("a", 1, "1"), vote("a", 2, spoiled=True)], 1, None, [0, 0, 0], 0, 1),
        # truncated to max_selections; what is cut off does not spoil it
        ([vote("a", 1, "1", "2", "9")], 2, None, [1, 1, 0], 1, 0),
        ([vote("a", 1, "3", "1")], 1, None, [0, 0, 1], 1, 0),
        # a repeated answer counts once
        ([vote("a", 1, "2", "2")], 3, None, [0, 1, 0], 1, 0),
        # an empty selection withdraws the vote
        ([vote("a", 1, "1"), vote("a", 2)], 1, None, [0, 0, 0], 0, 0),
        # after the end: as if never sent (the earlier vote stands)
        ([vote("a", 1, "1"), vote("a", 20, "2"), vote("b", 30, "3")], 1, 10, [1, 0, 0], 1, 0),
        ([vote("a", 10, "2")], 1, 10, [0, 1, 0], 1, 0),  # on the end's instant: counted
    ],
)
def test_tally(
    votes: list[Vote],
    max_selections: int,
    end: int | None,
    counts: list[int],
    voters: int,
    spoiled: int,
) -> None:
    result = tally(IDS, max_selections, votes, end)
    assert list(result.counts.values()) == counts
    assert (result.voters, result.spoiled) == (voters, spoiled)


def test_leaders_are_every_answer_with_the_most_votes() -> None:
    result = tally(IDS, 1, [vote("a", 1, "1"), vote("b", 1, "3")])
    assert result.leaders() == ["1", "3"]
    assert tally(IDS, 1, []).leaders() == []


def test_selections_under_both_names_and_what_is_not_a_list() -> None:
    unstable = {polls.RESPONSE: {"answers": ["1"]}}
    assert polls.selections(unstable) == ["1"]
    assert polls.selections({"m.selections": ["2", "3"]}) == ["2", "3"]
    assert polls.selections({polls.RESPONSE: {"answers": "1"}}) is None
    assert polls.selections({polls.RESPONSE: {"answers": [1]}}) is None
    assert polls.selections({}) is None


def test_referenced_needs_a_reference() -> None:
    assert polls.referenced({"m.relates_to": {"rel_type": "m.reference", "event_id": "$p"}}) == "$p"
    assert polls.referenced({"m.relates_to": {"rel_type": "m.thread", "event_id": "$p"}}) is None
    assert polls.referenced({}) is None


def test_start_content_is_what_element_renders() -> None:
    content = polls.start_content("Lunch?", ["Pizza", "Pasta"], 1)
    block = content[polls.START]
    assert block["question"][polls.TEXT] == "Lunch?"
    assert block["kind"] == polls.DISCLOSED and block["max_selections"] == 1
    assert block["answers"] == [
        {"id": "1", polls.TEXT: "Pizza"},
        {"id": "2", polls.TEXT: "Pasta"},
    ]
    assert content[polls.TEXT] == content["body"] == "Lunch?\n1. Pizza\n2. Pasta"


@pytest.mark.parametrize(
    ("question", "options", "error"),
    [
        ("Q", ["only one"], "A poll has 2 to 20 options; this one has 1."),
        ("Q", [str(i) for i in range(21)], "A poll has 2 to 20 options; this one has 21."),
        (" ", ["a", "b"], "A poll needs a question."),
        ("Q", ["a", " "], "An option must not be empty."),
        ("Q", ["Yes", "yes"], "Two options are the same; each option must differ."),
        ("Q" * 341, ["a", "b"], "The question is 341 characters long; the limit is 340."),
        ("Q", ["a", "b" * 201], "An option is 201 characters long; the limit is 200."),
    ],
)
def test_check_poll_refusals(question: str, options: list[str], error: str) -> None:
    with pytest.raises(Invalid) as raised:
        polls.check_poll(question, options)
    assert str(raised.value) == error
