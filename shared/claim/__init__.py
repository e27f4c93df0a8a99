"""Parsing a passenger's answers for a delay claim, pure (issues 7 and 20).

Dates, station pairs and departure times as people type them on a phone, read the UK
way: day first, Europe/London wall-clock time. Every parser returns either a value or a
``Rejected`` the conversation can say back (worded by the catalogue, D126), never an
exception.

One idea a module:
  answers.py         what every parser shares: ``Rejected``, ``refused``,
                     ``AmbiguousHour``, the length limits, the UK clock
  dates.py           the journey's date: ``parse_journey_date``, ``describe_date``
  times.py           the departure time: ``parse_departure_time``, ``resolve_half_day``,
                     ``departure_at``, ``describe_time``
  when_in_text.py    the date and time (and a delay, never the time) inside a longer answer
  station_answer.py  the stations answer resolved against the GB list, and a whole journey
                     in one message (``extract_journey``)

This file is the package's public surface: what the conversation, its store and the
tests use (``from shared import claim as claims``).
"""

from __future__ import annotations

from shared.claim.answers import (
    MAX_ANSWER_CHARS,
    MAX_STATION_CHARS,
    UK,
    AmbiguousHour,
    Rejected,
)
from shared.claim.dates import describe_date, parse_journey_date
from shared.claim.station_answer import (
    JourneyDraft,
    StationAnswer,
    extract_journey,
    parse_station_answer,
)
from shared.claim.times import (
    departure_at,
    describe_time,
    parse_departure_time,
    resolve_half_day,
)

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_STATION_CHARS",
    "UK",
    "AmbiguousHour",
    "JourneyDraft",
    "Rejected",
    "StationAnswer",
    "departure_at",
    "describe_date",
    "describe_time",
    "extract_journey",
    "parse_departure_time",
    "parse_journey_date",
    "parse_station_answer",
    "resolve_half_day",
]
