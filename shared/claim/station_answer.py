"""The stations answer, and a whole journey in one message (issues 7 and 20).

- ``parse_station_answer(text, *, now, window_days) -> StationAnswer | Rejected``: the
  names as typed (phrases around them dropped: "I went from", "please"), each resolved
  against the GB list (``shared.stations``: ``Match``/``Choice``/``NoMatch``), plus any
  date or time given in the same answer, for the later questions. "Leeds York" and
  "Leeds-York" are split where both halves resolve best.
- ``extract_journey(text, *, now, window_days) -> JourneyDraft``: whatever one free-text
  message gives ("my train from kings cross to leeds yesterday was 40 mins late"):
  date, stations and time, each ``None`` when absent; best effort.

The station list (``shared.stations``) is imported inside the functions that resolve a
name, so the webhook's cold start does not load it (D87).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from shared.claim.answers import (
    MAX_ANSWER_CHARS,
    MAX_STATION_CHARS,
    LazyPattern,
    Rejected,
    refused,
)
from shared.claim.dates import parse_journey_date
from shared.claim.times import parse_departure_time
from shared.claim.when_in_text import take_when
from shared.replies import R

if TYPE_CHECKING:
    from shared import stations as gb


_SEPARATOR = r"(?:\s+to\s+|\s+-+\s+|\s*[\u2013\u2014\u2192]\s*|\s*-+>\s*|\s+>\s+)"
_STATIONS = re.compile(rf"^(?:from\s+)?(?P<origin>.+?){_SEPARATOR}(?P<destination>.+)$", re.I)
_HAS_SEPARATOR = re.compile(_SEPARATOR, re.I)


def _check_names(origin: str, destination: str) -> Rejected | None:
    if _HAS_SEPARATOR.search(destination):
        return refused(R.REASON_STATIONS_JUST_TWO)
    for name in (origin, destination):
        if not any(character.isalpha() for character in name):
            return refused(R.REASON_STATION_LETTERS)
        if len(name) > MAX_STATION_CHARS:
            return refused(R.REASON_STATION_TOO_LONG, limit=MAX_STATION_CHARS)
    return None


# Words around the names that are not part of them: "I went from", "my train was", "please".
_LEADING_PHRASE = LazyPattern(
    r"""^(?:
        (?:i|we)\s+(?:went|travelled|traveled|was\s+travelling|were\s+travelling
            |was\s+going|were\s+going|got\s+the\s+train|took\s+the\s+train
            |caught\s+the\s+train|got\s+on\s+at)\b
      | (?:my|the|our)\s+(?:train|journey|trip)(?:\s+(?:was|went|is))?\b
      | (?:it\s+)?was\b | train\b | journey\b
    )\s*""",
    re.I | re.X,
)
_TRAILING_PHRASE = LazyPattern(
    r"[\s,]+(?:please|thanks|thank\s+you|ta|train|service)$|[\s,.;:!?]+$", re.I
)
_FROM = LazyPattern(r"\bfrom\s+", re.I)


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


# --- The stations resolved, with any date or time in the same answer (issue 20) ---------


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


def _typos_beside_a_name(
    origin: str, destination: str, index: gb.StationIndex | None
) -> tuple[gb.Resolution, gb.Resolution]:
    """Both names resolved, a typo lookup (~1 ms) only for one standing beside a name found
    as typed: "Kings X to Edinbrugh" resolves, "I want to know where my refund is" costs
    two exact lookups (~3 us each), not two typo lookups. Two typos at once resolve to
    nothing here (D139)."""
    from shared import stations as gb

    exact = (gb.resolve(origin, index, fuzzy=False), gb.resolve(destination, index, fuzzy=False))
    if _resolved(exact[0]) and not _resolved(exact[1]):
        return exact[0], gb.resolve(destination, index)
    if _resolved(exact[1]) and not _resolved(exact[0]):
        return gb.resolve(origin, index), exact[1]
    return exact


def _split_unmarked(
    rest: str, index: gb.StationIndex | None
) -> tuple[str, str, gb.Resolution, gb.Resolution] | None:
    """Split "Leeds York" or "Leeds-York" into the two names that resolve best. Every cut
    is tried as typed first (~3 us a lookup); a typo lookup runs only for the half beside a
    name found as typed, and only for halves the length of a station name (D139)."""
    cuts = [m.start() for m in re.finditer(r"\s+|-", rest)]
    halves = [(rest[:cut].strip(" -,"), rest[cut:].strip(" -,")) for cut in cuts]
    halves = [(origin, destination) for origin, destination in halves if origin and destination]
    for fuzzy in (False, True):
        best_found: (
            tuple[tuple[int, int, float], tuple[str, str, gb.Resolution, gb.Resolution]] | None
        ) = None
        for origin, destination in halves:
            if fuzzy:
                if max(len(origin.split()), len(destination.split())) > _MAX_NAME_WORDS:
                    continue
                pair = _typos_beside_a_name(origin, destination, index)
            else:
                pair = _exact_pair(origin, destination, index)
            if not (_resolved(pair[0]) and _resolved(pair[1])):
                continue
            best = (_split_rank(pair), (origin, destination, *pair))
            if best_found is None or best[0] > best_found[0]:
                best_found = best
        if best_found is not None:
            return best_found[1]
    return None


def _exact_pair(
    origin: str, destination: str, index: gb.StationIndex | None
) -> tuple[gb.Resolution, gb.Resolution]:
    from shared import stations as gb

    return gb.resolve(origin, index, fuzzy=False), gb.resolve(destination, index, fuzzy=False)


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
        if marked_only:  # a free-text message (extract_journey): most are no journey
            return origin, destination, *_typos_beside_a_name(origin, destination, index)
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
    rest, date_text, time_text = take_when(tidy)
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
    rest, date_text, time_text = take_when(tidy)
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
