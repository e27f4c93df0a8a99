"""GB railway stations: one typed name resolved to a station (issue 20), pure lookups.

The public API, all pure functions over plain values once the table is loaded:

- ``resolve(text) -> Match | Choice | NoMatch``: one name as a passenger typed it.
  ``Match(station, typed)`` is one clear station to read back; ``Choice(candidates,
  typed)`` offers the best 1 to 3 stations for a numbered choice (one candidate means
  "did you mean ...?"); ``NoMatch(typed)`` means ask again.
- ``by_crs(code) -> Station | None``: a station by its three-letter CRS code.
- ``normalise(text) -> str``: the key every name is compared on.
- ``StationIndex.from_rows(stations, aliases)`` builds an index from plain rows (tests
  build small ones); ``default_index()`` is the shipped one, built once per process on
  first use (about 5 ms) and cached; ``resolve`` and ``by_crs`` use it unless given one.

How a name is matched, first hit wins:

1. The exact name, compared on ``normalise``: case, punctuation, apostrophes, accents
   and ``&``/``and`` do not matter ("king's lynn" is "Kings Lynn"), a trailing
   "station"/"stn" is dropped and "saint" is "st".
2. Our alias table (shared/data/station_aliases.csv: ``alias,crs``): common forms and
   abbreviations no data set carries ("Kings X", "Manc Picc", "Brum New St",
   "Edinburgh"). An alias listed with several codes is a choice ("Glasgow").
3. The name before a bracket or a trailing "Central" ("Newport" is "Newport (Essex)"
   or "Newport (South Wales)": a choice; "Lincoln" is "Lincoln Central").
4. A three-letter CRS code ("KGX").
5. Typos: rapidfuzz (the mean of ``WRatio`` and ``ratio``, see ``scored``) over all the
   names above (imported on the first typo,
   ~10 ms, so the webhook's cold start never pays for it). A best score of at least
   ``CLEAR_SCORE`` that leads the next station by ``CLEAR_LEAD`` is a match; otherwise
   the stations within ``CHOICE_SPREAD`` of the best, down to ``CHOICE_SCORE``, are
   offered (at most ``MAX_CHOICES``).

The data (shared/data/stations.csv) is the npm package ``uk-railway-stations`` (ODbL-1.0,
see shared/data/STATIONS_NOTICE.md), kept verbatim; ``whatsapp-handler stations
refresh`` replaces it.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

STATIONS_FILE = "stations.csv"
ALIASES_FILE = "station_aliases.csv"
STATIONS_HEADER = (
    "stationName",
    "lat",
    "long",
    "crsCode",
    "iataAirportCode",
    "constituentCountry",
)
MAX_NAME_CHARS = 60
CLEAR_SCORE = 85.0
CLEAR_LEAD = 5.0
CHOICE_SCORE = 70.0
CHOICE_SPREAD = 12.0
MAX_CHOICES = 3

_CRS = re.compile(r"^[A-Z]{3}$")


class Station(NamedTuple):
    """A NamedTuple, not a dataclass: 2,608 of them are built at load, 4x faster."""

    crs: str
    name: str
    lat: float
    lon: float
    country: str  # england, scotland or wales


@dataclass(frozen=True)
class Match:
    station: Station
    typed: str
    score: float = 100.0  # 100 for a name, alias or code; the fuzzy score for a typo


@dataclass(frozen=True)
class Choice:
    candidates: tuple[Station, ...]  # best first, 1 to MAX_CHOICES
    typed: str
    score: float = 100.0  # the best candidate's


@dataclass(frozen=True)
class NoMatch:
    typed: str


Resolution = Match | Choice | NoMatch

_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`\u00b4")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_TRAILING = re.compile(r"\s+(?:(?:rail|railway|train)\s+)?(?:station|stn)$")


def normalise(text: str) -> str:
    """The comparison key: lower case, ASCII, no apostrophes, other punctuation as
    spaces, ``&`` as ``and``, ``saint`` as ``st``, no trailing "station"."""
    folded = text.casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = folded.translate(_APOSTROPHES).replace("&", " and ")
    words = _NOT_ALNUM.sub(" ", folded).split()
    key = " ".join("st" if word == "saint" else word for word in words)
    return _TRAILING.sub("", key)


def _base_name(name: str, key: str) -> str | None:
    """ "Newport (Essex)" -> "newport", "Lincoln Central" -> "lincoln"; else None."""
    if "(" in name:
        return normalise(name.split("(", 1)[0]) or None
    if key.endswith(" central"):
        return key.removesuffix(" central")
    return None


@dataclass(frozen=True)
class StationIndex:
    """Every station and every key a name can match, for one data release."""

    stations: Mapping[str, Station]  # by CRS
    exact: Mapping[str, tuple[Station, ...]]
    aliases: Mapping[str, tuple[Station, ...]]
    bases: Mapping[str, tuple[Station, ...]]
    # Every key above, for the fuzzy pass: key -> its stations (exact first, then ...).
    fuzzy_keys: Mapping[str, tuple[Station, ...]] = field(repr=False)

    @classmethod
    def from_rows(
        cls, stations: Iterable[Station], aliases: Iterable[tuple[str, str]] = ()
    ) -> StationIndex:
        """Aliases are ``(alias, crs)``; one naming an unknown code raises ValueError."""
        by_crs: dict[str, Station] = {}
        exact: dict[str, list[Station]] = {}
        bases: dict[str, list[Station]] = {}
        for station in stations:
            by_crs[station.crs] = station
            key = normalise(station.name)
            exact.setdefault(key, []).append(station)
            base = _base_name(station.name, key)
            if base is not None:
                bases.setdefault(base, []).append(station)
        alias_map: dict[str, list[Station]] = {}
        for alias, crs in aliases:
            if crs not in by_crs:
                raise ValueError(f"alias {alias!r} names {crs}, which is not in the list")
            found = alias_map.setdefault(normalise(alias), [])
            if by_crs[crs] not in found:
                found.append(by_crs[crs])
        fuzzy: dict[str, tuple[Station, ...]] = {}
        for table in (bases, alias_map, exact):  # later tables win a shared key
            fuzzy.update({key: tuple(value) for key, value in table.items()})
        return cls(
            stations=by_crs,
            exact={key: tuple(value) for key, value in exact.items()},
            aliases={key: tuple(value) for key, value in alias_map.items()},
            bases={key: tuple(value) for key, value in bases.items()},
            fuzzy_keys=fuzzy,
        )


def read_stations_csv(text: str) -> list[Station]:
    """Rows of the package's stations.csv; ValueError names the first bad line."""
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != STATIONS_HEADER:
        raise ValueError(f"unexpected header {header!r}, wanted {STATIONS_HEADER!r}")
    stations: list[Station] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            name, lat, lon, crs, _iata, country = row
            station = Station(crs=crs, name=name, lat=float(lat), lon=float(lon), country=country)
        except ValueError as error:
            raise ValueError(f"line {line}: {error}") from None
        if not _CRS.fullmatch(crs) or crs in seen:
            raise ValueError(f"line {line}: CRS code {crs!r} is malformed or repeated")
        if not name.strip():
            raise ValueError(f"line {line}: no station name")
        seen.add(crs)
        stations.append(station)
    return stations


