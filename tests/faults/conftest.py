"""Faults, races and hostile input: the webhook fixtures of tests/webhook, reused, and the
service's log lines captured for the log-hygiene tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from shared.logs import JsonFormatter
from tests.webhook.conftest import bot, outbox, webhook

__all__ = ["bot", "captured_logs", "outbox", "webhook"]


@pytest.fixture()
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log line of the service at DEBUG, as its JSON handler writes them. LOG_LEVEL
    too, so the functions built in the test (configure_logging) keep DEBUG."""
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("whatsapp_handler")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)
