"""Parsing a passenger's answers for a delay claim, pure (issue 7).

Dates, station pairs and departure times as people type them on a phone, read the UK
way: day first, Europe/London wall-clock time. Every parser returns either a value or a
``Rejected`` with a reason the bot can say back, never an exception.

The departure leaves as an ISO 8601 local time with its UTC offset, so 08:02 on the
last Sunday of March is ``+01:00`` and on the Saturday before it ``+00:00``.

Issue 20 added, for answers as passengers really type them:

- ``parse_journey_date`` also reads ``2 days ago``, ``yday``, ``the 1st``, ``3rd``,
  ``1st Dec``; ISO ``2026-12-01`` is always year-month-day; every refusal of a date it
  could read names the date it understood ("12/01/2026 reads as Monday 12 January 2026,
  more than 28 days ago ...").
- ``parse_departure_time`` also reads ``quarter past 8``, ``half 5`` (5:30),
  ``8:15 in the evening``, ``about 8``, ``8 in the morning``. A time that needs am or pm
  is refused with ``AmbiguousHour(reason, hour, minute)`` (a ``Rejected``, so old callers
  work unchanged); the answer to "Is that 8am or 8pm?" goes to
  ``resolve_half_day(hour, text, minute=0) -> time | None``.
- ``parse_station_answer(text, *, now, window_days) -> StationAnswer | Rejected``: the
  stations answer, names as typed (phrases around them dropped) and each resolved
  against the GB list (``shared.stations``: ``Match``/``Choice``/``NoMatch``), plus any
  date or time given in the same answer, for the later questions.
- ``extract_journey(text, *, now, window_days) -> JourneyDraft``: whatever one free-text
  message gives ("my train from kings cross to leeds yesterday was 40 mins late"):
  date, stations and time, each ``None`` when absent; best effort.
- ``parse_stations`` keeps its old contract (names as typed, ``Stations``) for the
  current conversation, now with surrounding phrases and a trailing time or date
  dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dateutil import parser as date_parser

from shared.replies import R, say

if TYPE_CHECKING:
    from shared import stations as gb


class _LazyPattern:
    """A regular expression compiled on first use. Issue 20's patterns cost ~1.5 ms to
    compile; the webhook's cold start should not pay for answers it has not seen yet."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, self.flags)


UK = ZoneInfo("Europe/London")
MAX_ANSWER_CHARS = 100
MAX_STATION_CHARS = 60

_WEEKDAYS = {
    name: index
    for index, names in enumerate(
        (
            ("monday", "mon"),
            ("tuesday", "tue", "tues"),
            ("wednesday", "wed"),
            ("thursday", "thu", "thur", "thurs"),
            ("friday", "fri"),
            ("saturday", "sat"),
            ("sunday", "sun"),
        )
    )
    for name in names
}
_RELATIVE_DAYS = {
    "today": 0,
    "tonight": 0,
    "this morning": 0,
    "this evening": 0,
    "yesterday": 1,
    "yday": 1,
    "yest": 1,
    "last night": 1,
    "day before yesterday": 2,
    "the day before yesterday": 2,
}
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_DAYS_AGO = _LazyPattern(r"^(?P<count>[0-9]{1,3}|[a-z]+)\s+(?P<unit>days?|weeks?)\s+ago$")
_ISO_DATE = _LazyPattern(r"^(?P<year>[0-9]{4})[-/.](?P<month>[0-9]{1,2})[-/.](?P<day>[0-9]{1,2})$")
_ORDINAL_DAY = _LazyPattern(r"^(?:on\s+)?(?:the\s+)?(?P<day>[0-9]{1,2})(?:st|nd|rd|th)$")
# Two defaults that differ in day, month and year (both leap years, both 31-day months):
# a field the text did not give takes the default, so the two parses disagree on it.
_NEAR_FUTURE_DAYS = 60
ENGLISH = "en-GB"  # Rejected.reason's language
_PROBE_DEFAULTS = (datetime(2000, 1, 1), datetime(2004, 12, 28))


@dataclass(frozen=True)
class Rejected:
    """An answer refused: ``reason`` in English (logs, tests); ``key`` and ``values`` say
    it in the passenger's language (``replies.say``)."""

    reason: str
    key: R | None = None
    values: tuple[tuple[str, object], ...] = ()


def refused(key: R, **values: object) -> Rejected:
    """A refusal worded by the catalogue (D126): English here, the passenger's language
    when the conversation says it."""
    return Rejected(say(ENGLISH, key, **values), key, tuple(values.items()))


