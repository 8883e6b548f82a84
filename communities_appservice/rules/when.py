"""Times for scheduled announcements: what users type (English, French, Hebrew, Simplified
Chinese), the zones they live in, repeating series, and how an answer shows a time.

Pure functions: the clock is never read, `now` is always passed in. Natural language goes to
`dateparser` with the language given explicitly, never guessed; but only for the *day* ("tomorrow",
"lundi", "מחר", "明天"). The clock time ("9h30", "ב-9:00", "下午3点半", "9am") is read here, since
dateparser gets several of those wrong.

Local times that do not exist (the spring-forward gap, 02:30 on 2027-03-28 in Europe/Paris) move
forward by the length of the gap (03:30); ambiguous ones (the fall-back fold) take the first of
the two instants (fold=0). The same rule serves parsed times and the occurrences of a series.
"""

from __future__ import annotations

import calendar
import enum
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import dateparser
from babel.dates import format_skeleton

from .. import language
from ..errors import Invalid
from .durations import excerpt, parse_duration

LANGUAGES = ("en", "fr", "he", "zh")
MAX_WORDS = 6  # the most words `split_when` reads as the time
# Times people can type, in each language (a test reads every one).
EXAMPLES = {
    "en": ("tomorrow 09:00", "next monday 18:00", "in 2h", "2026-12-05 18:00"),
    "fr": ("demain 9h", "lundi prochain 18h", "dans 2h", "2026-12-05 18:00"),
    "he": ("מחר ב-9:00", "יום שני 18:00", "בעוד 2 שעות", "2026-12-05 18:00"),
    "zh": ("明天上午9点", "下周一18:00", "2小时后", "2026-12-05 18:00"),
}


def examples() -> str:
    """The example times of the language spoken, quoted, for an answer."""
    return ", ".join(f'"{e}"' for e in EXAMPLES.get(language.current(), EXAMPLES["en"]))


class Every(enum.StrEnum):
    """How often a series repeats."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# --- zones and showing -------------------------------------------------------------------------

_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")  # no dots: no "..", no "/x"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@cache
def _zone_keys() -> dict[str, str]:
    """The IANA names known here, by their case-folded form ("europe/paris" finds Europe/Paris)."""
    return {key.casefold(): key for key in available_timezones()}


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` ("Europe/Paris", "Asia/Jerusalem", "UTC"), case-insensitively."""
    key = name.strip()
    if _ZONE_NAME.fullmatch(key):
        try:
            return ZoneInfo(_zone_keys().get(key.casefold(), key))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise Invalid(
        '"{}" is not a time zone; give an IANA name of the form Area/City, such as Europe/Paris '
        "or UTC.",
        excerpt(name),
    )


def _offset(moment: datetime) -> str:
    """`moment`'s UTC offset as "UTC+02:00"."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return "UTC{}{:02}:{:02}".format(sign, *divmod(abs(minutes), 60))


def show(moment: datetime, tz: ZoneInfo) -> str:
    """`moment` in `tz`, e.g. "Sat 5 Dec 2026 18:00 (Europe/Paris)"; in a fall-back fold, where
    the local time happens twice, the UTC offset is added to tell which."""
    local = moment.astimezone(tz)
    clock = f"{local:%H:%M:%S}" if local.second else f"{local:%H:%M}"
    where = str(tz)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        where += ", " + _offset(local)
    if language.current() == language.ENGLISH:
        day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
    else:  # the locale's own order and names: "sam. 5 déc. 2026", "2026年12月5日周六"
        day = format_skeleton("yMMMEd", local, locale=language.locale())
    return f"{day} {clock} ({where})"


# --- wall-clock arithmetic -----------------------------------------------------------------------


def _localize(wall: datetime, tz: tzinfo) -> datetime:
    """The naive wall-clock time `wall` in `tz`: a time in a gap moves forward by the gap, an
    ambiguous one takes the first instant (fold=0)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


def _later(a: datetime, b: datetime) -> bool:
    """Whether instant `a` is strictly after `b` (folds included, unlike same-zone `>`)."""
    return a.astimezone(UTC) > b.astimezone(UTC)


