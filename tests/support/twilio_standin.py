"""The Twilio stand-in for the tests; the code lives in shared/devtwilio.py (`make dev`
uses it too). This module keeps the tests' import path working."""

from __future__ import annotations

from tools.devtwilio import RecordedMessage, TwilioStandIn, addressed_to

__all__ = ["RecordedMessage", "TwilioStandIn", "addressed_to"]