@dataclass(frozen=True)
class AmbiguousHour(Rejected):
    """A clock time without am or pm ("8", "half 5"): ask, then ``resolve_half_day``."""

    hour: int = 0  # 1 to 12
    minute: int = 0


def _clean(text: str) -> str:
    return " ".join(text.strip().casefold().split()).rstrip(".!")


def uk_today(now: datetime) -> date:
    return now.astimezone(UK).date()


def parse_journey_date(text: str, *, now: datetime, window_days: int) -> date | Rejected:
    """``today``, ``yesterday``, ``Monday``, ``last fri``, ``15 Nov``, ``15/11``,
    ``15/11/2026``, ``2026-11-15``; within the claim window, never in the future."""
    today = uk_today(now)
    cleaned = _clean(text)
    if not cleaned or len(cleaned) > MAX_ANSWER_CHARS:
        return refused(R.REASON_DATE_UNREAD)
    found: date | Rejected | None = _relative_date(cleaned, today)
    if found is None:
        found = _calendar_date(cleaned, today)
    if isinstance(found, Rejected):
        return found
    if found is None:
        return refused(R.REASON_DATE_UNREAD)
    # Say what we understood, so a misread ("12/01" for 1 December) shows at once.
    understood = {"typed": " ".join(text.split()), "date": describe_date(found)}
    if found > today:
        return refused(R.REASON_DATE_IN_FUTURE, **understood)
    if (today - found).days > window_days:
        return refused(R.REASON_DATE_TOO_OLD, **understood, days=window_days)
    return found


def _relative_date(cleaned: str, today: date) -> date | None:
    if cleaned in _RELATIVE_DAYS:
        return today - timedelta(days=_RELATIVE_DAYS[cleaned])
    ago = _DAYS_AGO.compiled.match(cleaned)
    if ago:
        count_text = ago["count"]
        count = int(count_text) if count_text.isdigit() else _NUMBER_WORDS.get(count_text)
        if count is None:
            return None
        days = count * (7 if ago["unit"].startswith("week") else 1)
        return today - timedelta(days=min(days, 9999))
    ordinal = _ORDINAL_DAY.compiled.match(cleaned)
    if ordinal:
        return _most_recent_day_of_month(int(ordinal["day"]), today)
    words = cleaned.removeprefix("on ").split()
    strictly_before = False
    if len(words) == 2 and words[0] == "last":
        strictly_before, words = True, words[1:]
    if len(words) == 1 and words[0] in _WEEKDAYS:
        back = (today.weekday() - _WEEKDAYS[words[0]]) % 7
        if back == 0 and strictly_before:
            back = 7
        return today - timedelta(days=back)
    return None


def _most_recent_day_of_month(day: int, today: date) -> date | None:
    """ "the 3rd": this month's when it has come, else the latest month that has one."""
    year, month = today.year, today.month
    for _ in range(3):
        try:
            candidate = date(year, month, day)
        except ValueError:  # the 31st in a 30-day month, or day 0 or 40
            candidate = None
        if candidate is not None and candidate <= today:
            return candidate
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return None


def _calendar_date(cleaned: str, today: date) -> date | Rejected | None:
    iso = _ISO_DATE.compiled.match(cleaned)
    if iso:  # year first means year-month-day, whatever the day-first rule says
        try:
            return date(int(iso["year"]), int(iso["month"]), int(iso["day"]))
        except ValueError:
            return None
    try:
        first, second = (
            date_parser.parse(cleaned, dayfirst=True, default=default)
            for default in _PROBE_DEFAULTS
        )
    except (ValueError, OverflowError, TypeError, ArithmeticError):
        return None
    if (first.day, first.month) != (second.day, second.month):
        return None  # no day or no month in the text: "Nov", "2026", "8"
    if first.year == second.year:
        try:
            return date(first.year, first.month, first.day)
        except ValueError:
            return None
    # No year given: the most recent such day, this year or last; a day just ahead is
    # read as this year's, so the answer is "in the future", not "too long ago".
    for year in (today.year, today.year - 1):
        try:
            candidate = date(year, first.month, first.day)
        except ValueError:  # 29 Feb in a year without one
            continue
        if candidate <= today + timedelta(days=_NEAR_FUTURE_DAYS):
            return candidate
    return refused(R.REASON_DATE_NOT_THIS_YEAR)


