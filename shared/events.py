"""Event building, pure: the outbox rows we write and the envelope the relay publishes.

Payloads carry ids, never phone numbers (contract section 6). Each event type has a
JSON Schema in docs/events/<event_type>.schema.json, and the tests validate every
payload the code emits against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

EVENT_VERSION = "1.0"
# journey.submitted 1.1 adds the resolved stations (issue 20); additive, so a 1.0
# consumer reads it unchanged. Emitted as 1.1 only when the stations are given.
JOURNEY_SUBMITTED_VERSION = "1.1"


@dataclass(frozen=True)
class OutboxEvent:
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    correlation_id: str
    payload: Mapping[str, Any]
    event_version: str = EVENT_VERSION
    event_id: UUID = field(default_factory=uuid4)
    metadata: Mapping[str, Any] | None = None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.isoformat()


def user_registered(
    user_id: UUID, *, correlation_id: str, terms_version: str, registered_at: datetime
) -> OutboxEvent:
    return OutboxEvent(
        event_type="user.registered",
        aggregate_type="user",
        aggregate_id=user_id,
        correlation_id=correlation_id,
        payload={
            "user_id": str(user_id),
            "terms_version": terms_version,
            "registered_at": _iso(registered_at),
        },
    )


def user_verified(user_id: UUID, *, correlation_id: str, verified_at: datetime) -> OutboxEvent:
    return OutboxEvent(
        event_type="user.verified",
        aggregate_type="user",
        aggregate_id=user_id,
        correlation_id=correlation_id,
        payload={"user_id": str(user_id), "verified_at": _iso(verified_at)},
    )


def conversation_started(
    user_id: UUID, *, correlation_id: str, started_at: datetime, conversation_id: UUID | None = None
) -> OutboxEvent:
    conversation = conversation_id or uuid4()
    return OutboxEvent(
        event_type="conversation.started",
        aggregate_type="conversation",
        aggregate_id=conversation,
        correlation_id=correlation_id,
        payload={
            "conversation_id": str(conversation),
            "user_id": str(user_id),
            "started_at": _iso(started_at),
        },
    )


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str


def ticket_uploaded(
    user_id: UUID,
    *,
    correlation_id: str,
    message_sid: str,
    media: Sequence[Media],
    uploaded_at: datetime,
    journey_id: UUID | None = None,
    ticket_id: UUID | None = None,
) -> OutboxEvent:
    ticket = ticket_id or uuid4()
    payload: dict[str, Any] = {
        "ticket_id": str(ticket),
        "user_id": str(user_id),
        "message_sid": message_sid,
        "media": [{"url": item.url, "content_type": item.content_type} for item in media],
        "uploaded_at": _iso(uploaded_at),
    }
    if journey_id is not None:
        payload["journey_id"] = str(journey_id)
    return OutboxEvent(
        event_type="ticket.uploaded",
        aggregate_type="ticket",
        aggregate_id=ticket,
        correlation_id=correlation_id,
        payload=payload,
    )


def journey_submitted(
    user_id: UUID,
    *,
    correlation_id: str,
    journey_id: UUID,
    journey_date: str,
    origin: str,
    destination: str,
    departure: str,
    media: Sequence[Media],
    submitted_at: datetime,
    origin_crs: str | None = None,
    destination_crs: str | None = None,
    origin_name: str | None = None,
    destination_name: str | None = None,
) -> OutboxEvent:
    """``origin``/``destination`` as typed; with the four resolved-station fields (the
    CRS codes and the station list's names: all four or none) the event is version 1.1,
    without them the 1.0 payload, unchanged."""
    resolved = {
        "origin_crs": origin_crs,
        "destination_crs": destination_crs,
        "origin_name": origin_name,
        "destination_name": destination_name,
    }
    given = {key: value for key, value in resolved.items() if value is not None}
    if given and len(given) != len(resolved):
        raise ValueError("journey.submitted takes all four resolved-station fields or none")
    payload: dict[str, Any] = {
        "journey_id": str(journey_id),
        "user_id": str(user_id),
        "journey_date": journey_date,
        "origin": origin,
        "destination": destination,
        "departure": departure,
        "ticket_media": [{"url": item.url, "content_type": item.content_type} for item in media],
        "submitted_at": _iso(submitted_at),
        **given,
    }
    return OutboxEvent(
        event_type="journey.submitted",
        aggregate_type="journey",
        aggregate_id=journey_id,
        correlation_id=correlation_id,
        payload=payload,
        event_version=JOURNEY_SUBMITTED_VERSION if given else EVENT_VERSION,
    )


def claim_status_requested(
    user_id: UUID, *, correlation_id: str, requested_at: datetime
) -> OutboxEvent:
    return OutboxEvent(
        event_type="claim.status_requested",
        aggregate_type="user",
        aggregate_id=user_id,
        correlation_id=correlation_id,
        payload={"user_id": str(user_id), "requested_at": _iso(requested_at)},
    )


def user_gdpr_erased(
    user_id: UUID, *, correlation_id: str, erased_at: datetime, reason: str
) -> OutboxEvent:
    """For the audit logger (RFC 7.2): who and when, never the phone number."""
    return OutboxEvent(
        event_type="user.gdpr.erased",
        aggregate_type="user",
        aggregate_id=user_id,
        correlation_id=correlation_id,
        payload={"user_id": str(user_id), "erased_at": _iso(erased_at), "reason": reason},
    )


def envelope(
    *,
    event_id: UUID,
    event_type: str,
    event_version: str,
    aggregate_type: str,
    aggregate_id: UUID,
    correlation_id: str,
    occurred_at: datetime,
    payload: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Pub/Sub message for one outbox row: (data as JSON-able dict, attributes)."""
    attributes = {
        "event_id": str(event_id),
        "event_type": event_type,
        "event_version": event_version,
        "aggregate_type": aggregate_type,
        "aggregate_id": str(aggregate_id),
        "correlation_id": correlation_id,
    }
    data: dict[str, Any] = {**attributes, "occurred_at": _iso(occurred_at), "payload": payload}
    return data, attributes