def _nth(anchor: datetime, every: Every, n: int) -> datetime:
    """Occurrence `n` of the series starting at `anchor`, in wall-clock time of its zone."""
    if n == 0:
        return anchor
    wall = anchor.replace(tzinfo=None)
    if every is Every.DAY:
        wall += timedelta(days=n)
    elif every is Every.WEEK:
        wall += timedelta(weeks=n)
    else:
        year, month = divmod(wall.month - 1 + n, 12)
        year += wall.year
        last = calendar.monthrange(year, month + 1)[1]
        wall = wall.replace(year=year, month=month + 1, day=min(wall.day, last))
    assert anchor.tzinfo is not None
    return _localize(wall, anchor.tzinfo)


def _estimate(anchor: datetime, every: Every, target: datetime) -> int:
    """Roughly (±1) how many periods separate `anchor` from `target`, both local wall-clock."""
    if every is Every.MONTH:
        return (target.year - anchor.year) * 12 + target.month - anchor.month
    days = (target.date() - anchor.date()).days
    return days // 7 if every is Every.WEEK else days


def next_occurrence(anchor: datetime, every: Every, after: datetime) -> datetime:
    """The first occurrence strictly after `after` of anchor + n × period (n ≥ 0), counted in
    wall-clock time of the anchor's zone: the local time of day survives daylight-saving
    changes, a monthly series keeps the anchor's day of month (clamped to shorter months)."""
    if anchor.tzinfo is None or after.tzinfo is None:
        raise ValueError("next_occurrence needs aware datetimes")
    if _later(anchor, after):
        return anchor
    target = after.astimezone(anchor.tzinfo).replace(tzinfo=None)
    n = max(_estimate(anchor.replace(tzinfo=None), every, target), 0)
    while n > 0 and _later(_nth(anchor, every, n - 1), after):
        n -= 1
    while not _later(_nth(anchor, every, n), after):
        n += 1
    return _nth(anchor, every, n)


# --- reading what users type ---------------------------------------------------------------------

_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_COMPACT = re.compile(r"(?:in|dans|בעוד)\s*(\d+\s*[smhdw])|(\d+\s*[smhdw])\s*[以之]?后", re.I)
_RELATIVE = re.compile(r"^(?:in|dans|בעוד)\s|后$", re.IGNORECASE)

# Words dateparser skips ("tomorrow the" is tomorrow): a time never ends with one.
_FILLERS = frozenset(
    {"the", "at", "on", "of", "by", "and", "about", "from", "just", "a", "le", "la", "à", "et"}
)

# Clock times, read here: "09:00", "9:30pm", "9am", "noon", "9h30", "midi", "ב-9:00", "בשעה 9",
# "下午3点半", "晚上8点", "上午9:30"; each pattern has an hour `h`, maybe `m`, `s`, `ap`, `per`.
_NOT_AFTER = r"(?<![0-9A-Za-z:])"
_COLON = _NOT_AFTER + r"(?P<h>\d{1,2})[:：](?P<m>\d{2})(?:[:：](?P<s>\d{2}))?(?![\d:])"
_AMPM = r"\s*(?P<ap>[ap])\.?m\.?(?!\w)"
_EN_AT, _FR_AT = r"(?:(?<!\w)at\s+)?", r"(?:(?<!\w)[àa]\s*)?"
_HE_AT = r"(?<!\w)(?:בשעה\s*|ב[-־]?\s*)"
_ZH_PERIOD = r"(?P<per>凌晨|早上|早晨|上午|中午|下午|傍晚|晚上)?\s*"
_CLOCKS = {
    lang: tuple(re.compile(pattern, re.IGNORECASE) for pattern in patterns)
    for lang, patterns in {
        "en": (
            _EN_AT + _COLON + f"(?:{_AMPM})?",
            _EN_AT + _NOT_AFTER + r"(?P<h>\d{1,2})" + _AMPM,
            _EN_AT + r"(?<!\w)(?P<word>noon|midnight)(?!\w)",
        ),
        "fr": (
            _FR_AT + _COLON,
            _FR_AT + _NOT_AFTER + r"(?P<h>\d{1,2})\s?h(?P<m>\d{2})?(?!\w)",
            _FR_AT + r"(?<!\w)(?P<word>midi|minuit)(?!\w)",
        ),
        "he": (f"(?:{_HE_AT})?" + _COLON, _HE_AT + r"(?P<h>\d{1,2})(?![\d:\w])"),
        "zh": (
            _ZH_PERIOD + _COLON,
            _ZH_PERIOD + r"(?P<h>\d{1,2})\s*[点點时時](?:(?P<half>半)|(?P<m>\d{1,2})分?)?",
        ),
    }.items()
}
_CLOCK_WORDS = {"noon": 12, "midnight": 0, "midi": 12, "minuit": 0}

