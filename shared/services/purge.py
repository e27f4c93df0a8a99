"""Outbox retention (RFC 7.1, TD-WHATSAPP-003): published events older than
``OUTBOX_RETENTION_DAYS`` (counted from ``published_at``) are deleted, daily; so are
notification ledger rows older than ``NOTIFICATION_LEDGER_RETENTION_DAYS`` (the ledger
only has to outlive Pub/Sub's redeliveries, at most the 7-day message retention); and
the webhook's replay record (MessageSids that changed state) older than
``HANDLED_MESSAGE_RETENTION_DAYS``: a recorded Twilio request replayed later than that
would act again (docs/reliability.md); and the journey record (digests of the journeys
each user sent, D125) older than ``CLAIM_WINDOW_DAYS``, past which it is never read.

Deletion goes in batches of ``OUTBOX_PURGE_BATCH_SIZE``, each its own short transaction
with ``SKIP LOCKED``, so the purge never holds a long lock against the relay or the
writers. An unpublished event (pending or dead-lettered) is never deleted, however old.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.db import Database
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger("purge")


@dataclass(frozen=True)
class PurgePolicy:
    retention_days: int = 7
    batch_size: int = 5_000
    ledger_retention_days: int = 35
    handled_message_retention_days: int = 30
    journey_record_days: int = 28  # the claim window

    @classmethod
    def from_settings(cls, settings: Settings) -> PurgePolicy:
        return cls(
            retention_days=settings.outbox_retention_days,
            batch_size=settings.outbox_purge_batch_size,
            ledger_retention_days=settings.notification_ledger_retention_days,
            handled_message_retention_days=settings.handled_message_retention_days,
            journey_record_days=settings.claim_window_days,
        )

    def cutoff(self, now: datetime) -> datetime:
        """Events published before this moment are past retention."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now - timedelta(days=self.retention_days)


@dataclass(frozen=True)
class RowPurge:
    """A table beside the outbox whose rows go after a number of days: its two named
    queries (delete a bounded batch older than ``:cutoff``; count them) and its log line."""

    delete_query: str
    count_query: str
    days: Callable[[PurgePolicy], int]
    message: str
    action: str

    def cutoff(self, policy: PurgePolicy, now: datetime) -> datetime:
        return now - timedelta(days=self.days(policy))


# In the order the daily purge runs them; PurgeSummary's fields follow the names.
ROW_PURGES: dict[str, RowPurge] = {
    "ledger": RowPurge(
        "purge_notification_ledger",
        "count_purgeable_notification_ledger",
        lambda policy: policy.ledger_retention_days,
        "notification ledger purged",
        "notifications.ledger_purged",
    ),
    "handled_messages": RowPurge(
        "purge_handled_messages",
        "count_purgeable_handled_messages",
        lambda policy: policy.handled_message_retention_days,
        "replay record purged",
        "webhook.handled_messages_purged",
    ),
    "submitted_journeys": RowPurge(
        "purge_submitted_journeys",
        "count_purgeable_submitted_journeys",
        lambda policy: policy.journey_record_days,
        "journey record purged",
        "webhook.submitted_journeys_purged",
    ),
}


@dataclass(frozen=True)
class PurgeSummary:
    deleted: int
    batches: int
    cutoff: datetime
    dry_run: bool = False
    oldest_published_at: datetime | None = None
    # Rows deleted (or, in a dry run, that would be) per ROW_PURGES name.
    rows_deleted: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dry_run": self.dry_run,
            "cutoff": self.cutoff.isoformat(),
        }
        if self.dry_run:
            body["would_delete"] = self.deleted
            for name in ROW_PURGES:
                body[f"would_delete_{name}"] = self.rows_deleted.get(name, 0)
            body["oldest_published_at"] = (
                self.oldest_published_at.isoformat() if self.oldest_published_at else None
            )
        else:
            body["deleted"] = self.deleted
            body["batches"] = self.batches
            for name in ROW_PURGES:
                body[f"{name}_deleted"] = self.rows_deleted.get(name, 0)
        return body


def _delete_in_batches(
    database: Database, query_name: str, *, cutoff: datetime, batch_size: int
) -> tuple[int, int]:
    """Run a bounded DELETE until a short batch; (rows deleted, batches)."""
    deleted = batches = 0
    while True:
        with database.unit_of_work() as uow:
            count = uow.execute(query_name, cutoff=cutoff, batch_size=batch_size)
            uow.commit()
        batches += 1
        deleted += count
        # A short batch means nothing older than the cutoff is left (or the rest is locked
        # by a concurrent purge, which deletes it).
        if count < batch_size:
            return deleted, batches


def purge_published_events(
    database: Database, *, now: datetime, policy: PurgePolicy
) -> PurgeSummary:
    cutoff = policy.cutoff(now)
    deleted, batches = _delete_in_batches(
        database, "purge_published_events", cutoff=cutoff, batch_size=policy.batch_size
    )
    log.info(
        "published outbox events purged",
        action="outbox.purged",
        deleted=deleted,
        batches=batches,
        cutoff=cutoff.isoformat(),
    )
    return PurgeSummary(deleted=deleted, batches=batches, cutoff=cutoff)


def purge_rows(database: Database, purge: RowPurge, *, now: datetime, policy: PurgePolicy) -> int:
    """One table's rows past their days, deleted in short batches; how many."""
    cutoff = purge.cutoff(policy, now)
    deleted, _ = _delete_in_batches(
        database, purge.delete_query, cutoff=cutoff, batch_size=policy.batch_size
    )
    log.info(purge.message, action=purge.action, deleted=deleted, cutoff=cutoff.isoformat())
    return deleted


def purge_expired(database: Database, *, now: datetime, policy: PurgePolicy) -> PurgeSummary:
    """The daily purge: published outbox events, then each of ROW_PURGES."""
    summary = purge_published_events(database, now=now, policy=policy)
    deleted = {
        name: purge_rows(database, purge, now=now, policy=policy)
        for name, purge in ROW_PURGES.items()
    }
    return replace(summary, rows_deleted=deleted)


def preview_purge(database: Database, *, now: datetime, policy: PurgePolicy) -> PurgeSummary:
    """What a purge now would delete; changes nothing."""
    cutoff = policy.cutoff(now)
    with database.unit_of_work() as uow:
        row = uow.fetch_one("count_purgeable_events", cutoff=cutoff) or {}
        counts = {
            name: uow.fetch_one(purge.count_query, cutoff=purge.cutoff(policy, now))
            for name, purge in ROW_PURGES.items()
        }
    return PurgeSummary(
        deleted=int(row.get("purgeable") or 0),
        batches=0,
        cutoff=cutoff,
        dry_run=True,
        oldest_published_at=row.get("oldest_published_at"),
        rows_deleted={
            name: int((found or {}).get("purgeable") or 0) for name, found in counts.items()
        },
    )
