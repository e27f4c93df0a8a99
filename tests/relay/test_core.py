"""The relay's pure decisions: which events may go, what a batch's results mean, backoff,
and how the loop paces itself between batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from shared.adapters.pubsub import Outcome, PublishResult
from shared.relay_policy import (
    BatchReport,
    Drain,
    Pace,
    PaceState,
    PendingEvent,
    RelayPolicy,
    Stop,
    Wait,
    pace,
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
    # a's first pending event is being published by another relay (locked, not in this batch).
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


# --- pacing: what the loop does after a batch -------------------------------------------

# A loop of 60 s started at monotonic 40 (deadline 100); one poll a second; a publish
# another relay is making is over within 10 + 1 s.
LOOP = RelayPolicy(loop_seconds=60.0, poll_interval_seconds=1.0, publish_timeout_seconds=10.0)
DRAIN = RelayPolicy(loop_seconds=0.0, poll_interval_seconds=1.0, publish_timeout_seconds=10.0)
DEADLINE = 100.0
PUBLISHED = BatchReport(taken=5, published=5)
HELD = BatchReport(taken=2, held=2)
EMPTY = BatchReport()
OUTAGE = BatchReport(taken=3, failed=3, deferred=3, outage=True)
OUTAGE_WITH_HELD = BatchReport(taken=3, held=1, failed=2, deferred=2, outage=True)
FRESH = PaceState()


@pytest.mark.parametrize(
    ("policy", "state", "report", "now", "after", "step"),
    [
        # Something went out: drain on without sleeping, until the deadline.
        (LOOP, FRESH, PUBLISHED, 50.0, FRESH, Drain()),
        (LOOP, PaceState(2, 45.0), PUBLISHED, 50.0, FRESH, Drain()),
        (LOOP, FRESH, PUBLISHED, 100.0, FRESH, Stop()),
        # One drain (loop_seconds 0) drains for as long as events go out.
        (DRAIN, FRESH, PUBLISHED, 500.0, FRESH, Drain()),
        # Held behind another relay: look again soon; a loop until its deadline...
        (LOOP, FRESH, HELD, 50.0, PaceState(0, 50.0), Wait(0.05)),
        (LOOP, PaceState(0, 20.0), HELD, 99.0, PaceState(0, 20.0), Wait(0.05)),
        (LOOP, PaceState(0, 20.0), HELD, 100.0, PaceState(0, 20.0), Stop()),
        # ...one drain until that publish must be over (held_since + 10 + 1).
        (DRAIN, FRESH, HELD, 50.0, PaceState(0, 50.0), Wait(0.05)),
        (DRAIN, PaceState(0, 50.0), HELD, 60.9, PaceState(0, 50.0), Wait(0.05)),
        (DRAIN, PaceState(0, 50.0), HELD, 61.0, PaceState(0, 50.0), Stop()),
        # Nothing to do: a loop polls, never past its deadline; one drain stops.
        (LOOP, FRESH, EMPTY, 50.0, FRESH, Wait(1.0)),
        (LOOP, FRESH, EMPTY, 99.6, FRESH, Wait(pytest.approx(0.4))),
        (LOOP, FRESH, EMPTY, 100.0, FRESH, Stop()),
        (LOOP, PaceState(0, 20.0), EMPTY, 50.0, PaceState(0, 20.0), Wait(1.0)),
        (DRAIN, FRESH, EMPTY, 50.0, FRESH, Stop()),
        # Outages back off 1, 2, 4, 8, 8... polls; a batch that is not one resets that.
        (LOOP, FRESH, OUTAGE, 50.0, PaceState(1), Wait(1.0)),
        (LOOP, PaceState(1), OUTAGE, 50.0, PaceState(2), Wait(2.0)),
        (LOOP, PaceState(3), OUTAGE, 50.0, PaceState(4), Wait(8.0)),
        (LOOP, PaceState(9), OUTAGE, 50.0, PaceState(10), Wait(8.0)),
        (LOOP, PaceState(9), OUTAGE, 97.0, PaceState(10), Wait(3.0)),
        (LOOP, PaceState(4), EMPTY, 50.0, FRESH, Wait(1.0)),
        (DRAIN, PaceState(1), OUTAGE, 50.0, PaceState(2), Stop()),
        # In an outage, held events wait with the rest, not every 0.05 s.
        (LOOP, FRESH, OUTAGE_WITH_HELD, 50.0, PaceState(1), Wait(1.0)),
    ],
)
def test_after_each_batch_the_loop_drains_waits_or_stops(
    policy: RelayPolicy,
    state: PaceState,
    report: BatchReport,
    now: float,
    after: PaceState,
    step: Pace,
) -> None:
    assert pace(state, report, policy=policy, now=now, deadline=DEADLINE) == (after, step)