_ZH_DIGITS = {ch: int(d) for ch, d in zip("零〇一二两三四五六七八九", "001223456789", strict=True)}
_ZH_NUMBER = re.compile(r"(?<![周期拜])[零〇一二两三四五六七八九十]+")  # not 周一, 星期一
_ZH_WEEK = re.compile(r"(下|这|本)个?(?:周|星期|礼拜)([一二三四五六日天])")
_ZH_MONTH_DAY = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})[日号]")

# Day words dateparser misses, rewritten: "lundi prochain", "יום שני הבא", "ביום", "מחרתיים".
_FR_DAY = r"(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)"
_HE_DAY = r"(ראשון|שני|שלישי|רביעי|חמישי|שישי|שבת)"
_REWRITES = {
    lang: tuple((re.compile(pattern, re.IGNORECASE), by) for pattern, by in rules)
    for lang, rules in {
        "fr": ((rf"\b{_FR_DAY}\s+prochain\b", r"\1"), (rf"\bprochain\s+{_FR_DAY}\b", r"\1")),
        "he": (
            (r"(?<!\w)ב(?=יום\s)", ""),
            (rf"(?<!\w)(?:יום\s+)?{_HE_DAY}\s+הבא(?!\w)", r"יום \1"),
            (r"(?<!\w)מחרתיים(?!\w)", "בעוד יומיים"),
        ),
    }.items()
}


def _language(language: str) -> str:
    """The language code to read with: "fr-FR" → "fr"; unknown ones → "en"."""
    code = language.strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else "en"


def _zh_arabic(match: re.Match[str]) -> str:
    """A Chinese numeral up to 99 in digits ("十五" → "15", "两" → "2")."""
    text = match[0]
    head, ten, tail = text.partition("十")
    if not ten:
        return "".join(str(_ZH_DIGITS[ch]) for ch in text)
    if len(head) > 1 or len(tail) > 1 or "十" in tail:
        return text
    return str((_ZH_DIGITS[head] if head else 1) * 10 + (_ZH_DIGITS[tail] if tail else 0))


def _normalise(text: str, lang: str) -> str:
    """`text` on one line, with the forms dateparser misses rewritten into ones it knows."""
    text = " ".join(text.split())
    if lang == "zh":
        text = _ZH_NUMBER.sub(_zh_arabic, text)
    for pattern, by in _REWRITES.get(lang, ()):
        text = pattern.sub(by, text)
    return text


def _dateparse(text: str, lang: str, base: datetime) -> datetime | None:
    """dateparser in `lang`, relative to the naive `base`, preferring the future; naive."""
    try:
        found = dateparser.parse(
            text,
            languages=[lang],
            settings={
                "RELATIVE_BASE": base,
                "PREFER_DATES_FROM": "future",
                "TIMEZONE": "UTC",
                "RETURN_AS_TIMEZONE_AWARE": False,
            },
        )
    except (ValueError, OverflowError):
        return None
    if found is not None and found.tzinfo is not None:
        found = found.astimezone(UTC).replace(tzinfo=None)
    return found


def _day(text: str, lang: str, local_now: datetime) -> date | None:
    """The calendar day `text` names ("tomorrow", "lundi", "מחר", "下周一"), or None."""
    today = local_now.date()
    if text.isdigit() or all(word.casefold() in _FILLERS for word in text.split()):
        return None
    if lang == "zh" and (week := _ZH_WEEK.fullmatch(text)):
        monday = today - timedelta(days=today.weekday() - (7 if week[1] == "下" else 0))
        return monday + timedelta(days="一二三四五六日".index(week[2].replace("天", "日")))
    if lang == "zh" and (month_day := _ZH_MONTH_DAY.fullmatch(text)):
        year = int(month_day[1] or today.year)
        try:
            day = date(year, int(month_day[2]), int(month_day[3]))
            return day if month_day[1] or day >= today else day.replace(year=year + 1)
        except ValueError:
            return None
    found = _dateparse(text, lang, local_now.replace(tzinfo=None))
    return found.date() if found else None


