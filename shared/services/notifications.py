"""Deliver one notification request (contract 6a), exactly once per notification_id.

    lease (ledger row, read with the user and preferences) -> decide
      -> hold the user row (still not erased) -> send -> record

The ledger ``notification_deliveries`` makes redeliveries and concurrent deliveries
harmless: only the attempt that holds the id's lease sends. A finished row ('sent',
'skipped', 'failed') answers every later delivery of the id as a duplicate, acknowledged.
A leased row (stored status 'claimed', column ``claimed_at``: names kept, D121) belongs to
an attempt in progress: the delivery fails (RetryLater) so Pub/Sub comes back later, by
when the first attempt has finished, or died and its lease
(``NOTIFICATION_CLAIM_LEASE_SECONDS``) has run out and the id can be leased again.

Twilio failures that may pass (5xx, 429, timeout) release the lease and raise
RetryLater: Pub/Sub retries with backoff and dead-letters in the end. Permanent ones
(other 4xx: an invalid number, a rejected template) are recorded 'failed' and
acknowledged. Logs name the notification and the user, never the number or the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pg8000.exceptions import DatabaseError
from twilio.base.exceptions import TwilioRestException

from shared.adapters.twilio_messages import SentMessage, TwilioMessages, is_retryable
from shared.db import Database, Row, error_field
from shared.errors import DependencyUnavailable
from shared.logs import get_logger
from shared.notification_policy import (
    Decision,
    NotificationRequest,
    Send,
    SendTemplate,
    Skip,
    SkipReason,
    decide,
)
from shared.settings import Settings

log = get_logger("notifier")

WHATSAPP_PREFIX = "whatsapp:"
# Also the skip reason when the recipient was erased between the lease and the send.
ERASED_REASON = SkipReason.ERASED.value


class RetryLater(DependencyUnavailable):
    """Not done, not failed for good: the delivery must fail so Pub/Sub redelivers it."""


# The ledger's status of a leased row: stored as 'claimed' (a CHECK constraint names it;
# renaming it needs a migration that instances still running would trip on, D121).
LEASED_STATUS = "claimed"


class DeliveryStatus(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class DeliveryResult:
    status: DeliveryStatus
    reason: str | None = None
    message_sid: str | None = None


@dataclass(frozen=True)
class NotifierConfig:
    whatsapp_from: str
    session_window: timedelta
    lease: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifierConfig:
        settings.require("twilio_whatsapp_from")
        sender = str(settings.twilio_whatsapp_from).strip()
        if not sender.startswith(WHATSAPP_PREFIX):
            sender = WHATSAPP_PREFIX + sender  # "+44..." configured without the channel
        return cls(
            whatsapp_from=sender,
            session_window=timedelta(hours=settings.whatsapp_session_window_hours),
            lease=timedelta(seconds=settings.notification_claim_lease_seconds),
        )


@dataclass(frozen=True)
class _Lease:
    """This attempt's hold on a notification id; ``leased_at`` (the row's ``claimed_at``)
    is its token: only the holder may complete or release the row."""

    notification_id: str
    leased_at: datetime


def deliver_notification(
    database: Database,
    messages: TwilioMessages,
    request: NotificationRequest,
    *,
    config: NotifierConfig,
    now: datetime,
) -> DeliveryResult:
    """Send ``request`` once, or say why not; raise RetryLater when Pub/Sub should retry."""
    ids = {"notification_id": request.notification_id, "user_id": str(request.user_id)}
    with database.unit_of_work() as uow:
        row = uow.fetch_one(
            "lease_notification",
            notification_id=request.notification_id,
            user_id=request.user_id,
            now=now,
            stale_before=now - config.lease,
        )
        if row is None:
            existing = uow.fetch_one(
                "find_notification_delivery", notification_id=request.notification_id
            )
            return _not_leased(existing, ids)
        lease = _Lease(request.notification_id, now)
        user, preferences = recipient_of_lease(row)
        decision = decide(user, preferences, request, now=now, window=config.session_window)
        if isinstance(decision, Skip):
            # Nobody reads this UPDATE's row count: it goes with the COMMIT, one round trip.
            uow.execute_later(
                "complete_notification",
                **_completion(lease, DeliveryStatus.SKIPPED, now=now, reason=decision.reason),
            )
            uow.commit()
            log.info(
                "notification skipped", action="notification.skipped", reason=decision.reason, **ids
            )
            return DeliveryResult(DeliveryStatus.SKIPPED, reason=decision.reason)
        uow.commit()  # the lease is visible to every other deliverer before we send
    assert user is not None  # noqa: S101 - decide() skips unknown users

    with database.unit_of_work() as uow:
        # The recipient's row is held (KEY SHARE) through the send: an erasure waits for
        # the message to be out, and one that committed since the lease is seen here, so
        # nothing goes to a number erased before the send (D74). The lock transaction
        # writes nothing; leaving the block rolls it back and frees the row.
        held = uow.fetch_one(
            "lock_notification_recipient",
            user_id=request.user_id,
            phone_number=str(user["phone_number"]),
        )
        if held is None:
            uow.execute_later(
                "complete_notification",
                **_completion(lease, DeliveryStatus.SKIPPED, now=now, reason=ERASED_REASON),
            )
            uow.commit()
            log.info(
                "notification skipped", action="notification.skipped", reason=ERASED_REASON, **ids
            )
            return DeliveryResult(DeliveryStatus.SKIPPED, reason=ERASED_REASON)
        try:
            sent: SentMessage | Exception = _send(
                messages,
                decision,
                to=WHATSAPP_PREFIX + str(user["phone_number"]),
                from_=config.whatsapp_from,
            )
        except Exception as error:
            sent = error  # answered below, once the row is free again
    if isinstance(sent, Exception):
        return _not_sent(database, lease, sent, now=now, ids=ids)

    kind = "template" if isinstance(decision, SendTemplate) else "text"
    _record(
        database, lease, DeliveryStatus.SENT, message_sid=sent.sid, reason=kind, now=now, ids=ids
    )
    log.info(
        "notification sent",
        action="notification.sent",
        message_sid=sent.sid,
        kind=kind,
        **ids,
    )
    return DeliveryResult(DeliveryStatus.SENT, reason=kind, message_sid=sent.sid)


def _not_sent(
    database: Database, lease: _Lease, error: Exception, *, now: datetime, ids: dict[str, str]
) -> DeliveryResult:
    """Twilio refused or failed: retry later (RetryLater) or record a failure for good."""
    reason = _twilio_reason(error)
    if is_retryable(error):
        _release(database, lease)
        log.warning(
            "notification will be retried", action="notification.retry", reason=reason, **ids
        )
        raise RetryLater(f"twilio: {reason}") from error
    _record(database, lease, DeliveryStatus.FAILED, reason=reason, now=now, ids=ids)
    log.warning("notification failed for good", action="notification.failed", reason=reason, **ids)
    return DeliveryResult(DeliveryStatus.FAILED, reason=reason)


def _not_leased(existing: Row | None, ids: dict[str, str]) -> DeliveryResult:
    """The lease went to another attempt: a duplicate when that attempt has finished."""
    if existing is None or existing["status"] == LEASED_STATUS:
        # Another attempt holds the lease (or just released it): not ours to finish.
        log.info("notification in progress elsewhere", action="notification.in_progress", **ids)
        raise RetryLater("notification is being delivered by another attempt")
    status = str(existing["status"])
    log.info("notification already handled", action="notification.duplicate", status=status, **ids)
    return DeliveryResult(DeliveryStatus.DUPLICATE, reason=status)


def _send(messages: TwilioMessages, decision: Decision, *, to: str, from_: str) -> SentMessage:
    if isinstance(decision, Send):
        return messages.send(to=to, from_=from_, body=decision.text)
    if isinstance(decision, SendTemplate):
        return messages.send(
            to=to,
            from_=from_,
            content_sid=decision.content_sid,
            content_variables=decision.variables_json(),
        )
    raise TypeError(f"nothing to send for {type(decision).__name__}")


def _twilio_reason(error: Exception) -> str:
    """Status and Twilio error code only: Twilio's message text may quote the number."""
    if isinstance(error, TwilioRestException):
        return f"twilio status {error.status} code {error.code}"
    return type(error).__name__