_SEPARATOR = r"(?:\s+to\s+|\s+-+\s+|\s*[\u2013\u2014\u2192]\s*|\s*-+>\s*|\s+>\s+)"
_STATIONS = re.compile(rf"^(?:from\s+)?(?P<origin>.+?){_SEPARATOR}(?P<destination>.+)$", re.I)
_HAS_SEPARATOR = re.compile(_SEPARATOR, re.I)


@dataclass(frozen=True)
class Stations:
    origin: str
    destination: str


def parse_stations(text: str) -> Stations | Rejected:
    """``Leeds to York``, ``from Leeds to York``, ``Leeds - York``: both names as typed
    (trimmed, spaces collapsed), without phrases around them ("I went from") or a time or
    date after them ("at 08:02"). The conversation's current entry point; the resolving
    one is ``parse_station_answer``."""
    tidy = " ".join(text.split())
    if len(tidy) > 2 * MAX_STATION_CHARS + 10 + MAX_ANSWER_CHARS:
        return refused(R.REASON_STATIONS_TOO_LONG)
    rest = _drop_phrases(_take_when(tidy)[0])
    if len(rest) > 2 * MAX_STATION_CHARS + 10:
        return refused(R.REASON_STATIONS_TOO_LONG)
    match = _STATIONS.match(rest)
    if not match:
        return refused(R.REASON_STATIONS_BOTH)
    origin = match["origin"].strip(" ,.")
    destination = match["destination"].strip(" ,.")
    checked = _check_names(origin, destination)
    if checked is not None:
        return checked
    if origin.casefold() == destination.casefold():
        return refused(R.REASON_SAME_STATIONS)
    return Stations(origin=origin, destination=destination)


def _check_names(origin: str, destination: str) -> Rejected | None:
    if _HAS_SEPARATOR.search(destination):
        return refused(R.REASON_STATIONS_JUST_TWO)
    for name in (origin, destination):
        if not any(character.isalpha() for character in name):
            return refused(R.REASON_STATION_LETTERS)
        if len(name) > MAX_STATION_CHARS:
            return refused(R.REASON_STATION_TOO_LONG, limit=MAX_STATION_CHARS)
    return None


# --- Stations resolved, with any date or time in the same answer (issue 20) -------------


_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
)
_WEEKDAY_WORDS = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_ORDINAL = r"[0-9]{1,2}(?:st|nd|rd|th)"
_DATE_IN_TEXT = _LazyPattern(
    rf"""\b(?:on\s+)?(?:
        (?:the\s+)?day\s+before\s+yesterday
      | yesterday | yday | yest | today | last\s+night
      | (?:[0-9]{{1,3}}|an?|one|two|three|four|five|six|seven|eight|nine|ten)
        \s+(?:days?|weeks?)\s+ago
      | (?:last\s+)?(?:{_WEEKDAY_WORDS})
      | [0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}
      | [0-9]{{1,2}}[/-][0-9]{{1,2}}(?:[/-][0-9]{{2,4}})?
      | (?:the\s+)?(?:{_ORDINAL}|[0-9]{{1,2}})\s+(?:of\s+)?(?:{_MONTHS})(?:\s+[0-9]{{4}})?
      | (?:{_MONTHS})\s+(?:the\s+)?(?:{_ORDINAL}|[0-9]{{1,2}})(?:\s+[0-9]{{4}})?
      | the\s+{_ORDINAL} | the\s+[0-9]{{1,2}}(?=\s*$)
    )\b""",
    re.I | re.X,
)
_DAY_PART_WORDS = (
    r"(?:\s+(?:in\s+the\s+(?:morning|afternoon|evening)|at\s+night"
    r"|this\s+(?:morning|afternoon|evening)|tonight))?"
)
_AM_PM = r"(?:\s*(?:am|pm|a\.m\.|p\.m\.)(?![a-z]))"
_TIME_IN_TEXT = _LazyPattern(
    rf"""(?:\b(?:at|about|around|approx|approximately|roughly)\s+|@\s*)?(?:
        \b[0-9]{{1,2}}[:.][0-9]{{2}}{_AM_PM}?
      | \b[0-9]{{1,2}}{_AM_PM}
      | \b(?:a\s+)?quarter\s+(?:past|to)\s+[0-9]{{1,2}}\b
      | \bhalf\s+(?:past\s+)?[0-9]{{1,2}}\b
      | \b[0-9]{{1,2}}\s+(?:past|to)\s+[0-9]{{1,2}}\b
      | \b(?:noon|midday|midnight)\b
      | (?<=at\s)[0-9]{{1,4}}\b(?:\s*o'?clock)?
      | (?<=about\s)[0-9]{{1,2}}\b(?:\s*o'?clock)?
      | (?<=around\s)[0-9]{{1,2}}\b(?:\s*o'?clock)?
    ){_DAY_PART_WORDS}""",
    re.I | re.X,
)
# "was 40 mins late", "delayed by 2 hours", "an hour late": a delay is never the time.
_DELAY_IN_TEXT = _LazyPattern(
    r"""(?:\b(?:was|were|is|got|ran|running|arrived)\s+)*
        (?:\b(?:delayed|late)\s+(?:by\s+)?)?
        (?:\b(?:about|over|nearly|almost|around)\s+)?
        (?:\b[0-9]+|\ban?|\bhalf\s+an)\s*(?:mins?|minutes?|hrs?|hours?)\b
        (?:\s+(?:late|delayed|delay|behind))?
      | \b(?:was|were|got)\s+(?:late|delayed|cancelled|canceled)\b""",
    re.I | re.X,
)
_LEADING_PHRASE = _LazyPattern(
    r"""^(?:
        (?:i|we)\s+(?:went|travelled|traveled|was\s+travelling|were\s+travelling
            |was\s+going|were\s+going|got\s+the\s+train|took\s+the\s+train
            |caught\s+the\s+train|got\s+on\s+at)\b
      | (?:my|the|our)\s+(?:train|journey|trip)(?:\s+(?:was|went|is))?\b
      | (?:it\s+)?was\b | train\b | journey\b
    )\s*""",
    re.I | re.X,
)
_TRAILING_PHRASE = _LazyPattern(
    r"[\s,]+(?:please|thanks|thank\s+you|ta|train|service)$|[\s,.;:!?]+$", re.I
)
_FROM = _LazyPattern(r"\bfrom\s+", re.I)