def read_aliases_csv(text: str) -> list[tuple[str, str]]:
    reader = csv.reader(io.StringIO(text))
    if tuple(next(reader, ())) != ("alias", "crs"):
        raise ValueError("the alias table's header must be alias,crs")
    return [(alias, crs) for alias, crs in (row for row in reader if row)]


@cache
def default_index() -> StationIndex:
    """The shipped station list and our aliases, loaded once per process."""
    # Beside this module in a checkout, an installed wheel and a function's archive alike.
    data = Path(__file__).resolve().parent / "data"
    return StationIndex.from_rows(
        read_stations_csv((data / STATIONS_FILE).read_text(encoding="utf-8")),
        read_aliases_csv((data / ALIASES_FILE).read_text(encoding="utf-8")),
    )


def by_crs(code: str, index: StationIndex | None = None) -> Station | None:
    return (index or default_index()).stations.get(code.strip().upper())


def resolve(text: str, index: StationIndex | None = None, *, fuzzy: bool = True) -> Resolution:
    """One typed station name: a clear match, a choice of the best few, or none.
    ``fuzzy=False`` skips the typo pass (exact names, aliases and codes only; ~3 us)."""
    index = index or default_index()
    typed = " ".join(text.split())
    key = normalise(typed)
    if not key or len(typed) > MAX_NAME_CHARS:
        return NoMatch(typed)
    for table in (index.exact, index.aliases, index.bases):
        if key in table:
            return _found(table[key], typed)
    if len(key) == 3 and key.upper() in index.stations:
        return Match(index.stations[key.upper()], typed)
    return _fuzzy(key, typed, index) if fuzzy else NoMatch(typed)


def _found(stations: Sequence[Station], typed: str) -> Resolution:
    if len(stations) == 1:
        return Match(stations[0], typed)
    return Choice(tuple(stations[:MAX_CHOICES]), typed)


def scored(key: str, index: StationIndex, limit: int = 25) -> list[tuple[Station, float]]:
    """Each station's best fuzzy score for a normalised key, best first (for tuning).

    The score is the mean of ``WRatio`` (forgiving: a word missing or out of order) and
    plain ``ratio`` (strict about length), so "crew" is "Crewe" rather than "Crewkerne"
    and "asdfgh" is nothing rather than "Ash".
    """
    from rapidfuzz import fuzz, process

    # WRatio over every key costs ~5 ms; the mean can reach CHOICE_SCORE only where ratio
    # reaches 2 * CHOICE_SCORE - 100, so the cheap ratio (~0.2 ms) picks those first.
    floor = 2 * CHOICE_SCORE - 100
    near: list[tuple[str, float, Any]] = process.extract(
        key, index.fuzzy_keys.keys(), scorer=fuzz.ratio, score_cutoff=floor, limit=None
    )
    best: dict[str, tuple[Station, float]] = {}
    for found_key, strict, _ in near:
        score = (fuzz.WRatio(key, found_key) + strict) / 2
        for station in index.fuzzy_keys[found_key]:
            if station.crs not in best or best[station.crs][1] < score:
                best[station.crs] = (station, score)
    # Equal scores: the shorter name first ("Leeds" before "Leeds Bradford").
    ranked = sorted(best.values(), key=lambda pair: (-pair[1], len(pair[0].name), pair[0].name))
    return ranked[:limit]


def _fuzzy(key: str, typed: str, index: StationIndex) -> Resolution:
    ranked = scored(key, index)
    if not ranked or ranked[0][1] < CHOICE_SCORE:
        return NoMatch(typed)
    best_station, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if best >= CLEAR_SCORE and best - runner_up >= CLEAR_LEAD:
        return Match(best_station, typed, best)
    close = [
        station
        for station, score in ranked
        if score >= CHOICE_SCORE and best - score <= CHOICE_SPREAD
    ]
    return Choice(tuple(close[:MAX_CHOICES]), typed, best)
