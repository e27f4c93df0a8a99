"""The departure time as passengers type it, and the departure it makes (issues 7 and 20).

``08:02``, ``8:02am``, ``8.02 pm``, ``0802``, ``20:15``, ``noon``, ``quarter past 8``,
``half 5`` (5:30, the UK way), ``8:15 in the evening``, ``about 8``. A time that needs am
or pm ("8", "half 5") is refused with ``AmbiguousHour(reason, hour, minute)`` (a
``Rejected``, so callers that only check for a refusal work unchanged); the answer to
"Is that 8am or 8pm?" goes to ``resolve_half_day``.

``departure_at`` makes the Europe/London departure, so 08:02 on the last Sunday of March
is ``+01:00`` and on the Saturday before it ``+00:00``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from shared.claim.answers import (
    ENGLISH,
    MAX_ANSWER_CHARS,
    UK,
    AmbiguousHour,
    LazyPattern,
    Rejected,
    clean,
    refused,
)
from shared.replies import R, say

_CLOCK = re.compile(
    r"^(?P<hour>[0-9]{1,2})(?:[:.h](?P<minute>[0-9]{2}))?\s*(?P<half>am|pm|a\.m\.?|p\.m\.?)?$"
)
_COMPACT = re.compile(r"^(?P<hour>[0-9]{1,2})(?P<minute>[0-9]{2})$")
_NAMED_TIMES = {"noon": time(12, 0), "midday": time(12, 0), "midnight": time(0, 0)}
# Words around a time that change nothing ("about 8", "at 8:15", "8 o'clock").
_FILLER = LazyPattern(
    r"^(?:(?:at|about|around|approx\.?|approximately|roughly|circa|ca\.?|~|@|"
    r"just after|just before|it was|the)\s*)+|\s*(?:o\s*'?\s*clock|ish|or so)$"
)
# Words that say which half of the day: "8:15 in the evening", "8 in the morning".
_DAY_PART = LazyPattern(
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
_SPOKEN = LazyPattern(
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
    cleaned = clean(text) if len(text) <= MAX_ANSWER_CHARS else ""
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
    cleaned = clean(text).removeprefix("it was ").removeprefix("the ").strip()
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


def describe_time(departure: datetime) -> str:
    return f"{departure:%H:%M}"