def _take_when(tidy: str) -> tuple[str, str | None, str | None]:
    """(the text without its date, time and delay; the date's text; the time's text)."""
    rest = _DELAY_IN_TEXT.compiled.sub(" ", tidy)
    date_text = time_text = None
    found = _DATE_IN_TEXT.compiled.search(rest)
    if found:
        date_text = found.group(0)
        rest = rest[: found.start()] + " " + rest[found.end() :]
    found = _TIME_IN_TEXT.compiled.search(rest)
    if found:
        time_text = found.group(0)
        rest = rest[: found.start()] + " " + rest[found.end() :]
        if date_text is None and re.search(r"this\s+\w+|tonight", time_text, re.I):
            date_text = "today"
    return " ".join(rest.split()).strip(" ,.;:"), date_text, time_text


def _drop_phrases(rest: str) -> str:
    """ "I went from Kings Cross to Leeds" -> "Kings Cross to Leeds"."""
    opening = _FROM.compiled.search(rest)
    if opening and _HAS_SEPARATOR.search(rest, opening.end()):
        rest = rest[opening.end() :]
    else:
        for _ in range(3):
            shorter = _LEADING_PHRASE.compiled.sub("", rest, count=1)
            if shorter == rest:
                break
            rest = shorter
    for _ in range(3):
        shorter = _TRAILING_PHRASE.compiled.sub("", rest)
        if shorter == rest:
            break
        rest = shorter
    return rest.strip()


@dataclass(frozen=True)
class StationAnswer:
    """The stations answer: each name as typed and as resolved, plus what else it gave.

    ``journey_date`` and ``departure`` are ``None`` when the answer gave none, else what
    ``parse_journey_date``/``parse_departure_time`` made of it (a ``Rejected``, maybe an
    ``AmbiguousHour``, when it could not be used as it is).
    """

    origin: str
    destination: str
    origin_match: gb.Resolution
    destination_match: gb.Resolution
    journey_date: date | Rejected | None = None
    departure: time | Rejected | None = None


@dataclass(frozen=True)
class JourneyDraft:
    """What one free-text message gave; ``None`` for each thing it did not."""

    journey_date: date | Rejected | None
    stations: StationAnswer | None
    departure: time | Rejected | None


def _resolved(resolution: gb.Resolution) -> bool:
    from shared import stations as gb

    return not isinstance(resolution, gb.NoMatch)


