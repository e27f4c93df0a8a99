"""The outbox relay: every outbox row delivered to Pub/Sub at least once, in order per
aggregate, none lost, none stuck (issue 5; RFC 3.3, 6.1 query 3, 8.2).

One batch (``relay_batch``) is one transaction:

1. take up to ``RELAY_BATCH_SIZE`` due events, oldest first, ``FOR UPDATE SKIP LOCKED``
   (shared/sql/relay.sql ``take_relay_batch``), so relays running at once take disjoint
   rows and a row is published by one of them;
2. keep the ones that may go now (``select_publishable``), publish them all at once
   and wait once, bounded, for Pub/Sub's acknowledgements;
3. mark ``published_at`` on the acknowledged ones only, record each failure (attempts,
   last error, next attempt after an exponential backoff with equal jitter, or
   dead-lettered after ``RELAY_MAX_ATTEMPTS``), commit.

A crash between 2 and 3 leaves the rows unpublished and unlocked: the next run sends them
again with the same ``event_id`` (at-least-once; consumers deduplicate on it). Duplicates
are bounded by one batch per crash.

**Order per aggregate.** An event goes out only after every earlier event of its
aggregate has been acknowledged, or travels in the same batch behind them (the client
keeps a batch's order per ordering key). So an event is *held* (left untouched, retried
next round) while an earlier sibling is being published by another relay or is backing
off after a failure; the batch query skips events behind a backing-off sibling so held
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

**Where things are.** The decisions (which events may go, what a batch's results mean,
backoff, the loop's pacing) are pure functions in ``shared/relay_policy.py``; this module
is the shell that takes a batch, publishes, records and sleeps. The operator's
dead-letter list and requeue are the CLI's (``tools/commands/dead_letters.py``).

**Figures (RFC 8.2)** are log fields, for log-based metrics: per batch and event type,
``whatsapp_outbox_events_published_total`` (events in that line) and
``whatsapp_outbox_publish_lag_seconds`` (the worst created-to-published lag in that line);
every run, ``whatsapp_outbox_oldest_pending_age_seconds`` and the backlog.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.adapters.pubsub import OutgoingMessage, PublishResult
from shared.db import Database
from shared.logs import get_logger
from shared.relay_policy import (
    BatchReport,
    Drain,
    PaceState,
    PendingEvent,
    RelayPolicy,
    Settlement,
    Stop,
    lag_seconds,
    pace,
    select_publishable,
    settle,
    to_message,
)

log = get_logger("relay")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Publisher(Protocol):
    def publish_all(
        self, messages: Sequence[OutgoingMessage], *, timeout_seconds: float
    ) -> list[PublishResult]: ...


# --- one batch, the loop --------------------------------------------------------------


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
    """Take a batch, publish, record: one transaction (see the module docstring)."""
    with database.unit_of_work() as uow:
        uow.fetch_all("bound_relay_transaction", timeout_ms=str(_idle_timeout_ms(policy)))
        rows = uow.fetch_all("take_relay_batch", now=clock(), batch_size=policy.batch_size)
        taken = [PendingEvent.from_row(row) for row in rows]
        to_publish, held = select_publishable(taken)
        if not to_publish:
            return BatchReport(taken=len(taken), held=len(held))
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
        taken=len(taken),
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
    state = PaceState()
    while True:
        report = relay_batch(database, publisher, policy, clock=clock, jitter=jitter)
        summary.add(report)
        state, next_step = pace(state, report, policy=policy, now=monotonic(), deadline=deadline)
        if isinstance(next_step, Stop):
            break
        if not isinstance(next_step, Drain):
            sleep(next_step.seconds)
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
