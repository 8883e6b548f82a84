"""`rules.when`: times typed in four languages, zones, durations, repeating series, showing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from communities_appservice.errors import Invalid
from communities_appservice.rules.durations import parse_duration
from communities_appservice.rules.when import (
    Every,
    next_occurrence,
    parse_when,
    show,
    split_when,
    zone,
)

PARIS = ZoneInfo("Europe/Paris")

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)  # a Tuesday


def paris(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=PARIS)  # type: ignore[misc]


def when(text: str, language: str, tz: ZoneInfo = PARIS, now: datetime = NOW) -> datetime:
    return parse_when(text, now=now, tz=tz, language=language)


def refused(call: object, *args: object, **kwargs: object) -> str:
    """The one-line message of the Invalid that `call(*args, **kwargs)` raises."""
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    message = caught.value.message
    assert "\n" not in message and message
    return message


# --- zones ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Europe/Paris", "Asia/Jerusalem", "Asia/Shanghai", "UTC"])
def test_zone_reads_iana_names(name: str) -> None:
    assert zone(name).key == name


def test_zone_is_case_insensitive_and_forgives_blanks() -> None:
    assert zone(" europe/paris\n").key == "Europe/Paris"
    assert zone("utc").key == "UTC"


@pytest.mark.parametrize(
    "name",
    ["", " ", "Paris", "Europe/Nowhere", "Europe", "../etc/passwd", "/etc/localtime",
     "Europe/../UTC", "Europe/ Paris", "UTC+1", "Europe\\Paris", "x" * 300],
)  # fmt: skip
def test_zone_refuses_other_names(name: str) -> None:
    assert "Area/City" in refused(zone, name)


# --- parse_when: ISO and relative ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-05T18:00", paris(2026, 12, 5, 18, 0)),
        ("2026-12-05 18:00", paris(2026, 12, 5, 18, 0)),
        ("2026-12-05T18:00:30Z", paris(2026, 12, 5, 19, 0, 30)),
        ("2026-12-05t18:00z", paris(2026, 12, 5, 19, 0)),
        ("2026-12-05 18:00+01:00", paris(2026, 12, 5, 18, 0)),
        ("2026-12-05T18:00-05:00", paris(2026, 12, 6, 0, 0)),
    ],
)
@pytest.mark.parametrize("language", ["en", "fr", "he", "zh"])
def test_iso_8601(text: str, expected: datetime, language: str) -> None:
    moment = when(text, language)
    assert moment == expected and moment.tzinfo is PARIS


@pytest.mark.parametrize(
    ("text", "language", "delta"),
    [
        ("in 30s", "en", timedelta(seconds=30)),
        ("in 10m", "en", timedelta(minutes=10)),
        ("in 2h", "en", timedelta(hours=2)),
        ("in 3d", "en", timedelta(days=3)),
        ("in 1w", "en", timedelta(weeks=1)),
        ("in 2 hours", "en", timedelta(hours=2)),
        ("in 3 days", "en", timedelta(days=3)),
        ("in 2h", "fr", timedelta(hours=2)),
        ("dans 2h", "fr", timedelta(hours=2)),
        ("dans 45 minutes", "fr", timedelta(minutes=45)),
        ("dans 2 heures", "fr", timedelta(hours=2)),
        ("בעוד שעתיים", "he", timedelta(hours=2)),
        ("בעוד 2 שעות", "he", timedelta(hours=2)),
        ("בעוד 2h", "he", timedelta(hours=2)),
        ("2小时后", "zh", timedelta(hours=2)),
        ("两小时后", "zh", timedelta(hours=2)),
        ("3天后", "zh", timedelta(days=3)),
        ("2h后", "zh", timedelta(hours=2)),
    ],
)
def test_relative(text: str, language: str, delta: timedelta) -> None:
    assert when(text, language) == NOW + delta


def test_relative_counts_real_time_across_a_dst_change() -> None:
    now = paris(2027, 3, 28, 1, 30)  # 02:00 → 03:00 half an hour later
    assert when("in 1h", "en", now=now) == paris(2027, 3, 28, 3, 30)
    assert when("dans 1 heure", "fr", now=now) == paris(2027, 3, 28, 3, 30)


# --- parse_when: natural language ----------------------------------------------------------------

NATURAL = [
    ("en", "tomorrow 09:00", (2026, 12, 2, 9, 0)),
    ("en", "tomorrow at 9am", (2026, 12, 2, 9, 0)),
    ("en", "Tomorrow at 9:30 PM", (2026, 12, 2, 21, 30)),
    ("en", "next monday 18:00", (2026, 12, 7, 18, 0)),
    ("en", "on friday at 7pm", (2026, 12, 4, 19, 0)),
    ("en", "18:00 tomorrow", (2026, 12, 2, 18, 0)),
    ("en", "tomorrow noon", (2026, 12, 2, 12, 0)),
    ("en", "dec 5 18:00", (2026, 12, 5, 18, 0)),
    ("en", "in 2 days at 08:15", (2026, 12, 3, 8, 15)),
    ("fr", "demain 9h", (2026, 12, 2, 9, 0)),
    ("fr", "demain à 9h30", (2026, 12, 2, 9, 30)),
    ("fr", "lundi prochain 18h", (2026, 12, 7, 18, 0)),
    ("fr", "prochain lundi 8h", (2026, 12, 7, 8, 0)),
    ("fr", "vendredi 20h", (2026, 12, 4, 20, 0)),
    ("fr", "le 5 décembre à 18h", (2026, 12, 5, 18, 0)),
    ("fr", "après-demain 9h", (2026, 12, 3, 9, 0)),
    ("fr", "demain à 18:00", (2026, 12, 2, 18, 0)),
    ("fr", "demain midi", (2026, 12, 2, 12, 0)),
    ("fr", "dans 2 jours à 9h", (2026, 12, 3, 9, 0)),
    ("he", "מחר ב-9:00", (2026, 12, 2, 9, 0)),
    ("he", "מחר בשעה 9", (2026, 12, 2, 9, 0)),
    ("he", "מחר ב־9:30", (2026, 12, 2, 9, 30)),
    ("he", "מחר 18:00", (2026, 12, 2, 18, 0)),
    ("he", "יום שני הבא ב-18:00", (2026, 12, 7, 18, 0)),
    ("he", "ביום שני בשעה 18", (2026, 12, 7, 18, 0)),
    ("he", "מחרתיים ב-9:00", (2026, 12, 3, 9, 0)),
    ("he", "שבת ב-20:00", (2026, 12, 5, 20, 0)),
    ("zh", "明天上午9点", (2026, 12, 2, 9, 0)),
    ("zh", "明天下午3点半", (2026, 12, 2, 15, 30)),
    ("zh", "下周一18:00", (2026, 12, 7, 18, 0)),
    ("zh", "下周日上午10点", (2026, 12, 13, 10, 0)),
    ("zh", "明天晚上八点", (2026, 12, 2, 20, 0)),
    ("zh", "后天9点", (2026, 12, 3, 9, 0)),
    ("zh", "周五下午3点15分", (2026, 12, 4, 15, 15)),
    ("zh", "明天 9:30", (2026, 12, 2, 9, 30)),
    ("zh", "12月5日18:00", (2026, 12, 5, 18, 0)),
    ("zh", "十二月五日下午6点", (2026, 12, 5, 18, 0)),
]


@pytest.mark.parametrize(("language", "text", "expected"), NATURAL)
def test_natural_language(language: str, text: str, expected: tuple[int, ...]) -> None:
    moment = when(text, language)
    assert moment == paris(*expected) and moment.tzinfo is PARIS


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("en", "18:00", (2026, 12, 1, 18, 0)),  # still ahead today
        ("en", "9:00", (2026, 12, 2, 9, 0)),  # gone today: tomorrow
        ("en", "10:00", (2026, 12, 2, 10, 0)),  # not strictly after now
        ("en", "9:30pm", (2026, 12, 1, 21, 30)),
        ("fr", "9h", (2026, 12, 2, 9, 0)),
        ("fr", "18h30", (2026, 12, 1, 18, 30)),
        ("he", "ב-9:00", (2026, 12, 2, 9, 0)),
        ("he", "בשעה 18", (2026, 12, 1, 18, 0)),
        ("zh", "下午3点", (2026, 12, 1, 15, 0)),
        ("zh", "上午9点", (2026, 12, 2, 9, 0)),
    ],
)
def test_time_without_a_day_is_the_next_one(
    language: str, text: str, expected: tuple[int, ...]
) -> None:
    assert when(text, language) == paris(*expected)


def test_the_result_is_in_the_given_zone() -> None:
    jerusalem = ZoneInfo("Asia/Jerusalem")
    moment = when("מחר ב-9:00", "he", tz=jerusalem)
    assert moment.tzinfo is jerusalem
    assert moment == datetime(2026, 12, 2, 9, 0, tzinfo=jerusalem)
    assert when("明天上午9点", "zh", tz=ZoneInfo("Asia/Shanghai")).utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "dec 5 18:00"),
        ("fr", "le 5 décembre à 18h"),
        ("he", "5 בדצמבר ב-18:00"),
        ("zh", "12月5日18:00"),
    ],
)
def test_days_are_counted_from_now_not_from_the_clock(language: str, text: str) -> None:
    now = paris(2031, 6, 3, 10, 0)
    assert when(text, language, now=now) == paris(2031, 12, 5, 18, 0)
    assert when("tomorrow 09:00", "en", now=now) == paris(2031, 6, 4, 9, 0)


def test_tomorrow_is_tomorrow_in_the_given_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # already 2 Dec, 04:00, in Shanghai
    assert when("明天上午9点", "zh", tz=shanghai, now=now) == datetime(
        2026, 12, 3, 9, 0, tzinfo=shanghai
    )
    assert when("9:00", "en", tz=shanghai, now=now) == datetime(2026, 12, 2, 9, 0, tzinfo=shanghai)


@pytest.mark.parametrize("language", ["de", "", "xx", "EN"])
def test_unknown_language_reads_english(language: str) -> None:
    assert when("tomorrow 09:00", language) == paris(2026, 12, 2, 9, 0)


def test_regional_language_codes() -> None:
    assert when("demain 9h", "fr-FR") == paris(2026, 12, 2, 9, 0)
    assert when("明天上午9点", "zh_CN") == paris(2026, 12, 2, 9, 0)


@pytest.mark.parametrize(
    ("language", "text"),
    [("en", "tomorrow"), ("fr", "demain"), ("he", "מחר"), ("zh", "明天"), ("en", "2026-12-05")],
)
def test_a_day_without_a_time_is_refused(language: str, text: str) -> None:
    assert "no time of day" in refused(when, text, language)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "today 09:00"),
        ("en", "2026-11-30T18:00"),
        ("fr", "2026-12-01 10:00"),
        ("he", "2026-12-01T09:00:00Z"),
        ("zh", "2020-01-01 00:00"),
    ],
)
def test_the_past_is_refused(language: str, text: str) -> None:
    message = refused(when, text, language)
    assert "in the past" in message and "(Europe/Paris)" in message


def test_the_past_message_shows_the_time() -> None:
    assert refused(when, "today 09:00", "en").startswith("Tue 1 Dec 2026 09:00 (Europe/Paris)")


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "Hello"),
        ("en", ""),
        ("en", "25:00"),
        ("en", "tomorrow 13pm"),
        ("en", "2026-02-30T10:00"),
        ("en", "tomorrow 09:00 10:00"),
        ("fr", "Réunion"),
        ("fr", "demain 9h Réunion"),
        ("he", "שלום"),
        ("zh", "大家好"),
        ("zh", "明天25点"),
        ("en", "in 0s"),
        ("en", "in 2x"),
        ("en", "line one\nline two"),
    ],
)
def test_nonsense_is_refused(language: str, text: str) -> None:
    message = refused(when, text, language)
    assert "not" in message


def test_too_long_a_relative_time_is_refused() -> None:
    assert "366 days" in refused(when, "in 400d", "en")


# --- split_when ----------------------------------------------------------------------------------

SPLITS = [
    ("en", "tomorrow 09:00 Hello everyone", (2026, 12, 2, 9, 0), 2),
    ("en", "tomorrow at 9am Hello", (2026, 12, 2, 9, 0), 3),
    ("en", "tomorrow 09:00 The meeting moved", (2026, 12, 2, 9, 0), 2),
    ("en", "tomorrow 09:00 May the force", (2026, 12, 2, 9, 0), 2),
    ("en", "tomorrow 09:00 Today is the day", (2026, 12, 2, 9, 0), 2),
    ("en", "18:00 tomorrow Hello", (2026, 12, 2, 18, 0), 2),
    ("en", "18:00 today the plan", (2026, 12, 1, 18, 0), 2),
    ("en", "next monday 18:00 Sprint review", (2026, 12, 7, 18, 0), 3),
    ("en", "in 2h Hello", (2026, 12, 1, 12, 0), 2),
    ("en", "in 2 hours Hello", (2026, 12, 1, 12, 0), 3),
    ("en", "2026-12-05 18:00 Party", (2026, 12, 5, 18, 0), 2),
    ("fr", "demain 9h Réunion", (2026, 12, 2, 9, 0), 2),
    ("fr", "demain à 9h30 à tous", (2026, 12, 2, 9, 30), 3),
    ("fr", "9h demain à tous", (2026, 12, 2, 9, 0), 2),
    ("fr", "9h lundi prochain Réunion", (2026, 12, 7, 9, 0), 3),
    ("fr", "lundi prochain 18h Le bureau ferme", (2026, 12, 7, 18, 0), 3),
    ("fr", "dans 2h Bonjour", (2026, 12, 1, 12, 0), 2),
    ("he", "מחר ב-9:00 שלום לכולם", (2026, 12, 2, 9, 0), 2),
    ("he", "מחר ב-18:00 שבת שלום", (2026, 12, 2, 18, 0), 2),
    ("he", "מחר בשעה 9 הודעה", (2026, 12, 2, 9, 0), 3),
    ("he", "בעוד שעתיים שלום", (2026, 12, 1, 12, 0), 2),
    ("zh", "明天上午9点 大家好", (2026, 12, 2, 9, 0), 1),
    ("zh", "明天 上午9点 大家好", (2026, 12, 2, 9, 0), 2),
    ("zh", "下周一18:00 开会", (2026, 12, 7, 18, 0), 1),
    ("zh", "2小时后 大家好", (2026, 12, 1, 12, 0), 1),
]


@pytest.mark.parametrize(("language", "line", "expected", "count"), SPLITS)
def test_split_when_leaves_the_text(
    language: str, line: str, expected: tuple[int, ...], count: int
) -> None:
    words = line.split()
    assert split_when(words, now=NOW, tz=PARIS, language=language) == (paris(*expected), count)


@pytest.mark.parametrize(
    ("language", "words", "expected"),
    [
        ("en", ["tomorrow 09:00", "Hello"], (2026, 12, 2, 9, 0)),
        ("fr", ["demain à 9h", "Réunion"], (2026, 12, 2, 9, 0)),
        ("he", ["מחר ב-9:00", "שלום"], (2026, 12, 2, 9, 0)),
        ("zh", ["明天 下午3点半", "大家好"], (2026, 12, 2, 15, 30)),
    ],
)
def test_split_when_takes_a_quoted_time(
    language: str, words: list[str], expected: tuple[int, ...]
) -> None:
    assert split_when(words, now=NOW, tz=PARIS, language=language) == (paris(*expected), 1)


def test_split_when_takes_the_whole_line_when_it_is_a_time() -> None:
    assert split_when(["tomorrow", "09:00"], now=NOW, tz=PARIS, language="en")[1] == 2


@pytest.mark.parametrize(
    ("language", "words", "needle"),
    [
        ("en", [], "Start with the time"),
        ("en", ["Hello", "everyone"], "Start with the time"),
        ("fr", ["Réunion", "demain", "9h"], "Start with the time"),
        ("he", ["שלום", "מחר"], "Start with the time"),
        ("zh", ["大家好"], "Start with the time"),
        ("en", ["tomorrow", "Hello"], "no time of day"),
        ("fr", ["demain", "Bonjour"], "no time of day"),
        ("en", ["today", "09:00", "Hello"], "in the past"),
        ("en", ["in", "400d", "Hello"], "366 days"),
    ],
)
def test_split_when_refuses(language: str, words: list[str], needle: str) -> None:
    message = refused(split_when, words, now=NOW, tz=PARIS, language=language)
    assert needle in message


def test_split_when_refuses_a_time_after_six_words() -> None:
    words = ["a", "b", "c", "d", "e", "f", "09:00"]
    assert "Start with the time" in refused(split_when, words, now=NOW, tz=PARIS, language="en")


# --- daylight saving: gaps and folds -------------------------------------------------------------


def test_a_time_in_the_spring_gap_moves_forward() -> None:
    now = paris(2027, 3, 1, 0, 0)
    moment = when("2027-03-28T02:30", "en", now=now)
    assert moment == paris(2027, 3, 28, 3, 30) and moment.utcoffset() == timedelta(hours=2)
    assert moment.astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)


def test_a_time_in_the_autumn_fold_takes_the_first() -> None:
    now = paris(2027, 10, 1, 0, 0)
    moment = when("2027-10-31 02:30", "en", now=now)
    assert moment.utcoffset() == timedelta(hours=2) and moment.fold == 0
    assert moment.astimezone(UTC) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert show(moment, PARIS) == "Sun 31 Oct 2027 02:30 (Europe/Paris, UTC+02:00)"


# --- parse_duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        (" 2 H ", timedelta(hours=2)),
        ("366d", timedelta(days=366)),
        ("52w", timedelta(weeks=52)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0s", "-1h", "1.5h", "h", "10", "1y", "2 hours", "367d", "53w", "9" * 40 + "w"]
)
def test_parse_duration_refuses(text: str) -> None:
    refused(parse_duration, text)


# --- next_occurrence -----------------------------------------------------------------------------


def test_daily_across_spring_forward() -> None:
    anchor = paris(2027, 3, 26, 9, 0)
    before = next_occurrence(anchor, Every.DAY, paris(2027, 3, 27, 9, 0))
    after = next_occurrence(anchor, Every.DAY, before)
    assert before == paris(2027, 3, 28, 9, 0) and after == paris(2027, 3, 29, 9, 0)
    assert before.utcoffset() == timedelta(hours=2)
    assert before.astimezone(UTC).hour == 7 and anchor.astimezone(UTC).hour == 8


def test_weekly_across_both_changes_keeps_nine_local() -> None:
    anchor = paris(2027, 3, 22, 9, 0)  # a Monday in winter
    spring = next_occurrence(anchor, Every.WEEK, paris(2027, 3, 28, 12, 0))
    assert spring == paris(2027, 3, 29, 9, 0)
    assert (spring.hour, spring.utcoffset()) == (9, timedelta(hours=2))
    assert spring.astimezone(UTC).hour == 7
    autumn = next_occurrence(anchor, Every.WEEK, paris(2027, 10, 31, 12, 0))
    assert autumn == paris(2027, 11, 1, 9, 0)
    assert (autumn.hour, autumn.utcoffset()) == (9, timedelta(hours=1))
    assert autumn.astimezone(UTC).hour == 8


def test_daily_across_fall_back() -> None:
    anchor = paris(2027, 10, 1, 9, 0)
    moment = next_occurrence(anchor, Every.DAY, paris(2027, 10, 30, 9, 0))
    assert moment == paris(2027, 10, 31, 9, 0) and moment.utcoffset() == timedelta(hours=1)


def test_monthly_across_dst_keeps_nine_local() -> None:
    anchor = paris(2027, 1, 15, 9, 0)
    april = next_occurrence(anchor, Every.MONTH, paris(2027, 3, 20, 0, 0))
    assert april == paris(2027, 4, 15, 9, 0) and april.utcoffset() == timedelta(hours=2)
    march = next_occurrence(anchor, Every.MONTH, paris(2027, 3, 1, 0, 0))
    assert march == paris(2027, 3, 15, 9, 0) and march.utcoffset() == timedelta(hours=1)


def test_monthly_clamps_to_the_month_end_from_the_anchor() -> None:
    anchor = paris(2027, 1, 31, 9, 0)
    series = [anchor]
    for _ in range(5):
        series.append(next_occurrence(anchor, Every.MONTH, series[-1]))
    assert [moment.date().isoformat() for moment in series] == [
        "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31", "2027-06-30",
    ]  # fmt: skip
    assert all(moment.hour == 9 for moment in series)
    leap = next_occurrence(anchor, Every.MONTH, paris(2028, 2, 1, 0, 0))
    assert leap == paris(2028, 2, 29, 9, 0)


def test_the_anchor_itself_when_still_ahead() -> None:
    anchor = paris(2027, 1, 31, 9, 0)
    assert next_occurrence(anchor, Every.WEEK, NOW) == anchor
    assert next_occurrence(anchor, Every.DAY, anchor - timedelta(microseconds=1)) == anchor
    assert next_occurrence(anchor, Every.DAY, anchor) == paris(2027, 2, 1, 9, 0)


def test_a_far_past_anchor() -> None:
    weekly = next_occurrence(paris(1970, 1, 5, 9, 0), Every.WEEK, NOW)  # a Monday
    assert weekly == paris(2026, 12, 7, 9, 0)
    daily = next_occurrence(paris(1901, 6, 1, 9, 0), Every.DAY, NOW)
    assert daily == paris(2026, 12, 2, 9, 0)
    monthly = next_occurrence(paris(1900, 1, 31, 9, 0), Every.MONTH, paris(2027, 2, 10, 0, 0))
    assert monthly == paris(2027, 2, 28, 9, 0)


def test_a_series_through_the_gap_and_the_fold() -> None:
    gap = next_occurrence(paris(2027, 3, 20, 2, 30), Every.DAY, paris(2027, 3, 28, 0, 0))
    assert gap == paris(2027, 3, 28, 3, 30) and gap.utcoffset() == timedelta(hours=2)
    back = next_occurrence(paris(2027, 3, 20, 2, 30), Every.DAY, gap)
    assert back == paris(2027, 3, 29, 2, 30)  # from the anchor, not from the moved time
    fold = next_occurrence(paris(2027, 10, 20, 2, 30), Every.DAY, paris(2027, 10, 31, 0, 0))
    assert fold.astimezone(UTC) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # the first 02:30
    after_fold = next_occurrence(paris(2027, 10, 20, 2, 30), Every.DAY, fold)
    assert after_fold == paris(2027, 11, 1, 2, 30)


def test_next_occurrence_in_another_zone_than_after() -> None:
    anchor = datetime(2027, 3, 1, 9, 0, tzinfo=ZoneInfo("Asia/Jerusalem"))
    moment = next_occurrence(anchor, Every.DAY, datetime(2027, 3, 10, 12, 0, tzinfo=UTC))
    assert moment == datetime(2027, 3, 11, 9, 0, tzinfo=ZoneInfo("Asia/Jerusalem"))


def test_next_occurrence_needs_aware_datetimes() -> None:
    with pytest.raises(ValueError):
        next_occurrence(datetime(2027, 1, 1), Every.DAY, NOW)


ZONES = [
    "Europe/Paris", "America/New_York", "Asia/Jerusalem", "Australia/Lord_Howe",
    "America/Santiago", "Asia/Kolkata", "UTC", "Europe/London", "Pacific/Chatham",
]  # fmt: skip


def _series(anchor: datetime, every: Every, n: int) -> datetime:
    """Occurrence `n`, independently: dateutil's month arithmetic, gaps forward, folds first."""
    if n == 0:
        return anchor
    step = {Every.DAY: relativedelta(days=n), Every.WEEK: relativedelta(weeks=n)}
    wall = anchor.replace(tzinfo=None) + step.get(every, relativedelta(months=n))
    return datetime.fromtimestamp(wall.replace(tzinfo=anchor.tzinfo).timestamp(), anchor.tzinfo)