def _split_rank(pair: tuple[gb.Resolution, gb.Resolution]) -> tuple[int, int, float]:
    from shared import stations as gb

    matches = sum(isinstance(found, gb.Match) for found in pair)
    resolved = sum(_resolved(found) for found in pair)
    scores = sum(found.score for found in pair if not isinstance(found, gb.NoMatch))
    return resolved, matches, scores


_MAX_NAME_WORDS = 6  # "Heathrow Terminals 2 & 3 Rail"


def _split_unmarked(
    rest: str, index: gb.StationIndex | None
) -> tuple[str, str, gb.Resolution, gb.Resolution] | None:
    """Split "Leeds York" or "Leeds-York" into the two names that resolve best."""
    from shared import stations as gb

    cuts = [m.start() for m in re.finditer(r"\s+|-", rest)]
    for fuzzy in (False, True):
        best: tuple[tuple[int, int, float], tuple[str, str, gb.Resolution, gb.Resolution]]
        best_found = None
        for cut in cuts:
            origin = rest[:cut].strip(" -,")
            destination = rest[cut:].strip(" -,")
            if not origin or not destination:
                continue
            # A typo lookup costs ~1 ms: only for halves the length of a station name.
            if fuzzy and max(len(origin.split()), len(destination.split())) > _MAX_NAME_WORDS:
                continue
            origin_match = gb.resolve(origin, index, fuzzy=fuzzy)
            if not _resolved(origin_match):
                continue
            pair = (origin_match, gb.resolve(destination, index, fuzzy=fuzzy))
            if not _resolved(pair[1]):
                continue
            best = (_split_rank(pair), (origin, destination, *pair))
            if best_found is None or best[0] > best_found[0]:
                best_found = best
        if best_found is not None:
            return best_found[1]
    return None


def _read_stations(
    rest: str, index: gb.StationIndex | None, *, marked_only: bool
) -> tuple[str, str, gb.Resolution, gb.Resolution] | Rejected:
    # Imported here: the station list's module waits for the first stations answer.
    from shared import stations as gb

    rest = _drop_phrases(rest)
    if len(rest) > 2 * MAX_STATION_CHARS + 10:
        return refused(R.REASON_STATIONS_TOO_LONG)
    match = _STATIONS.match(rest)
    if match:
        origin = match["origin"].strip(" ,.")
        destination = match["destination"].strip(" ,.")
        checked = _check_names(origin, destination)
        if checked is not None:
            return checked
        return origin, destination, gb.resolve(origin, index), gb.resolve(destination, index)
    if not marked_only and not isinstance(gb.resolve(rest, index, fuzzy=False), gb.Match):
        found = _split_unmarked(rest, index)
        if found is not None:
            return found
    return refused(R.REASON_STATIONS_BOTH)


def parse_station_answer(
    text: str, *, now: datetime, window_days: int, index: gb.StationIndex | None = None
) -> StationAnswer | Rejected:
    """The answer to "Which stations?": ``Leeds to York``, ``from Leeds to York``,
    ``Leeds York``, ``Leeds-York``, ``I went from Kings X to Edinbrugh``,
    ``Leeds to York at 08:02``. A name that resolves to nothing is still returned (as
    ``NoMatch``) so the other can be kept; refused only when two names cannot be found
    or both are the same station."""
    from shared import stations as gb

    tidy = " ".join(text.split())
    if len(tidy) > 2 * MAX_STATION_CHARS + 10 + MAX_ANSWER_CHARS:
        return refused(R.REASON_STATIONS_TOO_LONG)
    rest, date_text, time_text = _take_when(tidy)
    found = _read_stations(rest, index, marked_only=False)
    if isinstance(found, Rejected):
        return found
    origin, destination, origin_match, destination_match = found
    if (
        isinstance(origin_match, gb.Match)
        and isinstance(destination_match, gb.Match)
        and origin_match.station == destination_match.station
    ) or origin.casefold() == destination.casefold():
        return refused(R.REASON_SAME_STATIONS)
    return StationAnswer(
        origin=origin,
        destination=destination,
        origin_match=origin_match,
        destination_match=destination_match,
        journey_date=(
            parse_journey_date(date_text, now=now, window_days=window_days) if date_text else None
        ),
        departure=parse_departure_time(time_text) if time_text else None,
    )


