"""Structured JSON logs in Cloud Logging's format: one line per event.

    log.info("otp sent", action="otp.sent", user_id=str(user_id))

Fields ``severity`` and ``message`` are what Cloud Logging reads; ``action`` names what
happened; ids go in as fields. The correlation id of the request being served is added
to every line (``logging.googleapis.com/trace`` is added when a trace header was seen).
Never log phone numbers (use ``mask_phone``), message bodies, OTP codes or secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
trace_var: ContextVar[str | None] = ContextVar("trace", default=None)

_LOGGER_NAME = "whatsapp_handler"


def mask_phone(phone_number: str | None) -> str:
    """+447700900123 -> +44*******123: enough for ops to tell numbers apart, not to dial."""
    if not phone_number:
        return ""
    if len(phone_number) <= 6:
        return "*" * len(phone_number)
    return phone_number[:3] + "*" * (len(phone_number) - 6) + phone_number[-3:]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARNING" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        correlation_id = correlation_id_var.get()
        if correlation_id and "correlation_id" not in entry:
            entry["correlation_id"] = correlation_id
        trace = trace_var.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a traceback can quote a value (a number, a body) from a frame.
            entry["error_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


class StructuredLogger:
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def is_enabled(self, level: int) -> bool:
        """For a hot path: skip building a line's fields when it would not be written."""
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, message: str, action: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, message, extra={"fields": {"action": action, **fields}})

    def debug(self, message: str, *, action: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, action, fields)

    def info(self, message: str, *, action: str, **fields: Any) -> None:
        self._log(logging.INFO, message, action, fields)

    def warning(self, message: str, *, action: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, action, fields)

    def error(self, message: str, *, action: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, action, fields)

    def exception(self, message: str, *, action: str, **fields: Any) -> None:
        self._logger.error(message, exc_info=True, extra={"fields": {"action": action, **fields}})


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: one JSON handler on stdout for our logger."""
    logger = logging.getLogger(_LOGGER_NAME)
    logger.setLevel(level.upper())
    if not any(getattr(handler, "_whatsapp_handler", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler._whatsapp_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def get_logger(component: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(f"{_LOGGER_NAME}.{component}"))
