"""Answers as passengers really type them (issue 20, sections 1 and 3): the pure parsers.

Each row is a case seen in the issue or its close kin; the conversation wiring is tested
with the conversation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import claim
from shared import stations as gb

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday


def crs(found: gb.Resolution) -> str:
    """ "LDS" for a match, "?NWE/NWP" for a choice, "-" for none."""
    if isinstance(found, gb.Match):
        return found.station.crs
    if isinstance(found, gb.Choice):
        return "?" + "/".join(station.crs for station in found.candidates)
    return "-"


def sides(found: claim.StationAnswer) -> tuple[str, str, str, str]:
    """(origin, destination) as typed, then each one's ``crs``."""
    return (
        found.origin,
        found.destination,
        crs(found.origin_match),
        crs(found.destination_match),
    )


def stations_answer(text: str) -> claim.StationAnswer:
    found = claim.parse_station_answer(text, now=NOW, window_days=28)
    assert isinstance(found, claim.StationAnswer), found
    return found


# --- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", date(2026, 11, 1)),  # ISO is year-month-day: not 11 January
        ("2026-11-3", date(2026, 11, 3)),
        ("2026/11/20", date(2026, 11, 20)),
        ("2 days ago", date(2026, 11, 22)),
        ("two days ago", date(2026, 11, 22)),
        ("a day ago", date(2026, 11, 23)),
        ("a week ago", date(2026, 11, 17)),
        ("yday", date(2026, 11, 23)),
        ("Yest", date(2026, 11, 23)),
        ("last night", date(2026, 11, 23)),
        ("the day before yesterday", date(2026, 11, 22)),
        ("the 1st", date(2026, 11, 1)),
        ("3rd", date(2026, 11, 3)),
        ("on the 2nd", date(2026, 11, 2)),
        ("the 30th", date(2026, 10, 30)),  # not yet this month: last month's
        ("1st Nov", date(2026, 11, 1)),
        ("1st of November", date(2026, 11, 1)),
    ],
)
def test_more_ways_to_say_a_date(text: str, expected: date) -> None:
    assert claim.parse_journey_date(text, now=NOW, window_days=28) == expected


def test_an_iso_date_is_year_month_day_whatever_the_day_first_rule() -> None:
    december = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert claim.parse_journey_date("2026-12-01", now=december, window_days=28) == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "12/01/2026",
            "12/01/2026 reads as Monday 12 January 2026, more than 28 days ago",
        ),
        ("2026-12-01", "2026-12-01 reads as Tuesday 1 December 2026, which is in the future."),
        ("1st Dec", "1st Dec reads as Tuesday 1 December 2026, which is in the future."),
        ("26 October", "26 October reads as Monday 26 October 2026, more than 28 days ago"),
        ("40 days ago", "reads as Thursday 15 October 2026, more than 28 days ago"),
        ("  1 Oct ", "1 Oct reads as Thursday 1 October 2026"),
    ],
)
def test_a_refused_date_says_which_date_it_read(text: str, reason: str) -> None:
    refused = claim.parse_journey_date(text, now=NOW, window_days=28)
    assert isinstance(refused, claim.Rejected) and reason in refused.reason
    if "ago" in reason:
        assert "within 28 days" in refused.reason


# --- times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8:15 in the evening", time(20, 15)),
        ("8 in the morning", time(8, 0)),
        ("8 in the evening", time(20, 0)),
        ("quarter past 8 in the evening", time(20, 15)),
        ("half 5 in the afternoon", time(17, 30)),
        ("twenty past 6 at night", time(18, 20)),
        ("8 o'clock in the morning", time(8, 0)),
        ("about 8:15", time(8, 15)),
        ("at 17:15", time(17, 15)),
        ("around 20:00", time(20, 0)),
        ("20:15 in the evening", time(20, 15)),
        ("about 8pm", time(20, 0)),
    ],
)
def test_more_ways_to_say_a_time(text: str, expected: time) -> None:
    assert claim.parse_departure_time(text) == expected