def extract_journey(
    text: str, *, now: datetime, window_days: int, index: gb.StationIndex | None = None
) -> JourneyDraft:
    """Best effort over one free-text message ("my train from kings cross to leeds
    yesterday was 40 mins late"): the date, the stations (only when both names resolve
    to something, so "I want to make a claim" is no journey) and the time it gives. A
    delay ("40 mins late") is never read as the time."""
    tidy = " ".join(text.split())[: 4 * MAX_ANSWER_CHARS]
    rest, date_text, time_text = _take_when(tidy)
    found = _read_stations(rest, index, marked_only=True)
    stations = None
    if not isinstance(found, Rejected) and all(_resolved(part) for part in found[2:]):
        origin, destination, origin_match, destination_match = found
        stations = StationAnswer(origin, destination, origin_match, destination_match)
    return JourneyDraft(
        journey_date=(
            parse_journey_date(date_text, now=now, window_days=window_days) if date_text else None
        ),
        stations=stations,
        departure=parse_departure_time(time_text) if time_text else None,
    )


_CLOCK = re.compile(
    r"^(?P<hour>[0-9]{1,2})(?:[:.h](?P<minute>[0-9]{2}))?\s*(?P<half>am|pm|a\.m\.?|p\.m\.?)?$"
)
_COMPACT = re.compile(r"^(?P<hour>[0-9]{1,2})(?P<minute>[0-9]{2})$")
_NAMED_TIMES = {"noon": time(12, 0), "midday": time(12, 0), "midnight": time(0, 0)}
# Words around a time that change nothing ("about 8", "at 8:15", "8 o'clock").
_FILLER = _LazyPattern(
    r"^(?:(?:at|about|around|approx\.?|approximately|roughly|circa|ca\.?|~|@|"
    r"just after|just before|it was|the)\s*)+|\s*(?:o\s*'?\s*clock|ish|or so)$"
)
# Words that say which half of the day: "8:15 in the evening", "8 in the morning".
_DAY_PART = _LazyPattern(
    r"\s*(?:(?:in|on)\s+the\s+(?P<am1>morning)|(?:in|on)\s+the\s+(?:afternoon|evening)|"
    r"at\s+night|this\s+(?P<am2>morning)|this\s+(?:afternoon|evening)|tonight|"
    r"(?P<am3>morning)|afternoon|evening|night)$"
)
_MINUTE_WORDS = {
    "quarter": 15,
    "a quarter": 15,
    "half": 30,
    "five": 5,
    "ten": 10,
    "twenty": 20,
    "twenty five": 25,
    "twenty-five": 25,
}
# "quarter past 8", "10 to 9", "half past 5", and the UK's "half 5" (5:30, not 4:30).
_SPOKEN = _LazyPattern(
    r"^(?:(?P<words>a quarter|quarter|half|five|ten|twenty[- ]five|twenty)|(?P<digits>[0-9]{1,2}))"
    r"(?:\s+minutes?)?\s+(?P<way>past|after|to|till)\s+(?P<hour>[0-9]{1,2})$"
    r"|^half\s+(?P<half_hour>[0-9]{1,2})$"
)


def _day_half(cleaned: str) -> tuple[str, str | None]:
    """The text without its day-part words, and "a", "p" or None."""
    match = _DAY_PART.compiled.search(cleaned)
    if not match or match.start() == 0:
        return cleaned, None
    morning = match["am1"] or match["am2"] or match["am3"]
    return cleaned[: match.start()].strip(), "a" if morning else "p"


def _spoken_time(cleaned: str) -> tuple[int, int] | None:
    """(hour, minute) for "quarter past 8" and friends, on a 12-hour clock."""
    match = _SPOKEN.compiled.match(cleaned)
    if not match:
        return None
    if match["half_hour"]:
        return int(match["half_hour"]), 30
    minutes = int(match["digits"]) if match["digits"] else _MINUTE_WORDS[match["words"]]
    hour = int(match["hour"])
    if not 1 <= minutes <= 59 or not 1 <= hour <= 12:
        return None
    if match["way"] in ("to", "till"):
        return (hour - 2) % 12 + 1, 60 - minutes
    return hour, minutes


def _ambiguous(hour: int, minute: int) -> AmbiguousHour:
    shown = f"{hour}" if minute == 0 else f"{hour}:{minute:02d}"
    return AmbiguousHour(say(ENGLISH, R.AM_OR_PM, time=shown), hour=hour, minute=minute)


