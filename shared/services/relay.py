"""The outbox relay: every outbox row delivered to Pub/Sub at least once, in order per
aggregate, none lost, none stuck (issue 5; RFC 3.3, 6.1 query 3, 8.2).

One batch (``relay_batch``) is one transaction:

1. claim up to ``RELAY_BATCH_SIZE`` due events, oldest first, ``FOR UPDATE SKIP LOCKED``
   (shared/sql/relay.sql ``claim_relay_batch``), so relays running at once take disjoint
   rows and a row is published by one of them;
2. keep the ones that may go now (``select_publishable``, below), publish them all at once
   and wait once, bounded, for Pub/Sub's acknowledgements;
3. mark ``published_at`` on the acknowledged ones only, record each failure (attempts,
   last error, next attempt with exponential backoff and jitter, or dead-lettered after
   ``RELAY_MAX_ATTEMPTS``), commit.

A crash between 2 and 3 leaves the rows unpublished and unlocked: the next run sends them
again with the same ``event_id`` (at-least-once; consumers deduplicate on it). Duplicates
are bounded by one batch per crash.

**Order per aggregate.** An event goes out only after every earlier event of its
aggregate has been acknowledged, or travels in the same batch behind them (the client
keeps a batch's order per ordering key). So an event is *held* (left untouched, retried
next round) while an earlier sibling is being published by another relay or is backing
off after a failure; the claim query skips events behind a backing-off sibling so held
events never fill a batch. A failure in a batch defers the later events of that aggregate
without charging them an attempt. A dead-lettered event stops holding its aggregate (as
Pub/Sub's own dead-letter topics do): the aggregate flows on, and the dead letter is out
of order if an operator requeues it.

**Outages.** A batch in which nothing was acknowledged and every failure was about the
service (unreachable, timed out, topic missing) rather than the message is an outage: no
attempts are charged, so an hour without Pub/Sub dead-letters nothing; the loop backs off
and tries again. Failures specific to a message (too large, rejected) are charged, and a
poison event is dead-lettered after ``RELAY_MAX_ATTEMPTS`` while the others flow.

**Latency.** ``run_relay`` keeps draining and polling (every
``RELAY_POLL_INTERVAL_SECONDS``) for ``RELAY_LOOP_SECONDS``, then returns a summary: one
Scheduler tick a minute still gets events out within about a second.

**Figures (RFC 8.2)** are log fields, for log-based metrics: per batch and event type,
``whatsapp_outbox_events_published_total`` (events in that line) and
``whatsapp_outbox_publish_lag_seconds`` (the worst created-to-published lag in that line);
every run, ``whatsapp_outbox_oldest_pending_age_seconds`` and the backlog.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from shared.adapters.pubsub import Outcome, OutgoingMessage, PublishResult
from shared.db import Database, Row
from shared.events import envelope
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger("relay")

Clock = Callable[[], datetime]

# Consecutive outage rounds back off up to this many poll intervals.
_MAX_OUTAGE_BACKOFF_POLLS = 8
# While another relay holds an aggregate's earlier event, look again this soon.
_HELD_RETRY_SECONDS = 0.05


def utc_now() -> datetime:
    return datetime.now(UTC)


class Publisher(Protocol):
    def publish_all(
        self, messages: Sequence[OutgoingMessage], *, timeout_seconds: float
    ) -> list[PublishResult]: ...


# --- the functional core --------------------------------------------------------------


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
    """A claimed outbox row."""

    event_id: UUID
    aggregate_id: UUID
    aggregate_type: str
    event_type: str
    event_version: str
    correlation_id: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempts: int
    # Earlier events of the same aggregate still owed to Pub/Sub when claimed.
    earlier_pending: int

    @classmethod
    def from_row(cls, row: Row) -> PendingEvent:
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
    claimed: Sequence[PendingEvent],
) -> tuple[list[PendingEvent], list[PendingEvent]]:
    """(publish now, hold) for a batch in (created_at, id) order.

    An event may go when every earlier pending event of its aggregate is in this batch
    ahead of it, and may go too; otherwise it is held, and so is the rest of its aggregate.
    """
    publishable: list[PendingEvent] = []
    held: list[PendingEvent] = []
    seen: dict[UUID, int] = defaultdict(int)
    blocked: set[UUID] = set()
    for event in claimed:
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
    """Exponential backoff with 'equal jitter': the n-th failure waits between half and all
    of min(cap, base * 2**(n-1)), so retries of many events spread out but never bunch at 0."""
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


# --- the shell: one batch, the loop ---------------------------------------------------


@dataclass(frozen=True)
class BatchReport:
    claimed: int = 0
    held: int = 0
    published: int = 0
    failed: int = 0
    dead_lettered: int = 0
    deferred: int = 0
    outage: bool = False


def _idle_timeout_ms(policy: RelayPolicy) -> int:
    """Well beyond our own longest wait inside the transaction (the publish wait)."""
    return int(max(30.0, 3 * (policy.publish_timeout_seconds + 1.0)) * 1000)


def relay_batch(
    database: Database,
    publisher: Publisher,
    policy: RelayPolicy,
    *,
    clock: Clock = utc_now,
    jitter: Callable[[], float] = random.random,
) -> BatchReport:
    """Claim, publish, record: one transaction (see the module docstring)."""
    with database.unit_of_work() as uow:
        uow.fetch_all("bound_relay_transaction", timeout_ms=str(_idle_timeout_ms(policy)))
        rows = uow.fetch_all("claim_relay_batch", now=clock(), batch_size=policy.batch_size)
        claimed = [PendingEvent.from_row(row) for row in rows]
        to_publish, held = select_publishable(claimed)
        if not to_publish:
            return BatchReport(claimed=len(claimed), held=len(held))
        results = publisher.publish_all(
            [to_message(event) for event in to_publish],
            timeout_seconds=policy.publish_timeout_seconds,
        )
        now = clock()
        settlement = settle(to_publish, results, now=now, policy=policy, jitter=jitter)
        if settlement.published:
            uow.execute(
                "mark_events_published",
                now=now,
                ids=[str(event.event_id) for event, _ in settlement.published],
            )
        for update in settlement.failures:
            uow.execute(
                "record_publish_failure",
                id=update.event_id,
                attempts=update.attempts,
                last_error=update.last_error,
                next_attempt_at=update.next_attempt_at,
                dead_lettered_at=update.dead_lettered_at,
            )
        uow.commit()
    _log_batch(settlement, to_publish, now)
    return BatchReport(
        claimed=len(claimed),
        held=len(held),
        published=len(settlement.published),
        failed=settlement.failed,
        dead_lettered=sum(1 for u in settlement.failures if u.dead_lettered_at is not None),
        deferred=settlement.deferred,
        outage=settlement.outage,
    )


def _log_batch(settlement: Settlement, attempted: Sequence[PendingEvent], now: datetime) -> None:
    by_type: dict[str, list[float]] = defaultdict(list)
    for event, _ in settlement.published:
        by_type[event.event_type].append(lag_seconds(event.created_at, now))
    for event_type, lags in sorted(by_type.items()):
        log.info(
            "outbox events published",
            action="outbox.published",
            event_type=event_type,
            whatsapp_outbox_events_published_total=len(lags),
            whatsapp_outbox_publish_lag_seconds=round(max(lags), 3),
        )
    if settlement.outage:
        log.warning(
            "pub/sub unavailable: nothing published, no attempts charged",
            action="outbox.publish_outage",
            events=len(attempted),
            error=settlement.first_error,
        )
        return
    events = {event.event_id: event for event in attempted}
    for update in settlement.failures:
        event = events[update.event_id]
        fields: dict[str, Any] = {
            "event_id": str(update.event_id),
            "event_type": event.event_type,
            "aggregate_id": str(event.aggregate_id),
            "attempts": update.attempts,
            "error": update.last_error,
        }
        if update.dead_lettered_at is not None:
            log.error(
                "outbox event dead-lettered",
                action="outbox.dead_lettered",
                whatsapp_outbox_events_dead_lettered_total=1,
                **fields,
            )
        else:
            log.warning(
                "outbox event publish failed; will retry",
                action="outbox.publish_failed",
                next_attempt_at=update.next_attempt_at,
                **fields,
            )


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_pending_age_seconds: float
    dead_lettered: int


def read_backlog(database: Database, *, now: datetime) -> Backlog:
    with database.unit_of_work() as uow:
        row = uow.fetch_one("outbox_backlog") or {}
        dead = uow.fetch_one("count_dead_letters") or {}
    oldest = row.get("oldest_created_at")
    return Backlog(
        pending=int(row.get("pending") or 0),
        oldest_pending_age_seconds=0.0 if oldest is None else round(lag_seconds(oldest, now), 3),
        dead_lettered=int(dead.get("dead_lettered") or 0),
    )


@dataclass
class RelaySummary:
    published: int = 0
    failed: int = 0
    dead_lettered: int = 0
    remaining_backlog: int = 0
    oldest_pending_age_seconds: float = 0.0
    dead_letter_backlog: int = 0
    batches: int = 0
    outages: int = 0
    elapsed_seconds: float = 0.0

    def add(self, report: BatchReport) -> None:
        self.batches += 1
        self.published += report.published
        self.failed += report.failed
        self.dead_lettered += report.dead_lettered
        self.outages += int(report.outage)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "remaining_backlog": self.remaining_backlog,
            "oldest_pending_age_seconds": self.oldest_pending_age_seconds,
            "dead_letter_backlog": self.dead_letter_backlog,
            "batches": self.batches,
            "outages": self.outages,
            "elapsed_seconds": self.elapsed_seconds,
        }


def run_relay(
    database: Database,
    publisher: Publisher,
    policy: RelayPolicy,
    *,
    clock: Clock = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> RelaySummary:
    """Drain the backlog, then keep polling until ``policy.loop_seconds`` have passed
    (``0``: one drain, then return). Returns what it did and what is left."""
    started = monotonic()
    deadline = started + policy.loop_seconds
    summary = RelaySummary()
    outage_streak = 0
    held_since: float | None = None
    while True:
        report = relay_batch(database, publisher, policy, clock=clock, jitter=jitter)
        summary.add(report)
        draining = policy.loop_seconds == 0
        if report.outage:
            outage_streak += 1
            pause = policy.poll_interval_seconds * min(
                2 ** (outage_streak - 1), _MAX_OUTAGE_BACKOFF_POLLS
            )
        else:
            outage_streak = 0
            pause = policy.poll_interval_seconds
        if report.published and not report.outage:
            held_since = None
            if draining or monotonic() < deadline:
                continue  # more may be waiting: drain before sleeping
            break
        if report.held and not report.outage:
            # Another relay is publishing these events' predecessors; it is done within
            # one publish timeout, after which they may go.
            now_mono = monotonic()
            held_since = now_mono if held_since is None else held_since
            held_limit = held_since + policy.publish_timeout_seconds + 1.0
            if now_mono < (held_limit if draining else deadline):
                sleep(_HELD_RETRY_SECONDS)
                continue
        if draining:
            break
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        sleep(min(pause, remaining))
    now = clock()
    backlog = read_backlog(database, now=now)
    summary.remaining_backlog = backlog.pending
    summary.oldest_pending_age_seconds = backlog.oldest_pending_age_seconds
    summary.dead_letter_backlog = backlog.dead_lettered
    summary.elapsed_seconds = round(monotonic() - started, 3)
    log.info(
        "outbox relay run finished",
        action="outbox.relay_run",
        whatsapp_outbox_oldest_pending_age_seconds=summary.oldest_pending_age_seconds,
        whatsapp_outbox_backlog=summary.remaining_backlog,
        whatsapp_outbox_dead_letter_backlog=summary.dead_letter_backlog,
        published=summary.published,
        failed=summary.failed,
        dead_lettered=summary.dead_lettered,
        batches=summary.batches,
    )
    return summary


# --- dead letters (operator) ----------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    event_id: UUID
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    attempts: int
    last_error: str | None
    created_at: datetime
    dead_lettered_at: datetime


def list_dead_letters(database: Database, *, limit: int = 100) -> list[DeadLetter]:
    with database.unit_of_work() as uow:
        rows = uow.fetch_all("list_dead_letters", limit=limit)
    return [
        DeadLetter(
            event_id=UUID(str(row["id"])),
            event_type=row["event_type"],
            aggregate_type=row["aggregate_type"],
            aggregate_id=UUID(str(row["aggregate_id"])),
            attempts=int(row["attempts"]),
            last_error=row["last_error"],
            created_at=row["created_at"],
            dead_lettered_at=row["dead_lettered_at"],
        )
        for row in rows
    ]


def requeue_dead_letters(database: Database, *, event_id: UUID | None) -> list[UUID]:
    """Give one dead-lettered event (or all, with ``event_id=None``) back to the relay with
    a fresh attempt budget; the ids actually requeued."""
    with database.unit_of_work() as uow:
        if event_id is None:
            rows = uow.fetch_all("requeue_all_dead_letters")
        else:
            rows = uow.fetch_all("requeue_dead_letter", id=event_id)
        uow.commit()
    requeued = [UUID(str(row["id"])) for row in rows]
    if requeued:
        log.info("dead letters requeued", action="outbox.requeued", count=len(requeued))
    return requeued
