"""journey.submitted 1.1 (issue 20): the resolved stations, additive to 1.0."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import jsonschema
import pytest

from shared import events, stations

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/events/journey.submitted.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def build(**resolved: str) -> events.OutboxEvent:
    return events.journey_submitted(
        uuid4(),
        correlation_id="c-1",
        journey_id=uuid4(),
        journey_date="2026-11-23",
        origin="Kings X",
        destination="Edinbrugh",
        departure="2026-11-23T08:00:00+00:00",
        media=[events.Media("https://api.twilio.com/x", "image/jpeg")],
        submitted_at=NOW,
        **resolved,
    )


def resolved_fields() -> dict[str, str]:
    origin = stations.resolve("Kings X")
    destination = stations.resolve("Edinbrugh")
    assert isinstance(origin, stations.Match) and isinstance(destination, stations.Match)
    return {
        "origin_crs": origin.station.crs,
        "destination_crs": destination.station.crs,
        "origin_name": origin.station.name,
        "destination_name": destination.station.name,
    }


def test_resolved_stations_make_a_1_1_event() -> None:
    event = build(**resolved_fields())
    assert event.event_version == "1.1"
    assert event.payload["origin"] == "Kings X"  # as typed, as in 1.0
    assert event.payload["origin_crs"] == "KGX"
    assert event.payload["origin_name"] == "London Kings Cross"
    assert event.payload["destination_crs"] == "EDB"
    assert event.payload["destination_name"] == "Edinburgh Waverley"
    VALIDATOR.validate(dict(event.payload))


def test_without_them_the_event_is_1_0_as_before() -> None:
    event = build()
    assert event.event_version == "1.0"
    assert not {"origin_crs", "origin_name"} & set(event.payload)
    VALIDATOR.validate(dict(event.payload))


def test_all_four_or_none() -> None:
    with pytest.raises(ValueError, match="all four"):
        build(origin_crs="KGX")
    partial: dict[str, Any] = dict(build(**resolved_fields()).payload)
    del partial["destination_name"]
    assert not VALIDATOR.is_valid(partial)


@pytest.mark.parametrize(
    ("field", "value"),
    [("origin_crs", "kgx"), ("origin_crs", "KGXX"), ("origin_name", ""), ("origin_name", "x" * 61)],
)
def test_the_schema_checks_the_new_fields(field: str, value: str) -> None:
    payload: dict[str, Any] = dict(build(**resolved_fields()).payload)
    payload[field] = value
    assert not VALIDATOR.is_valid(payload)


def test_an_erased_1_1_payload_keeps_the_station_codes_only() -> None:
    # Erasure removes free text (origin, destination, media); CRS codes and the list's
    # names are not typed by the user, like journey_date and departure.
    payload: dict[str, Any] = dict(build(**resolved_fields()).payload)
    for key in ("origin", "destination", "ticket_media"):
        del payload[key]
    payload["erased"] = True
    VALIDATOR.validate(payload)


def test_the_envelope_carries_the_version() -> None:
    event = build(**resolved_fields())
    data, attributes = events.envelope(
        event_id=event.event_id,
        event_type=event.event_type,
        event_version=event.event_version,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=event.correlation_id,
        occurred_at=NOW,
        payload=event.payload,
    )
    assert data["event_version"] == attributes["event_version"] == "1.1"
