"""The journey's date as passengers type it, read day first (issues 7 and 20).

``today``, ``yesterday``, ``yday``, ``2 days ago``, ``Monday``, ``last fri``, ``the 1st``,
``1st Dec``, ``15 Nov``, ``15/11``, ``15/11/2026``; ISO ``2026-12-01`` is always
year-month-day. The date must be inside the claim window and not in the future; every
refusal of a date it could read names the date it understood ("12/01/2026 reads as
Monday 12 January 2026, more than 28 days ago ..."), so a misread shows at once.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from dateutil import parser as date_parser

from shared.claim.answers import MAX_ANSWER_CHARS, LazyPattern, Rejected, clean, refused, uk_today
from shared.replies import R

WEEKDAYS = {
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
_DAYS_AGO = LazyPattern(r"^(?P<count>[0-9]{1,3}|[a-z]+)\s+(?P<unit>days?|weeks?)\s+ago$")
_ISO_DATE = LazyPattern(r"^(?P<year>[0-9]{4})[-/.](?P<month>[0-9]{1,2})[-/.](?P<day>[0-9]{1,2})$")
_ORDINAL_DAY = LazyPattern(r"^(?:on\s+)?(?:the\s+)?(?P<day>[0-9]{1,2})(?:st|nd|rd|th)$")
_NEAR_FUTURE_DAYS = 60
# Two defaults that differ in day, month and year (both leap years, both 31-day months):
# a field the text did not give takes the default, so the two parses disagree on it.
_PROBE_DEFAULTS = (datetime(2000, 1, 1), datetime(2004, 12, 28))


def parse_journey_date(text: str, *, now: datetime, window_days: int) -> date | Rejected:
    """``today``, ``yesterday``, ``Monday``, ``last fri``, ``15 Nov``, ``15/11``,
    ``15/11/2026``, ``2026-11-15``; within the claim window, never in the future."""
    today = uk_today(now)
    cleaned = clean(text)
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
    if len(words) == 1 and words[0] in WEEKDAYS:
        back = (today.weekday() - WEEKDAYS[words[0]]) % 7
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


def describe_date(journey_date: date) -> str:
    return f"{journey_date:%A} {journey_date.day} {journey_date:%B %Y}"
