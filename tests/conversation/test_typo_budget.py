"""Typo lookups (~1 ms each) only beside a name found as typed (D139).

Free text at the claim summary or the menu used to run a typo lookup for both halves of
every way of cutting it in two: 3-6 ms of a message's CPU for "not sure what you mean
here mate". The lookups are counted here on the real station list (not timed: timings
live in bench/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared import claim, stations
from shared.stations import Choice, Match

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture()
def typo_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = stations._fuzzy

    def counted(key: str, typed: str, index: Any) -> Any:
        seen.append(typed)
        return real(key, typed, index)

    monkeypatch.setattr(stations, "_fuzzy", counted)
    return seen


@pytest.mark.parametrize(
    "text",
    ["how long will this take please", "not sure what you mean here mate", "what", "ok then"],
)
def test_free_text_at_the_summary_costs_at_most_one_typo_lookup(
    text: str, typo_lookups: list[str]
) -> None:
    claim.parse_station_answer(text, now=NOW, window_days=28)
    assert len(typo_lookups) <= 1


def test_free_text_at_the_menu_with_to_in_it_costs_no_typo_lookup(
    typo_lookups: list[str],
) -> None:
    found = claim.extract_journey("I want to know where my refund is", now=NOW, window_days=28)
    assert found.stations is None and typo_lookups == []


@pytest.mark.parametrize(
    ("text", "origin", "destination"),
    [
        ("Leds York", "LDS", "YRK"),
        ("Leeds Yrok", "LDS", "YRK"),
        ("Kings X Edinbrugh", "KGX", "EDB"),
    ],
)
def test_one_typo_beside_a_name_still_resolves(text: str, origin: str, destination: str) -> None:
    found = claim.parse_station_answer(text, now=NOW, window_days=28)
    assert isinstance(found, claim.StationAnswer)
    assert (best_crs(found.origin_match), best_crs(found.destination_match)) == (
        origin,
        destination,
    )


def best_crs(found: Any) -> str | None:
    """A clear match's code, or the best of a choice offered."""
    if isinstance(found, Match):
        return found.station.crs
    if isinstance(found, Choice):
        return found.candidates[0].crs
    return None


def test_a_free_text_journey_with_one_typo_still_resolves() -> None:
    found = claim.extract_journey(
        "my train from kings x to edinbrugh yesterday was late", now=NOW, window_days=28
    )
    assert found.stations is not None
    assert best_crs(found.stations.destination_match) == "EDB"


def test_two_typos_without_to_ask_for_to() -> None:
    """The price of D139: both names misspelt and no separator is not guessed."""
    found = claim.parse_station_answer("Leds Yrok", now=NOW, window_days=28)
    assert isinstance(found, claim.Rejected) and "'to'" in found.reason
    marked = claim.parse_station_answer("Leds to Yrok", now=NOW, window_days=28)
    assert isinstance(marked, claim.StationAnswer)
