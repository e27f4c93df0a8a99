"""The relay's core: which events of a batch may go, what its results mean, how long a
failed event waits, and how the loop paces itself (see ``shared/services/relay.py``).

Pure: no I/O, no clock, no randomness of its own; times and jitter come in as arguments.
The shell (``shared/services/relay.py``) takes rows, publishes, records what ``settle``
says and sleeps as ``pace`` says. The message and result values are the Pub/Sub adapter's
(``shared/adapters/pubsub.py`` imports its client only when a publisher is built).

    select_publishable(batch)                         -> (publish now, hold)
    settle(events, results, now=, policy=, jitter=)   -> Settlement (rows to record)
    pace(state, report, policy=, now=, deadline=)     -> (state, Drain() | Wait(s) | Stop())
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from shared.adapters.pubsub import Outcome, OutgoingMessage, PublishResult
from shared.events import envelope

if TYPE_CHECKING:  # read for its fields only; the core imports no settings at run time
    from shared.settings import Settings

# Consecutive outage rounds back off up to this many poll intervals.
MAX_OUTAGE_BACKOFF_POLLS = 8
# While another relay holds an aggregate's earlier event, look again this soon.
HELD_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 100
    max_attempts: int = 10
    publish_timeout_seconds: float = 10.0
    loop_seconds: float = 0.0
    poll_interval_seconds: float = 1.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayPolicy:
        return cls(
            batch_size=settings.relay_batch_size,
            max_attempts=settings.relay_max_attempts,
            publish_timeout_seconds=settings.relay_publish_timeout_seconds,
            loop_seconds=settings.relay_loop_seconds,
            poll_interval_seconds=settings.relay_poll_interval_seconds,
            backoff_base_seconds=settings.relay_backoff_base_seconds,
            backoff_max_seconds=settings.relay_backoff_max_seconds,
        )


@dataclass(frozen=True)
class PendingEvent:
    """An outbox row taken (locked) for this relay's batch."""

    event_id: UUID
    aggregate_id: UUID
    aggregate_type: str
    event_type: str
    event_version: str
    correlation_id: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempts: int
    # Earlier events of the same aggregate still owed to Pub/Sub when taken.
    earlier_pending: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PendingEvent:
        payload = row["payload"]
        if isinstance(payload, str):  # pg8000 parses JSONB; tolerate a text cast
            payload = json.loads(payload)
        return cls(
            event_id=UUID(str(row["id"])),
            aggregate_id=UUID(str(row["aggregate_id"])),
            aggregate_type=str(row["aggregate_type"]),
            event_type=str(row["event_type"]),
            event_version=str(row["event_version"]),
            correlation_id=str(row["correlation_id"]),
            payload=payload,
            created_at=row["created_at"],
            attempts=int(row["attempts"]),
            earlier_pending=int(row["earlier_pending"]),
        )


def select_publishable(
    batch: Sequence[PendingEvent],
) -> tuple[list[PendingEvent], list[PendingEvent]]:
    """(publish now, hold) for a batch in (created_at, id) order.

    An event may go when every earlier pending event of its aggregate is in this batch
    ahead of it, and may go too; otherwise it is held, and so is the rest of its aggregate.
    """
    publishable: list[PendingEvent] = []
    held: list[PendingEvent] = []
    seen: dict[UUID, int] = defaultdict(int)
    blocked: set[UUID] = set()
    for event in batch:
        aggregate = event.aggregate_id
        if aggregate not in blocked and event.earlier_pending == seen[aggregate]:
            publishable.append(event)
        else:
            held.append(event)
            blocked.add(aggregate)
        seen[aggregate] += 1
    return publishable, held


def to_message(event: PendingEvent) -> OutgoingMessage:
    """The contract section 6 message: envelope in data, ids in attributes, key = aggregate."""
    data, attributes = envelope(
        event_id=event.event_id,
        event_type=event.event_type,
        event_version=event.event_version,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=event.correlation_id,
        occurred_at=event.created_at,
        payload=event.payload,
    )
    return OutgoingMessage(
        data=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        attributes=attributes,
        ordering_key=str(event.aggregate_id),
    )


def retry_delay_seconds(attempts: int, *, base: float, cap: float, jitter_unit: float) -> float:
    """Exponential backoff with 'equal jitter' (half fixed, half random): the n-th failure
    waits between half and all of min(cap, base * 2**(n-1)), so retries of many events
    spread out but never bunch at 0. ``jitter_unit`` in [0, 1] picks the point."""
    ceiling = min(cap, base * 2.0 ** max(0, attempts - 1))
    return ceiling / 2 + (ceiling / 2) * min(max(jitter_unit, 0.0), 1.0)


@dataclass(frozen=True)
class FailureUpdate:
    event_id: UUID
    attempts: int
    last_error: str
    next_attempt_at: datetime | None
    dead_lettered_at: datetime | None


