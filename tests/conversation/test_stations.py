"""GB station resolution (issue 20, section 1): exact names, aliases, typos, choices."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import stations
from shared.stations import Choice, Match, NoMatch


def crs_of(found: stations.Resolution) -> str | tuple[str, ...] | None:
    if isinstance(found, Match):
        return found.station.crs
    if isinstance(found, Choice):
        return tuple(station.crs for station in found.candidates)
    return None


def test_the_shipped_list_has_every_gb_station() -> None:
    index = stations.default_index()
    assert len(index.stations) == 2608
    assert {station.country for station in index.stations.values()} == {
        "england",
        "scotland",
        "wales",
    }
    assert stations.by_crs("kgx") == stations.by_crs("KGX")
    leeds = stations.by_crs("LDS")
    assert leeds is not None and leeds.name == "Leeds" and 53 < leeds.lat < 54


@pytest.mark.parametrize(
    ("typed", "crs"),
    [
        # exact names, whatever the case, punctuation and apostrophes
        ("Leeds", "LDS"),
        ("leeds", "LDS"),
        ("  YORK  ", "YRK"),
        ("York station", "YRK"),
        ("King's Lynn", "KLN"),
        ("kings lynn", "KLN"),
        ("Kings\u2019 Lynn", "KLN"),
        ("London Kings Cross", "KGX"),
        ("London King's Cross", "KGX"),
        ("stoke on trent", "SOT"),
        ("Portsmouth and Southsea", "PMS"),
        ("St. Albans", "SAC"),
        ("Saint Albans", "SAC"),
        ("Edinburgh Waverley", "EDB"),
        ("London Euston", "EUS"),
        ("Manchester Piccadilly", "MAN"),
        # our alias table: the forms people type
        ("Kings X", "KGX"),
        ("kings cross", "KGX"),
        ("St Pancras", "STP"),
        ("Euston", "EUS"),
        ("Manc Picc", "MAN"),
        ("Manchester", "MAN"),
        ("Brum New St", "BHM"),
        ("Birmingham", "BHM"),
        ("Edinburgh", "EDB"),
        ("Waterloo", "WAT"),
        ("Liverpool", "LIV"),
        ("Bristol", "BRI"),
        ("MK", "MKC"),
        # a trailing "Central" may be left off
        ("Lincoln", "LCN"),
        # a CRS code
        ("KGX", "KGX"),
        # typos
        ("Edinbrugh", "EDB"),
        ("Leds", "LDS"),
        ("Londn Euston", "EUS"),
        ("Mancheter Piccadily", "MAN"),
        ("Kings Cros", "KGX"),
        ("Birmingam", "BHM"),
        ("Sheffeld", "SHF"),
        ("Harogate", "HGT"),
        ("Peterbrough", "PBO"),
        ("St Pancreas", "STP"),
        ("Paddingtn", "PAD"),
        ("Waterlo", "WAT"),
        ("Victoira", "VIC"),
        ("Cardif", "CDF"),
        ("Crew", "CRE"),  # not Crewkerne or Crews Hill
        ("Norwhich", "NRW"),  # not Northwich
        ("Redding", "RDG"),
    ],
)
def test_one_clear_station(typed: str, crs: str) -> None:
    found = stations.resolve(typed)
    assert isinstance(found, Match), found
    assert found.station.crs == crs
    assert found.typed == " ".join(typed.split())


@pytest.mark.parametrize(
    ("typed", "candidates"),
    [
        ("Newport", ("NWE", "NWP")),  # Essex or South Wales
        ("newport station", ("NWE", "NWP")),
        ("Glasgow", ("GLC", "GLQ")),
        ("Glasgw", ("GLC", "GLQ")),
        ("Wigan", ("WGN", "WGW")),
        ("Heathrow", ("HXX", "HWV", "HAF")),
        ("Yrok", ("YRK",)),  # did you mean York?
        ("Leeds city", ("LDS",)),
    ],
)
def test_several_stations_are_a_choice(typed: str, candidates: tuple[str, ...]) -> None:
    assert crs_of(stations.resolve(typed)) == candidates


def test_a_vague_name_offers_at_most_three() -> None:
    found = stations.resolve("London")
    assert isinstance(found, Choice) and 1 <= len(found.candidates) <= stations.MAX_CHOICES


@pytest.mark.parametrize("typed", ["asdfgh", "", "   ", "!!!", "x" * 61, "zzzzzz zzzz"])
def test_no_station(typed: str) -> None:
    assert isinstance(stations.resolve(typed), NoMatch)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("King's Lynn", "kings lynn"),
        ("KING\u2019S  LYNN", "kings lynn"),
        ("Stoke-On-Trent", "stoke on trent"),
        ("Portsmouth & Southsea", "portsmouth and southsea"),
        ("Newport (Essex)", "newport essex"),
        ("Saint Helens Central", "st helens central"),
        ("Ystrad Mynach Station", "ystrad mynach"),
        ("Leeds railway station", "leeds"),
        ("Caf\u00e9", "cafe"),
    ],
)
def test_normalise(text: str, key: str) -> None:
    assert stations.normalise(text) == key


def test_a_small_index_built_from_rows() -> None:
    rows = [
        stations.Station("AAA", "Alpha", 0.0, 0.0, "england"),
        stations.Station("AAB", "Alpha (North)", 0.0, 0.0, "england"),
        stations.Station("BBB", "Beta Central", 0.0, 0.0, "wales"),
    ]
    index = stations.StationIndex.from_rows(rows, [("the b", "BBB")])
    assert crs_of(stations.resolve("alpha", index)) == "AAA"  # exact beats the bracket
    assert crs_of(stations.resolve("beta", index)) == "BBB"
    assert crs_of(stations.resolve("The B", index)) == "BBB"
    with pytest.raises(ValueError, match="not in the list"):
        stations.StationIndex.from_rows(rows, [("x", "ZZZ")])


def test_every_alias_names_a_station_in_the_list() -> None:
    data = stations.Path(stations.__file__).parent / "data" / stations.ALIASES_FILE
    aliases = stations.read_aliases_csv(data.read_text(encoding="utf-8"))
    assert len(aliases) >= 50
    assert all(stations.by_crs(crs) is not None for _, crs in aliases)


@given(text=st.text(max_size=80))
def test_resolve_never_raises(text: str) -> None:
    assert isinstance(stations.resolve(text), Match | Choice | NoMatch)
