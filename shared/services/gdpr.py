"""GDPR (RAILREPAY-701): retention anonymisation in batches, and erasure on request.

Retention selects users inactive for more than ``GDPR_INACTIVITY_DAYS`` who are not
anonymised yet, blocked ones included (decision D4), and erases them with the shared
erasure routine (RFC 7.2, corrected; shared/services/erasure.py). The work goes in bounded batches:

- each batch is one transaction: the users it claims are locked with
  ``FOR UPDATE SKIP LOCKED``, erased together (each erasure statement runs once for the
  whole batch), and committed together, so a crash part-way leaves
  every user either fully anonymised or untouched, and a second run at the same time
  takes other users instead of waiting for (or deadlocking with) the first;
- each batch's Redis state (conversation keys; the rate-limit counters stay, D70) goes
  right after that batch commits, never before (a rolled-back batch must not lose live
  conversations), and never for a number that has a live user row again: a person erased
  in batch 1 who signs up again before the run ends keeps their new conversation (D72);
- a batch that fails with a database error is retried one user per transaction, so one
  bad row cannot stall retention for everyone; the users that still fail are reported
  and left for the next run;
- after each batch the job pauses as long as the batch took (``_PAUSE_PER_BATCH_SECOND``),
  so it holds the database for ~60 % of a run;
- a run stops starting batches after ``GDPR_MAX_RUN_SECONDS``; the next run carries on.

A batch is two statements: the selection, which locks the users and returns their numbers,
and ``erase_locked_users``, the shared erasure (the same statement ``erase_user`` runs
after its own lock) with the outbox rows built in SQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import redis

from shared.db import Database
from shared.errors import DependencyUnavailable
from shared.logs import get_logger
from shared.redis_keys import RedisKeys
from shared.services.erasure import (
    Erased,
    ErasureReason,
    erase_locked_users,
    erase_user,
    forget_many_in_redis,
)
from shared.settings import Settings

log = get_logger("gdpr")

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# After each batch the job pauses for this many times the batch's own duration, so it
# holds the database for ~60 % of the run's time instead of back to back, and the
# webhook's requests (same PostgreSQL; on the bench, the same two cores, with the relay
# publishing the batches' events all along) find it idle the rest of the time. It adapts by
# itself: a slow batch on a busy database earns a longer pause. Measured with the bench's
# gdpr_under_load on 40,000 inactive of 400,000 users (2 cores, medians of 2-3 runs):
#   pause 0    total  6 s, webhook P95 during / idle 2.2-4.3 (the same work, squeezed)
#   pause 0.5  total  9 s, 2.0-2.1
#   pause 1    total 13 s, 1.6-1.7
# and at the bench's full size (100,000 of 1,000,000; medians of 3 runs, ranges after):
#   before (no pause, five statements a batch)  total 26 s (26-36), ratio 1.96 (1.84-3.16)
#   pause 1                                     total 41 s (40-44), ratio 1.35 (0.98-1.59)
# (webhook P95 during the run 16.4 -> 9.9 ms). The pause doubles the run's length, and on
# a busier day `make bench` took 59.9 s with pause 1 (ratio 1.95): 0.75 keeps a margin
# under the 60 s target (the total scales with 1 + pause).
_PAUSE_PER_BATCH_SECOND = 0.75


@dataclass(frozen=True)
class RetentionPolicy:
    inactivity_days: int
    batch_size: int
    max_run_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            inactivity_days=settings.gdpr_inactivity_days,
            batch_size=settings.gdpr_batch_size,
            max_run_seconds=settings.gdpr_max_run_seconds,
        )

    def cutoff(self, now: datetime) -> datetime:
        """Users last active before this moment are due for anonymisation."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now - timedelta(days=self.inactivity_days)


@dataclass(frozen=True)
class RedisTarget:
    """Where erasure deletes a person's keys (RedisKeys.state_keys)."""

    client: redis.Redis
    keys: RedisKeys


def redis_target(settings: Settings, client: redis.Redis) -> RedisTarget:
    settings.require("otp_pepper")
    assert settings.otp_pepper is not None  # noqa: S101 - required just above
    pepper = settings.otp_pepper.get_secret_value().encode()
    return RedisTarget(client, RedisKeys(settings.redis_key_prefix, pepper))


