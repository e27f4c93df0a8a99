"""Twilio's StatusCallback for the messages we send: failed deliveries become log lines.

Twilio posts every status change (queued, sent, delivered, read, failed, undelivered).
Only failures need a human: they are logged as ``notification.delivery_failed`` with the
MessageSid and Twilio's ErrorCode (for example 63016: outside the 24-hour window).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.logs import get_logger

log = get_logger("delivery_status")

FAILED_STATUSES = frozenset({"failed", "undelivered"})


def record_delivery_status(form: Mapping[str, str]) -> bool:
    """Log one status report; True when it was a failed delivery."""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    message_sid = (form.get("MessageSid") or form.get("SmsSid") or "")[:64]
    if status in FAILED_STATUSES:
        log.warning(
            "message not delivered",
            action="notification.delivery_failed",
            message_sid=message_sid,
            status=status,
            error_code=(form.get("ErrorCode") or "")[:16] or None,
        )
        return True
    log.debug(
        "delivery status",
        action="notification.delivery_status",
        message_sid=message_sid,
        status=status[:32],
    )
    return False