@settings(max_examples=200, deadline=None)
@given(
    wall=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)),
    fold=st.integers(0, 1),
    name=st.sampled_from(ZONES),
    every=st.sampled_from(list(Every)),
    seconds=st.integers(-40 * 86400, 30 * 366 * 86400),
)
def test_next_occurrence_properties(
    wall: datetime, fold: int, name: str, every: Every, seconds: int
) -> None:
    tz = ZoneInfo(name)
    anchor = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC).astimezone(tz)
    after = anchor.astimezone(UTC) + timedelta(seconds=seconds)
    moment = next_occurrence(anchor, every, after)
    assert moment.astimezone(UTC) > after
    local, start = moment.astimezone(tz), anchor.replace(tzinfo=None)
    days = (local.date() - start.date()).days
    months = (local.year - start.year) * 12 + local.month - start.month
    n = {Every.DAY: days, Every.WEEK: days // 7, Every.MONTH: months}[every]
    assert moment == _series(anchor, every, n)  # a member of the series
    if n > 0:
        assert _series(anchor, every, n - 1).astimezone(UTC) <= after  # none skipped
        wanted = local.replace(hour=start.hour, minute=start.minute, second=start.second)
        wanted = wanted.replace(microsecond=start.microsecond, tzinfo=None)
        if local.time() != start.time():  # only a gap moves it: that wall time does not exist
            roundtrip = wanted.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
            assert roundtrip.replace(tzinfo=None) != wanted
    else:
        assert moment == anchor


# --- show ----------------------------------------------------------------------------------------


def test_show() -> None:
    assert show(paris(2026, 12, 5, 18, 0), PARIS) == "Sat 5 Dec 2026 18:00 (Europe/Paris)"
    utc = datetime(2026, 12, 5, 17, 0, 30, 123, tzinfo=UTC)
    assert show(utc, PARIS) == "Sat 5 Dec 2026 18:00:30 (Europe/Paris)"
    assert show(utc, ZoneInfo("Asia/Jerusalem")) == "Sat 5 Dec 2026 19:00:30 (Asia/Jerusalem)"


def test_show_tells_the_two_halves_of_a_fold_apart() -> None:
    first = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    second = first + timedelta(hours=1)
    assert show(first, PARIS) == "Sun 31 Oct 2027 02:30 (Europe/Paris, UTC+02:00)"
    assert show(second, PARIS) == "Sun 31 Oct 2027 02:30 (Europe/Paris, UTC+01:00)"
    assert show(datetime(2027, 10, 31, 3, 0, tzinfo=UTC), PARIS).endswith("(Europe/Paris)")