def recipient_of_lease(row: Row) -> tuple[Row | None, Row | None]:
    """The users row and the preferences row (None when missing) in a lease_notification
    row, with the columns decide() and the send read."""
    if row["user_id"] is None:
        return None, None
    user = {
        key: row[key]
        for key in (
            "phone_number",
            "verified_at",
            "last_active_at",
            "blocked_at",
            "anonymized_at",
        )
    }
    user["id"] = row["user_id"]
    if not row["has_preferences"]:
        return user, None
    preferences = {
        "user_id": row["user_id"],
        "notification_enabled": row["notification_enabled"],
        "language": row["language"],
    }
    return user, preferences


def _completion(
    lease: _Lease,
    status: DeliveryStatus,
    *,
    now: datetime,
    reason: str | None = None,
    message_sid: str | None = None,
) -> dict[str, Any]:
    """complete_notification's parameters."""
    return {
        "notification_id": lease.notification_id,
        "leased_at": lease.leased_at,
        "status": status.value,
        "reason": reason,
        "message_sid": message_sid,
        "now": now,
    }


def _record(
    database: Database,
    lease: _Lease,
    status: DeliveryStatus,
    *,
    now: datetime,
    ids: dict[str, str],
    reason: str | None = None,
    message_sid: str | None = None,
) -> None:
    """Record the outcome after Twilio answered. The message is out (or refused for good)
    whatever happens here, so a database failure is logged, not raised: a retry would
    send it again."""
    try:
        with database.unit_of_work() as uow:
            uow.execute_later(
                "complete_answered_notification",
                **_completion(lease, status, now=now, reason=reason, message_sid=message_sid),
            )
            uow.commit()
    except DatabaseError as error:
        if error_field(error, "C") != LEASE_LOST_SQLSTATE:
            _log_unrecorded(status, message_sid, ids)
            return
        log.warning(
            "notification lease was taken over before its outcome was recorded",
            action="notification.claim_lost",  # the action operators search for, kept (D121)
            status=status.value,
            message_sid=message_sid,
            **ids,
        )
    except Exception:
        _log_unrecorded(status, message_sid, ids)


# complete_answered_notification fails with division_by_zero when the lease is not ours.
LEASE_LOST_SQLSTATE = "22012"


def _log_unrecorded(status: DeliveryStatus, message_sid: str | None, ids: dict[str, str]) -> None:
    log.exception(
        "notification outcome not recorded",
        action="notification.unrecorded",
        status=status.value,
        message_sid=message_sid,
        **ids,
    )


def _release(database: Database, lease: _Lease) -> None:
    """Best effort: if this fails too, the lease runs out and a redelivery takes it over."""
    try:
        with database.unit_of_work() as uow:
            uow.execute(
                "release_notification_lease",
                notification_id=lease.notification_id,
                leased_at=lease.leased_at,
            )
            uow.commit()
    except Exception:
        log.exception(
            "notification lease not released",
            action="notification.release_failed",
            notification_id=lease.notification_id,
        )
