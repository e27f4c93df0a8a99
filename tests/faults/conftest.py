"""Faults, races and hostile input: the webhook fixtures of tests/webhook, reused."""

from __future__ import annotations

from tests.webhook.conftest import bot, outbox, webhook

__all__ = ["bot", "outbox", "webhook"]