@pytest.mark.parametrize(
    ("text", "hour", "minute", "question"),
    [
        ("quarter past 8", 8, 15, "Is that 8:15am or 8:15pm?"),
        ("half 5", 5, 30, "Is that 5:30am or 5:30pm?"),  # UK: half past 5, not 4:30
        ("half past 5", 5, 30, "Is that 5:30am or 5:30pm?"),
        ("quarter to 9", 8, 45, "Is that 8:45am or 8:45pm?"),
        ("10 to 12", 11, 50, "Is that 11:50am or 11:50pm?"),
        ("about 8", 8, 0, "Is that 8am or 8pm?"),
        ("around 8ish", 8, 0, "Is that 8am or 8pm?"),
        ("8 o'clock", 8, 0, "Is that 8am or 8pm?"),
        ("8", 8, 0, "Is that 8am or 8pm?"),
    ],
)
def test_a_time_without_am_or_pm_asks_with_its_hour(
    text: str, hour: int, minute: int, question: str
) -> None:
    found = claim.parse_departure_time(text)
    assert found == claim.AmbiguousHour(question, hour=hour, minute=minute)
    assert isinstance(found, claim.Rejected)  # old callers see a refusal with the question


@pytest.mark.parametrize(
    ("hour", "minute", "answer", "expected"),
    [
        (8, 0, "pm", time(20, 0)),
        (8, 0, "PM", time(20, 0)),
        (8, 0, "p.m.", time(20, 0)),
        (8, 0, "am", time(8, 0)),
        (8, 0, "morning", time(8, 0)),
        (8, 0, "in the evening", time(20, 0)),
        (8, 0, "8pm", time(20, 0)),
        (8, 0, "20:00", time(20, 0)),
        (5, 30, "pm", time(17, 30)),
        (5, 30, "5:30pm", time(17, 30)),
        (12, 0, "pm", time(12, 0)),
        (12, 0, "am", time(0, 0)),
        (8, 0, "9pm", None),  # another time: not this question's answer
        (8, 0, "banana", None),
        (13, 0, "pm", None),
    ],
)
def test_am_or_pm_answers_the_pending_hour(
    hour: int, minute: int, answer: str, expected: time | None
) -> None:
    assert claim.resolve_half_day(hour, answer, minute=minute) == expected


def test_am_and_pm_together_are_refused() -> None:
    refused = claim.parse_departure_time("8pm in the morning")
    assert isinstance(refused, claim.Rejected) and "both" in refused.reason


# --- the stations answer ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "origin", "destination", "origin_crs", "destination_crs"),
    [
        ("Leeds to York", "Leeds", "York", "LDS", "YRK"),
        ("from Leeds to York", "Leeds", "York", "LDS", "YRK"),
        ("Leeds York", "Leeds", "York", "LDS", "YRK"),
        ("Leeds-York", "Leeds", "York", "LDS", "YRK"),
        ("Leeds - York", "Leeds", "York", "LDS", "YRK"),
        ("Leeds, York", "Leeds", "York", "LDS", "YRK"),
        ("I went from Kings Cross to Leeds", "Kings Cross", "Leeds", "KGX", "LDS"),
        ("my train was from Kings X to Leeds", "Kings X", "Leeds", "KGX", "LDS"),
        ("Kings X to Edinbrugh", "Kings X", "Edinbrugh", "KGX", "EDB"),
        ("London Euston to Manc Picc", "London Euston", "Manc Picc", "EUS", "MAN"),
        ("Brum New St to St Pancras", "Brum New St", "St Pancras", "BHM", "STP"),
        ("London Kings Cross Leeds", "London Kings Cross", "Leeds", "KGX", "LDS"),
        ("Brum New St Manc Picc", "Brum New St", "Manc Picc", "BHM", "MAN"),
        ("Stoke-on-Trent-Leeds", "Stoke-on-Trent", "Leeds", "SOT", "LDS"),
        ("King's Lynn to Cambridge", "King's Lynn", "Cambridge", "KLN", "CBG"),
        ("Newport to Cardiff", "Newport", "Cardiff", "?NWE/NWP", "CDF"),
        ("Leeds to York please", "Leeds", "York", "LDS", "YRK"),
        ("the train was Leeds to York", "Leeds", "York", "LDS", "YRK"),
        ("Leeds to Qwzxv", "Leeds", "Qwzxv", "LDS", "-"),  # kept: ask only for the other
    ],
)
def test_the_stations_answer(
    text: str, origin: str, destination: str, origin_crs: str, destination_crs: str
) -> None:
    found = stations_answer(text)
    assert sides(found) == (origin, destination, origin_crs, destination_crs)
    assert found.journey_date is None and found.departure is None


