"""Outbox retention (RFC 7.1, TD-WHATSAPP-003): published events older than
``OUTBOX_RETENTION_DAYS`` (counted from ``published_at``) are deleted, daily.

Deletion goes in batches of ``OUTBOX_PURGE_BATCH_SIZE``, each its own short transaction
with ``SKIP LOCKED``, so the purge never holds a long lock against the relay or the
writers. An unpublished event (pending or dead-lettered) is never deleted, however old.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @classmethod
    def from_settings(cls, settings: Settings) -> PurgePolicy:
        return cls(
            retention_days=settings.outbox_retention_days,
            batch_size=settings.outbox_purge_batch_size,
        )

    def cutoff(self, now: datetime) -> datetime:
        """Events published before this moment are past retention."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now - timedelta(days=self.retention_days)


@dataclass(frozen=True)
class PurgeSummary:
    deleted: int
    batches: int
    cutoff: datetime
    dry_run: bool = False
    oldest_published_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dry_run": self.dry_run,
            "cutoff": self.cutoff.isoformat(),
        }
        if self.dry_run:
            body["would_delete"] = self.deleted
            body["oldest_published_at"] = (
                self.oldest_published_at.isoformat() if self.oldest_published_at else None
            )
        else:
            body["deleted"] = self.deleted
            body["batches"] = self.batches
        return body


def purge_published_events(
    database: Database, *, now: datetime, policy: PurgePolicy
) -> PurgeSummary:
    cutoff = policy.cutoff(now)
    deleted = batches = 0
    while True:
        with database.unit_of_work() as uow:
            count = uow.execute(
                "purge_published_events", cutoff=cutoff, batch_size=policy.batch_size
            )
            uow.commit()
        batches += 1
        deleted += count
        # A short batch means nothing older than the cutoff is left (or the rest is locked
        # by a concurrent purge, which deletes it).
        if count < policy.batch_size:
            break
    log.info(
        "published outbox events purged",
        action="outbox.purged",
        deleted=deleted,
        batches=batches,
        cutoff=cutoff.isoformat(),
    )
    return PurgeSummary(deleted=deleted, batches=batches, cutoff=cutoff)


def preview_purge(database: Database, *, now: datetime, policy: PurgePolicy) -> PurgeSummary:
    """What a purge now would delete; changes nothing."""
    cutoff = policy.cutoff(now)
    with database.unit_of_work() as uow:
        row = uow.fetch_one("count_purgeable_events", cutoff=cutoff) or {}
    return PurgeSummary(
        deleted=int(row.get("purgeable") or 0),
        batches=0,
        cutoff=cutoff,
        dry_run=True,
        oldest_published_at=row.get("oldest_published_at"),
    )