def _clock_time(match: re.Match[str]) -> time | None:
    """The time of day a clock pattern matched, or None when it is out of range (25:00)."""
    parts = match.groupdict()
    if parts.get("word"):
        return time(_CLOCK_WORDS[parts["word"].lower()])
    hour, minute, second = (int(parts.get(key) or 0) for key in ("h", "m", "s"))
    if parts.get("half"):
        minute = 30
    if meridiem := parts.get("ap"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem.lower() == "p" else 0)
    period = parts.get("per")
    if period in ("下午", "傍晚", "晚上") and hour < 12 or period == "中午" and hour < 11:
        hour += 12
    elif period == "凌晨" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)


def _clock(text: str, lang: str) -> tuple[time | None, str, bool] | None:
    """The clock time in `text`: (the time or None if impossible, the rest of the text, whether
    the time ended the text); None when there is no clock time. Two of them are impossible."""
    for pattern in _CLOCKS[lang]:
        if match := pattern.search(text):
            rest = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
            if any(other.search(rest) for other in _CLOCKS[lang]):
                return None, rest, False
            return _clock_time(match), rest, match.end() == len(text)
    return None


def _interpret(text: str, now: datetime, tz: ZoneInfo, lang: str) -> tuple[datetime, bool] | None:
    """The moment `text` names (maybe in the past) and whether nothing can follow it (a day then
    a clock time); None when it is not a time; Invalid when it is one but unusable."""
    text = _normalise(text, lang)
    local_now = now.astimezone(tz)
    if _ISO.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text.upper())
        except ValueError:
            return None
        return (moment.astimezone(tz) if moment.tzinfo else _localize(moment, tz)), True
    if compact := _COMPACT.fullmatch(text):
        delta = parse_duration(compact[1] or compact[2])
        return (now.astimezone(UTC) + delta).astimezone(tz), False
    found = _clock(text, lang)
    if found is None:
        if _RELATIVE.search(text):
            base = now.astimezone(UTC).replace(tzinfo=None)
            later = _dateparse(text, lang, base)
            if later is None or later <= base:
                return None
            return (now.astimezone(UTC) + (later - base)).astimezone(tz), False
        if text and _day(text, lang, local_now) is not None:
            raise Invalid(
                '"{}" has no time of day; an announcement needs one, as in "{} 09:00".',
                excerpt(text),
                excerpt(text),
            )
        return None
    clock, rest, at_end = found
    if clock is None:
        return None
    if not rest:
        moment = _localize(datetime.combine(local_now.date(), clock), tz)
        if not _later(moment, now):
            moment = _localize(datetime.combine(local_now.date() + timedelta(days=1), clock), tz)
        return moment, False
    day = _day(rest, lang, local_now)
    if day is None:
        return None
    return _localize(datetime.combine(day, clock), tz), at_end


def _future(moment: datetime, now: datetime, tz: ZoneInfo) -> datetime:
    """`moment`, refused unless strictly after `now`."""
    if not _later(moment, now):
        raise Invalid("{} is in the past; give a later time.", show(moment, tz))
    return moment


def parse_when(text: str, *, now: datetime, tz: ZoneInfo, language: str) -> datetime:
    """The moment `text` names, aware in `tz`, strictly after `now`: ISO 8601, "in 2h", or
    natural language in `language` ("tomorrow 09:00", "demain 9h", "מחר ב-9:00", "明天上午9点")."""
    found = _interpret(text, now, tz, _language(language))
    if found is None:
        raise Invalid('"{}" is not a time I can read; try {}.', excerpt(text), examples())
    return _future(found[0], now, tz)


def split_when(
    words: list[str], *, now: datetime, tz: ZoneInfo, language: str
) -> tuple[datetime, int]:
    """The time at the start of `words` and how many words it took: the longest prefix of at
    most 6 words that reads as a time, stopping after a day followed by a clock time, and not
    ending with a filler word ("the", "à") that dateparser would skip."""
    lang = _language(language)
    best: tuple[datetime, int] | None = None
    error: Invalid | None = None
    for count in range(1, min(MAX_WORDS, len(words)) + 1):
        try:
            found = _interpret(" ".join(words[:count]), now, tz, lang)
        except Invalid as refused:
            error = refused
            continue
        if found is not None:
            best = found[0], count
            if found[1]:
                break
    if best is None:
        raise error or Invalid("Start with the time of the announcement, such as {}.", examples())
    moment, count = best
    while count > 1 and words[count - 1].casefold() in _FILLERS:
        try:
            shorter = _interpret(" ".join(words[: count - 1]), now, tz, lang)
        except Invalid:
            break
        if shorter is None:
            break
        moment, count = shorter[0], count - 1
    return _future(moment, now, tz), count
