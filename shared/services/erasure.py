"""Erasure of one person's data (RFC 7.2), shared by `DELETE MY DATA`, the GDPR retention
job and `whatsapp-handler erase USER_ID`.

The database part runs inside the caller's unit of work, so the anonymisation, the
preferences deletion, the payload scrub and the `user.gdpr.erased` outbox row commit
together or not at all. The person's Redis state is deleted after the commit
(``forget_in_redis``): it holds no data that is not also gone from PostgreSQL, and it
expires in 24 h anyway. Rate-limit counters are kept until their window ends (D70).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import cast
from uuid import UUID

import redis

from shared import events
from shared.db import UnitOfWork
from shared.redis_keys import RedisKeys


class ErasureReason(StrEnum):
    REQUEST = "GDPR_ERASURE_REQUEST"
    RETENTION = "GDPR_RETENTION"


@dataclass(frozen=True)
class Erased:
    user_id: UUID
    phone_number: str  # the number that was erased: for Redis clean-up only, never logged


def erase_users(
    uow: UnitOfWork,
    user_ids: Sequence[UUID],
    *,
    reason: ErasureReason,
    now: datetime,
    correlation_id: str,
) -> list[Erased]:
    """Anonymise these users in ``uow``, each statement once for the whole set; the
    ones already anonymised or unknown are left out of the result.

    The caller commits (and then forgets them in Redis).
    """
    if not user_ids:
        return []
    locked = {
        UUID(str(row["id"])): str(row["phone_number"])
        for row in uow.fetch_all("lock_users_for_erasure", user_ids=list(user_ids))
    }
    # The caller's order (oldest first for retention); ids as UUIDs whatever came in.
    ordered = [
        (user_id, locked[user_id]) for user_id in map(UUID, map(str, user_ids)) if user_id in locked
    ]
    return erase_locked_users(uow, ordered, reason=reason, now=now, correlation_id=correlation_id)


def erase_locked_users(
    uow: UnitOfWork,
    users: Sequence[tuple[UUID, str]],
    *,
    reason: ErasureReason,
    now: datetime,
    correlation_id: str,
) -> list[Erased]:
    """Erase ``(user id, phone number)`` pairs that ``uow`` has already locked (retention
    claims them ``FOR UPDATE``), in one statement; the order is the outbox rows' order.

    Their ``user.gdpr.erased`` rows are built by the statement itself, with the payload of
    ``events.user_gdpr_erased`` (tests/gdpr compares them): a 500-user retention batch no
    longer builds 500 event objects and a JSON array for the server to parse. With the
    selection's lock reused and five statements made one, the job's CPU for 40,000 users went
    from 1.9 to 0.95 core-seconds and its run from 9 s to 6 s (bench gdpr_under_load).
    """
    if not users:
        return []
    if now.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    rows = uow.fetch_all(
        "erase_locked_users",
        user_ids=[user_id for user_id, _ in users],
        reason=reason.value,
        now=now,
        erased_at=now.isoformat(),  # as events.user_gdpr_erased writes it
        event_version=events.EVENT_VERSION,
        correlation_id=correlation_id,
    )
    done = {UUID(str(row["id"])) for row in rows}
    return [Erased(user_id, phone) for user_id, phone in users if user_id in done]


def erase_user(
    uow: UnitOfWork,
    user_id: UUID,
    *,
    reason: ErasureReason,
    now: datetime,
    correlation_id: str,
) -> Erased | None:
    """``erase_users`` for one user; None when already anonymised or unknown."""
    erased = erase_users(uow, [user_id], reason=reason, now=now, correlation_id=correlation_id)
    return erased[0] if erased else None


def forget_in_redis(client: redis.Redis, keys: RedisKeys, phone_number: str) -> int:
    """Delete this person's state in Redis (the conversation); the rate-limit counters stay
    until their window ends (D70), or erasing and signing up again would reset them."""
    return cast(int, client.delete(*keys.state_keys(phone_number)))


def forget_many_in_redis(
    client: redis.Redis,
    keys: RedisKeys,
    phone_numbers: Iterable[str],
    *,
    chunk: int = 500,
) -> int:
    """``forget_in_redis`` for a batch: the keys are computed from the numbers, so no SCAN
    of the keyspace (a SCAN of 60K keys took 0.18 s), one DEL per ``chunk`` keys."""
    doomed = sorted({key for phone in set(phone_numbers) for key in keys.state_keys(phone)})
    deleted = 0
    for start in range(0, len(doomed), chunk):
        deleted += cast(int, client.delete(*doomed[start : start + chunk]))
    return deleted