@pytest.mark.parametrize(
    ("text", "journey_date", "departure"),
    [
        ("Leeds to York at 08:02", None, time(8, 2)),
        ("Leeds to York 8:02pm", None, time(20, 2)),
        ("the 08:02 from Leeds to York", None, time(8, 2)),
        ("Leeds to York yesterday", date(2026, 11, 23), None),
        ("Leeds to York on Monday at 17:15", date(2026, 11, 23), time(17, 15)),
        ("Leeds York 2 days ago quarter past 8 in the evening", date(2026, 11, 22), time(20, 15)),
        (
            "Leeds to York at half 5",
            None,
            claim.AmbiguousHour("Is that 5:30am or 5:30pm?", hour=5, minute=30),
        ),
    ],
)
def test_a_date_or_time_in_the_stations_answer_is_kept_for_later(
    text: str, journey_date: date | None, departure: time | claim.Rejected | None
) -> None:
    found = stations_answer(text)
    assert sides(found) == ("Leeds", "York", "LDS", "YRK")
    assert found.journey_date == journey_date and found.departure == departure


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Leeds", "both stations"),
        ("Stoke-on-Trent", "both stations"),  # one station with hyphens is not two
        ("Leeds to York to Hull", "just two"),
        ("York to york", "the same"),
        ("Kings X to London Kings Cross", "the same"),
        ("123 to 456", "letters"),
        ("x" * 500, "longer"),
        ("", "both stations"),
    ],
)
def test_the_stations_answer_refused(text: str, reason: str) -> None:
    refused = claim.parse_station_answer(text, now=NOW, window_days=28)
    assert isinstance(refused, claim.Rejected) and reason in refused.reason


@pytest.mark.parametrize(
    ("text", "origin", "destination"),
    [
        ("I went from Kings Cross to Leeds", "Kings Cross", "Leeds"),
        ("Leeds to York at 08:02", "Leeds", "York"),
        ("my train was from Leeds to York", "Leeds", "York"),
    ],
)
def test_stations_are_read_as_typed_without_the_phrases(
    text: str, origin: str, destination: str
) -> None:
    found = claim.parse_station_answer(text, now=NOW, window_days=28)
    assert isinstance(found, claim.StationAnswer)
    assert (found.origin, found.destination) == (origin, destination)


# --- one free-text message --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "journey_date", "stations", "departure"),
    [
        (
            "my train from kings cross to leeds yesterday was 40 mins late",
            date(2026, 11, 23),
            ("kings cross", "leeds", "KGX", "LDS"),
            None,  # 40 mins late is a delay, not a time
        ),
        (
            "the 17:15 from Manchester to Leeds on Monday was delayed by 2 hours",
            date(2026, 11, 23),
            ("Manchester", "Leeds", "MAN", "LDS"),
            time(17, 15),
        ),
        (
            "yesterday leeds to york 8am",
            date(2026, 11, 23),
            ("leeds", "york", "LDS", "YRK"),
            time(8, 0),
        ),
        ("Leeds to York was 40 minutes late", None, ("Leeds", "York", "LDS", "YRK"), None),
        ("my train was an hour late today", date(2026, 11, 24), None, None),
        ("I want to make a claim", None, None, None),
        ("Claim please", None, None, None),
        ("I want to complain", None, None, None),
        (
            "train from york to leeds on 2026-11-20 at 8:15 in the evening",
            date(2026, 11, 20),
            ("york", "leeds", "YRK", "LDS"),
            time(20, 15),
        ),
        (
            "Kings X to Edinbrugh at 9 this morning",
            date(2026, 11, 24),
            ("Kings X", "Edinbrugh", "KGX", "EDB"),
            time(9, 0),
        ),
    ],
)
def test_one_message_gives_what_it_gives(
    text: str,
    journey_date: date | None,
    stations: tuple[str, str, str, str] | None,
    departure: time | None,
) -> None:
    draft = claim.extract_journey(text, now=NOW, window_days=28)
    assert draft.journey_date == journey_date
    assert draft.departure == departure
    if stations is None:
        assert draft.stations is None
    else:
        assert draft.stations is not None and sides(draft.stations) == stations


def read_by_every_new_parser(text: str) -> None:
    claim.parse_station_answer(text, now=NOW, window_days=28)
    claim.extract_journey(text, now=NOW, window_days=28)
    claim.resolve_half_day(8, text)
    claim.parse_departure_time(text)
    claim.parse_journey_date(text, now=NOW, window_days=28)


@given(text=st.text(max_size=300))
def test_the_new_parsers_never_raise(text: str) -> None:
    read_by_every_new_parser(text)


@given(
    text=st.text(
        alphabet=st.sampled_from(list("leedsyork to-:0123456789 ampm")), min_size=0, max_size=60
    )
)
def test_the_new_parsers_never_raise_on_near_misses(text: str) -> None:
    read_by_every_new_parser(text)
