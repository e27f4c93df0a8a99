"""Parsing a passenger's answers for a delay claim, pure (issue 7).

Dates, station pairs and departure times as people type them on a phone, read the UK
way: day first, Europe/London wall-clock time. Every parser returns either a value or a
``Rejected`` with a reason the bot can say back, never an exception.

The departure leaves as an ISO 8601 local time with its UTC offset, so 08:02 on the
last Sunday of March is ``+01:00`` and on the Saturday before it ``+00:00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil import parser as date_parser

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
_RELATIVE_DAYS = {"today": 0, "tonight": 0, "this morning": 0, "yesterday": 1}
# Two defaults that differ in day, month and year (both leap years, both 31-day months):
# a field the text did not give takes the default, so the two parses disagree on it.
_NEAR_FUTURE_DAYS = 60
_PROBE_DEFAULTS = (datetime(2000, 1, 1), datetime(2004, 12, 28))


@dataclass(frozen=True)
class Rejected:
    reason: str


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
        return Rejected("I couldn't read that date.")
    found: date | Rejected | None = _relative_date(cleaned, today)
    if found is None:
        found = _calendar_date(cleaned, today)
    if isinstance(found, Rejected):
        return found
    if found is None:
        return Rejected("I couldn't read that date.")
    if found > today:
        return Rejected("That date is in the future.")
    if (today - found).days > window_days:
        return Rejected(f"Claims must be made within {window_days} days of travel.")
    return found


def _relative_date(cleaned: str, today: date) -> date | None:
    if cleaned in _RELATIVE_DAYS:
        return today - timedelta(days=_RELATIVE_DAYS[cleaned])
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


def _calendar_date(cleaned: str, today: date) -> date | Rejected | None:
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
    return Rejected("That date is not in the last year.")


_SEPARATOR = r"(?:\s+to\s+|\s+-+\s+|\s*[\u2013\u2014\u2192]\s*|\s*-+>\s*|\s+>\s+)"
_STATIONS = re.compile(rf"^(?:from\s+)?(?P<origin>.+?){_SEPARATOR}(?P<destination>.+)$", re.I)
_HAS_SEPARATOR = re.compile(_SEPARATOR, re.I)


@dataclass(frozen=True)
class Stations:
    origin: str
    destination: str


def parse_stations(text: str) -> Stations | Rejected:
    """``Leeds to York``, ``from Leeds to York``, ``Leeds - York``: both names as typed
    (trimmed, spaces collapsed); journey-matcher owns station data and resolves them."""
    tidy = " ".join(text.split())
    if len(tidy) > 2 * MAX_STATION_CHARS + 10:
        return Rejected("That's longer than two station names.")
    match = _STATIONS.match(tidy)
    if not match:
        return Rejected("I need both stations, with 'to' between them.")
    origin = match["origin"].strip(" ,.")
    destination = match["destination"].strip(" ,.")
    if _HAS_SEPARATOR.search(destination):
        return Rejected("Please give just two stations: where you got on and where you got off.")
    for name in (origin, destination):
        if not any(character.isalpha() for character in name):
            return Rejected("A station name needs letters.")
        if len(name) > MAX_STATION_CHARS:
            return Rejected(f"Station names are at most {MAX_STATION_CHARS} characters.")
    if origin.casefold() == destination.casefold():
        return Rejected("The two stations are the same.")
    return Stations(origin=origin, destination=destination)


_CLOCK = re.compile(
    r"^(?P<hour>[0-9]{1,2})(?:[:.h](?P<minute>[0-9]{2}))?\s*(?P<half>am|pm|a\.m\.?|p\.m\.?)?$"
)
_COMPACT = re.compile(r"^(?P<hour>[0-9]{1,2})(?P<minute>[0-9]{2})$")
_NAMED_TIMES = {"noon": time(12, 0), "midday": time(12, 0), "midnight": time(0, 0)}


def parse_departure_time(text: str) -> time | Rejected:
    """``08:02``, ``8:02am``, ``8.02 pm``, ``8am``, ``0802``, ``20:15``, ``noon``."""
    cleaned = _clean(text).replace(" ", "") if len(text) <= MAX_ANSWER_CHARS else ""
    if cleaned in _NAMED_TIMES:
        return _NAMED_TIMES[cleaned]
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
        return Rejected("I couldn't read that time.")
    if half is not None:
        if not 1 <= hour <= 12 or (minute is not None and minute > 59):
            return Rejected("That isn't a time on the clock.")
        hour = hour % 12 + (12 if half == "p" else 0)
        return time(hour, minute or 0)
    if minute is None:
        if hour <= 12:
            return Rejected(f"Is that {hour}am or {hour}pm?")
        minute = 0
    if hour > 23 or minute > 59:
        return Rejected("That isn't a time on the clock.")
    return time(hour, minute)


def departure_at(journey_date: date, departure: time, *, now: datetime) -> datetime | Rejected:
    """The departure as an aware Europe/London time; refused when that wall-clock time
    does not exist (the spring-forward hour) or has not come yet.

    In the autumn the hour from 01:00 repeats; we take the first (BST) occurrence
    (``fold=0``), the one a timetable printed before the change means.
    """
    local = datetime.combine(journey_date, departure, tzinfo=UK)
    round_trip = local.astimezone(ZoneInfo("UTC")).astimezone(UK)
    if round_trip.replace(tzinfo=None) != local.replace(tzinfo=None):
        return Rejected("The clocks went forward that night, so that time didn't exist.")
    if local > now:
        return Rejected("That time hasn't come yet today.")
    return local


def describe_date(journey_date: date) -> str:
    return f"{journey_date:%A} {journey_date.day} {journey_date:%B %Y}"


def describe_time(departure: datetime) -> str:
    return f"{departure:%H:%M}"
