"""The small family of errors the entry points know how to answer (mapped in one place)."""

from __future__ import annotations


class WhatsAppHandlerError(Exception):
    """Base class: every error here carries a reason safe to show a caller."""

    status_code = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(WhatsAppHandlerError):
    """Malformed input: a 4xx with a reason, and nothing written."""

    status_code = 400


class Forbidden(WhatsAppHandlerError):
    """The caller is not who it claims (for example a bad X-Twilio-Signature)."""

    status_code = 403


class NotFound(WhatsAppHandlerError):
    status_code = 404


class PayloadTooLarge(BadRequest):
    status_code = 413


class UnsupportedMediaType(BadRequest):
    status_code = 415


class DependencyUnavailable(WhatsAppHandlerError):
    """PostgreSQL, Redis, Pub/Sub or Twilio could not be reached; the work may be retried."""

    status_code = 503