def charge_failure(
    event: PendingEvent, error: str, *, now: datetime, policy: RelayPolicy, jitter_unit: float
) -> FailureUpdate:
    attempts = event.attempts + 1
    if attempts >= policy.max_attempts:
        return FailureUpdate(event.event_id, attempts, error, None, now)
    delay = retry_delay_seconds(
        attempts,
        base=policy.backoff_base_seconds,
        cap=policy.backoff_max_seconds,
        jitter_unit=jitter_unit,
    )
    return FailureUpdate(event.event_id, attempts, error, now + timedelta(seconds=delay), None)


@dataclass(frozen=True)
class Settlement:
    published: list[tuple[PendingEvent, str | None]]
    failures: list[FailureUpdate]
    failed: int  # publishes that failed, charged or not
    deferred: int  # left untouched: behind a failure of their aggregate, or an outage
    outage: bool
    first_error: str | None


def settle(
    events: Sequence[PendingEvent],
    results: Sequence[PublishResult],
    *,
    now: datetime,
    policy: RelayPolicy,
    jitter: Callable[[], float],
) -> Settlement:
    """What the database should record after a batch's publish results."""
    if len(events) != len(results):
        raise ValueError("one result per event")
    failures_seen = [r for r in results if r.outcome is Outcome.FAILED]
    outage = (
        bool(failures_seen)
        and not any(r.outcome is Outcome.PUBLISHED for r in results)
        and not any(r.permanent for r in failures_seen)
    )
    published: list[tuple[PendingEvent, str | None]] = []
    updates: list[FailureUpdate] = []
    failed_aggregates: set[UUID] = set()
    deferred = 0
    for event, result in zip(events, results, strict=True):
        if result.outcome is Outcome.PUBLISHED:
            published.append((event, result.message_id))
            continue
        if result.outcome is Outcome.NOT_SENT or outage:
            deferred += 1
        elif event.aggregate_id in failed_aggregates:
            # Failed only because an earlier event of its aggregate did: not its fault.
            deferred += 1
        else:
            updates.append(
                charge_failure(
                    event,
                    result.error or "publish failed",
                    now=now,
                    policy=policy,
                    jitter_unit=jitter(),
                )
            )
        failed_aggregates.add(event.aggregate_id)
    return Settlement(
        published=published,
        failures=updates,
        failed=len(failures_seen),
        deferred=deferred,
        outage=outage,
        first_error=failures_seen[0].error if failures_seen else None,
    )


def lag_seconds(created_at: datetime, published_at: datetime) -> float:
    return max(0.0, (published_at - created_at).total_seconds())


# --- the loop's pacing ----------------------------------------------------------------


@dataclass(frozen=True)
class BatchReport:
    taken: int = 0
    held: int = 0
    published: int = 0
    failed: int = 0
    dead_lettered: int = 0
    deferred: int = 0
    outage: bool = False


@dataclass(frozen=True)
class PaceState:
    """What the loop remembers between batches."""

    outage_streak: int = 0  # consecutive batches that were outages
    held_since: float | None = None  # monotonic seconds: first batch of a run of holds


@dataclass(frozen=True)
class Drain:
    """Run the next batch at once: more may be waiting."""


@dataclass(frozen=True)
class Wait:
    """Sleep this long, then run the next batch."""

    seconds: float


@dataclass(frozen=True)
class Stop:
    """The run is over: read the backlog and return."""


Pace = Drain | Wait | Stop


def pace(
    state: PaceState,
    report: BatchReport,
    *,
    policy: RelayPolicy,
    now: float,
    deadline: float,
) -> tuple[PaceState, Pace]:
    """After a batch, at monotonic time ``now``: what the loop does next.

    - something published (no outage): drain on until ``deadline``; with
      ``loop_seconds == 0`` (one drain) until nothing more is published;
    - events held behind another relay's publish: look again every
      ``HELD_RETRY_SECONDS``, until ``deadline``, or for one drain until that publish
      must be over (one publish timeout, plus a second);
    - otherwise: one drain stops; a loop polls every ``poll_interval_seconds``, doubling
      over consecutive outages up to ``MAX_OUTAGE_BACKOFF_POLLS`` intervals, and never
      sleeps past ``deadline``.
    """
    draining = policy.loop_seconds == 0
    if report.outage:
        streak = state.outage_streak + 1
        pause = policy.poll_interval_seconds * min(2 ** (streak - 1), MAX_OUTAGE_BACKOFF_POLLS)
    else:
        streak = 0
        pause = policy.poll_interval_seconds
    if report.published and not report.outage:
        after = PaceState(outage_streak=streak, held_since=None)
        return after, Drain() if draining or now < deadline else Stop()
    held_since = state.held_since
    if report.held and not report.outage:
        # Another relay is publishing these events' predecessors; it is done within
        # one publish timeout, after which they may go.
        held_since = now if held_since is None else held_since
        held_limit = held_since + policy.publish_timeout_seconds + 1.0
        if now < (held_limit if draining else deadline):
            return PaceState(streak, held_since), Wait(HELD_RETRY_SECONDS)
    after = PaceState(streak, held_since)
    if draining:
        return after, Stop()
    remaining = deadline - now
    if remaining <= 0:
        return after, Stop()
    return after, Wait(min(pause, remaining))
