"""Outbox retention (RFC 7.1, TD-WHATSAPP-003): published events older than
``OUTBOX_RETENTION_DAYS`` (counted from ``published_at``) are deleted, daily; so are
notification ledger rows older than ``NOTIFICATION_LEDGER_RETENTION_DAYS`` (the ledger
only has to outlive Pub/Sub's redeliveries, at most the 7-day message retention); and
the webhook's replay record (MessageSids that changed state) older than
``HANDLED_MESSAGE_RETENTION_DAYS``: a recorded Twilio request replayed later than that
would act again (docs/reliability.md).

Deletion goes in batches of ``OUTBOX_PURGE_BATCH_SIZE``, each its own short transaction
with ``SKIP LOCKED``, so the purge never holds a long lock against the relay or the
writers. An unpublished event (pending or dead-lettered) is never deleted, however old.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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

    @classmethod
    def from_settings(cls, settings: Settings) -> PurgePolicy:
        return cls(
            retention_days=settings.outbox_retention_days,
            batch_size=settings.outbox_purge_batch_size,
            ledger_retention_days=settings.notification_ledger_retention_days,
            handled_message_retention_days=settings.handled_message_retention_days,
        )

    def cutoff(self, now: datetime) -> datetime:
        """Events published before this moment are past retention."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now - timedelta(days=self.retention_days)

    def ledger_cutoff(self, now: datetime) -> datetime:
        """Notification ledger rows leased before this moment are past retention."""
        return now - timedelta(days=self.ledger_retention_days)

    def handled_message_cutoff(self, now: datetime) -> datetime:
        """Replay-record rows (MessageSids) handled before this moment are past retention."""
        return now - timedelta(days=self.handled_message_retention_days)


@dataclass(frozen=True)
class PurgeSummary:
    deleted: int
    batches: int
    cutoff: datetime
    dry_run: bool = False
    oldest_published_at: datetime | None = None
    ledger_deleted: int = 0
    handled_messages_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dry_run": self.dry_run,
            "cutoff": self.cutoff.isoformat(),
        }
        if self.dry_run:
            body["would_delete"] = self.deleted
            body["would_delete_ledger"] = self.ledger_deleted
            body["would_delete_handled_messages"] = self.handled_messages_deleted
            body["oldest_published_at"] = (
                self.oldest_published_at.isoformat() if self.oldest_published_at else None
            )
        else:
            body["deleted"] = self.deleted
            body["batches"] = self.batches
            body["ledger_deleted"] = self.ledger_deleted
            body["handled_messages_deleted"] = self.handled_messages_deleted
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


def purge_notification_ledger(database: Database, *, now: datetime, policy: PurgePolicy) -> int:
    """Ledger rows past retention, deleted in short batches; how many."""
    cutoff = policy.ledger_cutoff(now)
    deleted, _ = _delete_in_batches(
        database, "purge_notification_ledger", cutoff=cutoff, batch_size=policy.batch_size
    )
    log.info(
        "notification ledger purged",
        action="notifications.ledger_purged",
        deleted=deleted,
        cutoff=cutoff.isoformat(),
    )
    return deleted


def purge_handled_messages(database: Database, *, now: datetime, policy: PurgePolicy) -> int:
    """The webhook's replay record past retention, deleted in short batches; how many."""
    cutoff = policy.handled_message_cutoff(now)
    deleted, _ = _delete_in_batches(
        database, "purge_handled_messages", cutoff=cutoff, batch_size=policy.batch_size
    )
    log.info(
        "replay record purged",
        action="webhook.handled_messages_purged",
        deleted=deleted,
        cutoff=cutoff.isoformat(),
    )
    return deleted


def purge_expired(database: Database, *, now: datetime, policy: PurgePolicy) -> PurgeSummary:
    """The daily purge: published outbox events, the notification ledger, then the
    webhook's replay record."""
    summary = purge_published_events(database, now=now, policy=policy)
    ledger_deleted = purge_notification_ledger(database, now=now, policy=policy)
    handled_deleted = purge_handled_messages(database, now=now, policy=policy)
    return replace(summary, ledger_deleted=ledger_deleted, handled_messages_deleted=handled_deleted)


def preview_purge(database: Database, *, now: datetime, policy: PurgePolicy) -> PurgeSummary:
    """What a purge now would delete; changes nothing."""
    cutoff = policy.cutoff(now)
    with database.unit_of_work() as uow:
        row = uow.fetch_one("count_purgeable_events", cutoff=cutoff) or {}
        ledger = uow.fetch_one(
            "count_purgeable_notification_ledger", cutoff=policy.ledger_cutoff(now)
        )
        handled = uow.fetch_one(
            "count_purgeable_handled_messages", cutoff=policy.handled_message_cutoff(now)
        )
    return PurgeSummary(
        deleted=int(row.get("purgeable") or 0),
        batches=0,
        cutoff=cutoff,
        dry_run=True,
        oldest_published_at=row.get("oldest_published_at"),
        ledger_deleted=int((ledger or {}).get("purgeable") or 0),
        handled_messages_deleted=int((handled or {}).get("purgeable") or 0),
    )
