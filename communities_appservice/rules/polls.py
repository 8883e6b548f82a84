"""Polls (MSC3381) as Element Web and Element X send and read them today: the events' content,
what a response selects, and the tally. Pure: no I/O.

Both Element clients still use the unstable names, because the stable `m.poll.*` types belong
to extensible events, which need a room version that rooms do not have yet (docs/architecture.md
cites what each client sends). So the bot sends `org.matrix.msc3381.poll.start` and `.end`, and
reads responses under both names.

The tally follows MSC3381: a voter's most recent response (by `origin_server_ts`) is their vote,
even when it is invalid; one naming an answer the poll does not have is spoiled (as if no
selection); a selection is truncated to `max_selections` and repeated answers count once;
responses after the poll's end are ignored, as if never sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Invalid

START = "org.matrix.msc3381.poll.start"
RESPONSE = "org.matrix.msc3381.poll.response"
END = "org.matrix.msc3381.poll.end"
STABLE_START, STABLE_RESPONSE, STABLE_END = "m.poll.start", "m.poll.response", "m.poll.end"
RESPONSE_TYPES = (RESPONSE, STABLE_RESPONSE)
END_TYPES = (END, STABLE_END)
TEXT = "org.matrix.msc1767.text"  # the extensible-events text block, unstable name
DISCLOSED = "org.matrix.msc3381.poll.disclosed"  # results visible while the poll is open

MIN_OPTIONS, MAX_OPTIONS = 2, 20  # MSC3381 truncates to 20 answers
MAX_QUESTION = 340  # what fits one line of Element's poll card comfortably; refused beyond
MAX_OPTION = 200


def check_poll(question: str, options: Sequence[str]) -> tuple[str, list[str]]:
    """The question and options, trimmed; a clear refusal when they cannot be a poll."""
    question = question.strip()
    if not question:
        raise Invalid("A poll needs a question.")
    if len(question) > MAX_QUESTION:
        raise Invalid(
            "The question is {} characters long; the limit is {}.", len(question), MAX_QUESTION
        )
    cleaned = [o.strip() for o in options]
    if len(cleaned) < MIN_OPTIONS or len(cleaned) > MAX_OPTIONS:
        raise Invalid(
            "A poll has {} to {} options; this one has {}.", MIN_OPTIONS, MAX_OPTIONS, len(cleaned)
        )
    for option in cleaned:
        if not option:
            raise Invalid("An option must not be empty.")
        if len(option) > MAX_OPTION:
            raise Invalid(
                "An option is {} characters long; the limit is {}.", len(option), MAX_OPTION
            )
    folded = [o.casefold() for o in cleaned]
    if len(set(folded)) != len(folded):
        raise Invalid("Two options are the same; each option must differ.")
    return question, cleaned


def answer_ids(count: int) -> list[str]:
    """The answers' ids: their numbers, as people see them in the text fallback."""
    return [str(i) for i in range(1, count + 1)]


def fallback(question: str, options: Sequence[str]) -> str:
    """What a client without polls shows: the question and the numbered options."""
    return "\n".join([question, *(f"{i}. {o}" for i, o in enumerate(options, 1))])


def start_content(question: str, options: Sequence[str], max_selections: int) -> dict[str, Any]:
    """An `org.matrix.msc3381.poll.start` as Element sends one (disclosed: members see the
    counts once they voted), with the text fallback, also as `body` for older clients."""
    text = fallback(question, options)
    return {
        START: {
            "question": {TEXT: question, "body": question, "msgtype": "m.text"},
            "kind": DISCLOSED,
            "max_selections": max_selections,
            "answers": [
                {"id": i, TEXT: o} for i, o in zip(answer_ids(len(options)), options, strict=True)
            ],
        },
        TEXT: text,
        "body": text,
        "m.mentions": {},
    }


def end_content(summary: str) -> dict[str, Any]:
    """An `org.matrix.msc3381.poll.end`, `summary` its text fallback (the results); each
    room's copy refers to that room's poll (`m.relates_to`, `m.reference`)."""
    return {
        END: {},
        TEXT: summary,
        "body": summary,
        "m.mentions": {},
    }


def referenced(content: Mapping[str, Any]) -> str | None:
    """The event a response or an end refers to (`m.reference`), if any."""
    relates = content.get("m.relates_to")
    if isinstance(relates, Mapping) and relates.get("rel_type") == "m.reference":
        target = relates.get("event_id")
        return target if isinstance(target, str) else None
    return None


def selections(content: Mapping[str, Any]) -> list[str] | None:
    """What a response selects, as sent (unstable `answers` or stable `m.selections`);
    None when it carries no list at all (a spoiled vote)."""
    block = content.get(RESPONSE)
    answers = block.get("answers") if isinstance(block, Mapping) else content.get("m.selections")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return None
    return list(answers)


@dataclass(frozen=True)
class Vote:
    sender: str
    ts: int  # the response's origin_server_ts
    event_id: str
    answers: tuple[str, ...] | None  # None: spoiled as sent


@dataclass(frozen=True)
class Tally:
    counts: dict[str, int]  # answer id → votes, every answer present
    voters: int  # voters whose latest vote selects something valid
    spoiled: int  # voters whose latest vote is invalid

    def leaders(self) -> list[str]:
        top = max(self.counts.values(), default=0)
        return [a for a, n in self.counts.items() if top and n == top]


def tally(
    ids: Sequence[str], max_selections: int, votes: Iterable[Vote], end_ts: int | None = None
) -> Tally:
    """MSC3381's tally of `votes` (from every room the poll is in) for the answers `ids`."""
    latest: dict[str, Vote] = {}
    for vote in votes:
        if end_ts is not None and vote.ts > end_ts:
            continue  # after the end: as if never sent
        held = latest.get(vote.sender)
        if held is None or (vote.ts, vote.event_id) > (held.ts, held.event_id):
            latest[vote.sender] = vote
    counts = dict.fromkeys(ids, 0)
    voters = spoiled = 0
    for vote in latest.values():
        chosen = valid_choice(ids, max_selections, vote.answers)
        if chosen is None:
            spoiled += 1
            continue
        if not chosen:
            continue  # an empty selection withdraws the vote
        voters += 1
        for answer in chosen:
            counts[answer] += 1
    return Tally(counts, voters, spoiled)


def valid_choice(
    ids: Sequence[str], max_selections: int, answers: Sequence[str] | None
) -> list[str] | None:
    """The answers a vote counts for (truncated to `max_selections`, each once); None when
    spoiled (no list, or an answer the poll does not have)."""
    if answers is None:
        return None
    kept = list(answers)[: max(1, max_selections)]
    if any(a not in ids for a in kept):
        return None
    return list(dict.fromkeys(kept))