@dataclass(frozen=True)
class RetentionPreview:
    cutoff: datetime
    candidates: int
    oldest_last_active_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        oldest = self.oldest_last_active_at
        return {
            "dry_run": True,
            "cutoff": self.cutoff.isoformat(),
            "would_anonymise": self.candidates,
            "oldest_last_active_at": oldest.isoformat() if oldest else None,
        }


@dataclass(frozen=True)
class RetentionSummary:
    cutoff: datetime
    anonymised: int
    batches: int
    failed_user_ids: tuple[UUID, ...]
    redis_keys_deleted: int
    redis_errors: int
    backlog_done: bool  # False when the time budget ran out first

    @property
    def status(self) -> str:
        if self.failed_user_ids:
            return "failed_users"
        return "complete" if self.backlog_done else "time_budget_spent"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": False,
            "status": self.status,
            "cutoff": self.cutoff.isoformat(),
            "anonymised": self.anonymised,
            "batches": self.batches,
            "failed": len(self.failed_user_ids),
            "failed_user_ids": [str(user_id) for user_id in self.failed_user_ids],
            "redis_keys_deleted": self.redis_keys_deleted,
            "redis_errors": self.redis_errors,
        }


def preview_retention(
    database: Database, *, now: datetime, policy: RetentionPolicy
) -> RetentionPreview:
    """Dry run: how many users would be anonymised, changing nothing."""
    cutoff = policy.cutoff(now)
    with database.unit_of_work() as uow:
        row = uow.fetch_one("gdpr_preview_inactive_users", cutoff=cutoff)
    assert row is not None  # noqa: S101 - an aggregate always returns one row
    return RetentionPreview(
        cutoff=cutoff,
        candidates=int(row["candidates"]),
        oldest_last_active_at=row["oldest_last_active_at"],
    )


@dataclass
class _Progress:
    anonymised: int = 0
    batches: int = 0
    redis_keys_deleted: int = 0
    redis_errors: int = 0


