"""The relay's pure decisions: which events may go, what a batch's results mean, backoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from shared.adapters.pubsub import Outcome, PublishResult
from shared.services.relay import (
    PendingEvent,
    RelayPolicy,
    retry_delay_seconds,
    select_publishable,
    settle,
    to_message,
)

T0 = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
POLICY = RelayPolicy(max_attempts=3, backoff_base_seconds=2.0, backoff_max_seconds=60.0)
OK = PublishResult(Outcome.PUBLISHED, message_id="1")
SERVICE_DOWN = PublishResult(Outcome.FAILED, error="ServiceUnavailable: 503")
TOO_LARGE = PublishResult(Outcome.FAILED, error="MessageTooLargeError", permanent=True)
NOT_SENT = PublishResult(Outcome.NOT_SENT)


def event(aggregate: UUID, *, earlier_pending: int = 0, attempts: int = 0) -> PendingEvent:
    return PendingEvent(
        event_id=uuid4(),
        aggregate_id=aggregate,
        aggregate_type="user",
        event_type="user.verified",
        event_version="1.0",
        correlation_id="corr-1",
        payload={"user_id": str(aggregate)},
        created_at=T0,
        attempts=attempts,
        earlier_pending=earlier_pending,
    )


def no_jitter() -> float:
    return 0.0


def test_events_whose_earlier_siblings_are_all_in_the_batch_go_together() -> None:
    a, b = uuid4(), uuid4()
    batch = [event(a), event(b), event(a, earlier_pending=1), event(a, earlier_pending=2)]

    publishable, held = select_publishable(batch)

    assert publishable == batch and held == []


def test_an_event_behind_a_sibling_outside_the_batch_is_held_with_the_rest_of_its_aggregate() -> (
    None
):
    a, b = uuid4(), uuid4()
    # a's first pending event is being published by another relay (locked, not claimed).
    batch = [event(a, earlier_pending=1), event(b), event(a, earlier_pending=2)]

    publishable, held = select_publishable(batch)

    assert publishable == [batch[1]]
    assert held == [batch[0], batch[2]]


def test_message_is_the_contract_envelope_keyed_by_aggregate() -> None:
    pending = event(uuid4())

    message = to_message(pending)

    assert json.loads(message.data) == {
        "event_id": str(pending.event_id),
        "event_type": "user.verified",
        "event_version": "1.0",
        "aggregate_type": "user",
        "aggregate_id": str(pending.aggregate_id),
        "correlation_id": "corr-1",
        "occurred_at": "2025-11-30T12:00:00+00:00",
        "payload": {"user_id": str(pending.aggregate_id)},
    }
    assert dict(message.attributes) == {
        "event_id": str(pending.event_id),
        "event_type": "user.verified",
        "event_version": "1.0",
        "aggregate_type": "user",
        "aggregate_id": str(pending.aggregate_id),
        "correlation_id": "corr-1",
    }
    assert message.ordering_key == str(pending.aggregate_id)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 1.0, 2.0), (2, 2.0, 4.0), (3, 4.0, 8.0), (10, 30.0, 60.0), (60, 30.0, 60.0)],
)
def test_backoff_doubles_is_capped_and_jitter_stays_in_the_upper_half(
    attempts: int, low: float, high: float
) -> None:
    def delay(unit: float) -> float:
        return retry_delay_seconds(attempts, base=2.0, cap=60.0, jitter_unit=unit)

    assert delay(0.0) == low
    assert delay(1.0) == high
    assert low < delay(0.5) < high


def test_a_failure_is_charged_and_scheduled_while_the_rest_of_the_batch_is_published() -> None:
    a, b = uuid4(), uuid4()
    events = [event(a), event(b)]

    result = settle(events, [TOO_LARGE, OK], now=T0, policy=POLICY, jitter=no_jitter)

    assert not result.outage
    assert [e for e, _ in result.published] == [events[1]]
    (failure,) = result.failures
    assert failure.event_id == events[0].event_id and failure.attempts == 1
    assert failure.next_attempt_at == T0 + timedelta(seconds=1)
    assert failure.dead_lettered_at is None and "MessageTooLarge" in failure.last_error


def test_the_last_allowed_attempt_dead_letters() -> None:
    poison = event(uuid4(), attempts=2)

    result = settle([poison], [TOO_LARGE], now=T0, policy=POLICY, jitter=no_jitter)

    (failure,) = result.failures
    assert failure.attempts == 3 and failure.dead_lettered_at == T0
    assert failure.next_attempt_at is None


def test_later_events_of_a_failed_aggregate_are_deferred_not_charged() -> None:
    a, b = uuid4(), uuid4()
    events = [event(a), event(a, earlier_pending=1), event(b)]

    result = settle(events, [TOO_LARGE, NOT_SENT, OK], now=T0, policy=POLICY, jitter=no_jitter)

    assert [f.event_id for f in result.failures] == [events[0].event_id]
    assert result.deferred == 1


def test_a_batch_where_only_the_service_failed_is_an_outage_and_charges_nobody() -> None:
    events = [event(uuid4()), event(uuid4())]

    result = settle(events, [SERVICE_DOWN, SERVICE_DOWN], now=T0, policy=POLICY, jitter=no_jitter)

    assert result.outage and result.failures == [] and result.failed == 2
    assert result.published == []


def test_service_failures_beside_successes_are_charged() -> None:
    events = [event(uuid4()), event(uuid4())]

    result = settle(events, [SERVICE_DOWN, OK], now=T0, policy=POLICY, jitter=no_jitter)

    assert not result.outage and len(result.failures) == 1
