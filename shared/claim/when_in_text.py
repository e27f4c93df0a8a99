"""The date and time inside a longer answer (issue 20).

"Leeds to York yesterday at 08:02" and "my train from kings cross to leeds yesterday was
40 mins late" carry a date and a time beside the stations. ``take_when`` finds their
text, for ``parse_journey_date`` and ``parse_departure_time`` to read, and gives back
the rest for the station names. A delay ("40 mins late", "an hour late") is taken out
first: it is never the time.
"""

from __future__ import annotations

import re

from shared.claim.answers import LazyPattern
from shared.claim.dates import WEEKDAYS

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
)
_WEEKDAY_WORDS = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
_ORDINAL = r"[0-9]{1,2}(?:st|nd|rd|th)"
_DATE_IN_TEXT = LazyPattern(
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
_TIME_IN_TEXT = LazyPattern(
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
_DELAY_IN_TEXT = LazyPattern(
    r"""(?:\b(?:was|were|is|got|ran|running|arrived)\s+)*
        (?:\b(?:delayed|late)\s+(?:by\s+)?)?
        (?:\b(?:about|over|nearly|almost|around)\s+)?
        (?:\b[0-9]+|\ban?|\bhalf\s+an)\s*(?:mins?|minutes?|hrs?|hours?)\b
        (?:\s+(?:late|delayed|delay|behind))?
      | \b(?:was|were|got)\s+(?:late|delayed|cancelled|canceled)\b""",
    re.I | re.X,
)


def take_when(tidy: str) -> tuple[str, str | None, str | None]:
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