def run_retention(
    database: Database,
    target: RedisTarget,
    *,
    now: datetime,
    policy: RetentionPolicy,
    correlation_id: str,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> RetentionSummary:
    """Anonymise every user inactive since before the cutoff, batch by batch.

    Raises DependencyUnavailable when the database goes away (what was committed stays).
    """
    cutoff = policy.cutoff(now)
    deadline = clock() + policy.max_run_seconds
    failed: list[UUID] = []
    progress = _Progress()
    backlog_done = False
    moment = clock()
    while moment < deadline:
        started = moment
        selected, erased = _erase_one_batch(database, cutoff, failed, policy, now, correlation_id)
        if selected is None:
            backlog_done = True
            break
        if erased is None:
            erased, newly_failed = _erase_one_by_one(database, selected, now, correlation_id)
            failed.extend(newly_failed)
        progress.batches += 1
        progress.anonymised += len(erased)
        log.info(
            "retention batch committed",
            action="gdpr.batch_committed",
            batch=progress.batches,
            selected=len(selected),
            anonymised=len(erased),
        )
        # Now, not after the run: a number erased here may sign up again before the run
        # ends, and its new state must not be deleted with the old one.
        forget_erased(database, target, erased, progress)
        moment = clock()
        pause = (moment - started) * _PAUSE_PER_BATCH_SECOND
        if moment + pause >= deadline:
            break  # no time for another batch after the pause
        if pause > 0:
            sleep(pause)
            moment += pause
    summary = RetentionSummary(
        cutoff=cutoff,
        anonymised=progress.anonymised,
        batches=progress.batches,
        failed_user_ids=tuple(failed),
        redis_keys_deleted=progress.redis_keys_deleted,
        redis_errors=progress.redis_errors,
        backlog_done=backlog_done,
    )
    log.info("retention run finished", action="gdpr.run_finished", **summary.as_dict())
    return summary


def _erase_one_batch(
    database: Database,
    cutoff: datetime,
    skip_ids: list[UUID],
    policy: RetentionPolicy,
    now: datetime,
    correlation_id: str,
) -> tuple[list[UUID] | None, list[Erased] | None]:
    """(None, None) when nothing is left; (selected, None) when the batch rolled back."""
    selected: list[UUID] = []
    try:
        with database.unit_of_work() as uow:
            rows = uow.fetch_all(
                "gdpr_lock_inactive_users",
                cutoff=cutoff,
                skip_ids=skip_ids,
                batch_size=policy.batch_size,
            )
            locked = [(UUID(str(row["id"])), str(row["phone_number"])) for row in rows]
            selected = [user_id for user_id, _ in locked]
            if not selected:
                return None, None
            erased = erase_locked_users(  # locked by the selection, not anonymised
                uow,
                locked,
                reason=ErasureReason.RETENTION,
                now=now,
                correlation_id=correlation_id,
            )
            uow.commit()
            return selected, erased
    except DependencyUnavailable:
        raise
    except Exception as error:
        if not selected:
            raise  # the selection itself failed: nothing to isolate, nothing done
        log.warning(
            "retention batch rolled back; retrying its users one by one",
            action="gdpr.batch_failed",
            selected=len(selected),
            error_type=type(error).__name__,
        )
        return selected, None


def _erase_one_by_one(
    database: Database, user_ids: Iterable[UUID], now: datetime, correlation_id: str
) -> tuple[list[Erased], list[UUID]]:
    """One transaction per user: a user another run took meanwhile is found done (None)."""
    erased: list[Erased] = []
    failed: list[UUID] = []
    for user_id in user_ids:
        try:
            with database.unit_of_work() as uow:
                done = erase_user(
                    uow,
                    user_id,
                    reason=ErasureReason.RETENTION,
                    now=now,
                    correlation_id=correlation_id,
                )
                uow.commit()
        except DependencyUnavailable:
            raise
        except Exception as error:
            failed.append(user_id)
            log.error(
                "retention could not anonymise a user; left untouched for the next run",
                action="gdpr.user_failed",
                user_id=str(user_id),
                error_type=type(error).__name__,
            )
            continue
        if done is not None:
            erased.append(done)
    return erased, failed


def forget_erased(
    database: Database, target: RedisTarget, erased: list[Erased], progress: _Progress
) -> None:
    """After the commit: Redis is a cache of what PostgreSQL no longer holds. A number
    that has a live user row again (signed up since its erasure) is left alone: its
    state is the new user's. Best effort: the keys expire on their own (24 h at most)."""
    if not erased:
        return
    try:
        numbers = {item.phone_number for item in erased}
        with database.unit_of_work() as uow:
            live = {
                str(row["phone_number"])
                for row in uow.fetch_all("gdpr_live_numbers", phone_numbers=sorted(numbers))
            }
        progress.redis_keys_deleted += forget_many_in_redis(
            target.client, target.keys, sorted(numbers - live)
        )
    except (redis.RedisError, DependencyUnavailable) as error:
        # The erasure itself is committed; only the clean-up is missed.
        progress.redis_errors += 1
        log.warning(
            "redis clean-up failed after erasure",
            action="gdpr.redis_failed",
            users=len(erased),
            error_type=type(error).__name__,
        )


class RequestOutcome(StrEnum):
    ERASED = "erased"
    ALREADY_ERASED = "already_erased"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class RequestResult:
    user_id: UUID
    outcome: RequestOutcome
    redis_keys_deleted: int = 0
    redis_errors: int = 0


def erase_on_request(
    database: Database,
    target: RedisTarget,
    user_id: UUID,
    *,
    now: datetime,
    correlation_id: str,
) -> RequestResult:
    """``whatsapp-handler erase USER_ID``: the same routine as retention, for one user."""
    with database.unit_of_work() as uow:
        erased = erase_user(
            uow, user_id, reason=ErasureReason.REQUEST, now=now, correlation_id=correlation_id
        )
        if erased is None:
            outcome = (
                RequestOutcome.NOT_FOUND
                if uow.fetch_one("find_user_by_id", user_id=user_id) is None
                else RequestOutcome.ALREADY_ERASED
            )
            return RequestResult(user_id, outcome)
        uow.commit()
    progress = _Progress()
    forget_erased(database, target, [erased], progress)
    log.info("user erased on request", action="gdpr.erased_on_request", user_id=str(user_id))
    return RequestResult(
        user_id, RequestOutcome.ERASED, progress.redis_keys_deleted, progress.redis_errors
    )