def parse_departure_time(text: str) -> time | Rejected:
    """``08:02``, ``8:02am``, ``8.02 pm``, ``8am``, ``0802``, ``20:15``, ``noon``,
    ``quarter past 8``, ``half 5``, ``8:15 in the evening``, ``about 8``.

    A time that could be either half of the day ("8", "half 5") is ``AmbiguousHour``.
    """
    cleaned = _clean(text) if len(text) <= MAX_ANSWER_CHARS else ""
    cleaned, day_half = _day_half(_FILLER.compiled.sub("", cleaned).strip())
    cleaned = _FILLER.compiled.sub("", cleaned).strip()
    if cleaned in _NAMED_TIMES:
        return _NAMED_TIMES[cleaned]
    spoken = _spoken_time(cleaned)
    if spoken is not None:
        if day_half is None:
            return _ambiguous(*spoken)
        return time(spoken[0] % 12 + (12 if day_half == "p" else 0), spoken[1])
    cleaned = cleaned.replace(" ", "")
    compact = _COMPACT.match(cleaned)
    clock = _CLOCK.match(cleaned)
    minute: int | None
    if compact:
        hour, minute, half = int(compact["hour"]), int(compact["minute"]), None
    elif clock:
        hour = int(clock["hour"])
        minute = int(clock["minute"]) if clock["minute"] else None
        half = clock["half"][0] if clock["half"] else None
    else:
        return refused(R.REASON_TIME_UNREAD)
    if half is not None and day_half is not None and half != day_half:
        return refused(R.REASON_TIME_AM_AND_PM)
    if half is None and day_half is not None and hour <= 12:
        half = day_half  # "8:15 in the evening"; "20:15 in the evening" is already clear
    if half is not None:
        if not 1 <= hour <= 12 or (minute is not None and minute > 59):
            return refused(R.REASON_TIME_NOT_ON_CLOCK)
        hour = hour % 12 + (12 if half == "p" else 0)
        return time(hour, minute or 0)
    if minute is None:
        if 1 <= hour <= 12:
            return _ambiguous(hour, 0)
        minute = 0
    if hour > 23 or minute > 59:
        return refused(R.REASON_TIME_NOT_ON_CLOCK)
    return time(hour, minute)


_HALF_ANSWERS = {
    "am": "a",
    "a.m.": "a",
    "a.m": "a",
    "morning": "a",
    "in the morning": "a",
    "pm": "p",
    "p.m.": "p",
    "p.m": "p",
    "afternoon": "p",
    "in the afternoon": "p",
    "evening": "p",
    "in the evening": "p",
    "night": "p",
    "at night": "p",
}


def resolve_half_day(hour: int, text: str, *, minute: int = 0) -> time | None:
    """The answer to "Is that 8am or 8pm?" for the pending ``hour`` (1 to 12):
    ``pm``, ``PM``, ``evening``, ``am``, ``morning``, or the time again with its half
    (``8pm``, ``20:00``, ``8:15 in the evening``). ``None``: not an answer to that.
    """
    if not 1 <= hour <= 12 or not 0 <= minute <= 59:
        return None
    cleaned = _clean(text).removeprefix("it was ").removeprefix("the ").strip()
    half = _HALF_ANSWERS.get(cleaned) or _HALF_ANSWERS.get(cleaned.replace(" ", ""))
    if half is not None:
        return time(hour % 12 + (12 if half == "p" else 0), minute)
    again = parse_departure_time(text)
    if isinstance(again, time) and again.hour % 12 == hour % 12 and again.minute == minute:
        return again
    return None


def departure_at(journey_date: date, departure: time, *, now: datetime) -> datetime | Rejected:
    """The departure as an aware Europe/London time; refused when that wall-clock time
    does not exist (the spring-forward hour) or has not come yet.

    In the autumn the hour from 01:00 repeats; we take the first (BST) occurrence
    (``fold=0``), the one a timetable printed before the change means.
    """
    local = datetime.combine(journey_date, departure, tzinfo=UK)
    round_trip = local.astimezone(ZoneInfo("UTC")).astimezone(UK)
    if round_trip.replace(tzinfo=None) != local.replace(tzinfo=None):
        return refused(R.REASON_TIME_CLOCKS_FORWARD)
    if local > now:
        return refused(R.REASON_TIME_NOT_YET)
    return local


def describe_date(journey_date: date) -> str:
    return f"{journey_date:%A} {journey_date.day} {journey_date:%B %Y}"


def describe_time(departure: datetime) -> str:
    return f"{departure:%H:%M}"
