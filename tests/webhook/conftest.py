"""The webhook through functions-framework's test client, on real PostgreSQL and Redis and
the Twilio stand-in: signed requests exactly as Twilio makes them, a movable clock, and
every outbox payload checked against its schema in docs/events/."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import functions_framework
import jsonschema
import pytest

from shared.services.inbound import utc_now
from tests.conftest import TEST_ACCOUNT_SID, TEST_WEBHOOK_URL, Services, sign

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "docs/events"
PHONE = "+447700900123"
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Webhook:
    app: Any
    module: ModuleType


@pytest.fixture(scope="session")
def webhook(services: Services) -> Webhook:
    app = functions_framework.create_app(
        target="webhook", source=str(ROOT / "functions/webhook/main.py")
    )
    # functions-framework registers every source as module "main": keep ours now.
    return Webhook(app=app, module=sys.modules["main"])


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Bot:
    """Talks to the webhook as WhatsApp users (and as Twilio)."""

    webhook: Webhook
    services: Services
    clock: Clock
    sids: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))

    @property
    def client(self) -> Any:
        return self.webhook.app.test_client()

    def next_sid(self) -> str:
        """Twilio's shape: SM and 32 lower-case hex digits (distinct within a test)."""
        return f"SM{next(self.sids):032x}"

    def form(
        self,
        text: str = "",
        *,
        phone: str = PHONE,
        sid: str | None = None,
        media: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, str]:
        form = {
            "MessageSid": sid or self.next_sid(),
            "AccountSid": TEST_ACCOUNT_SID,  # ours: any other is refused
            "From": f"whatsapp:{phone}",
            "To": "whatsapp:+447700900998",
            "Body": text,
            "NumMedia": str(len(media)),
        }
        for index, (url, content_type) in enumerate(media):
            form[f"MediaUrl{index}"] = url
            form[f"MediaContentType{index}"] = content_type
        return form

    def post(
        self,
        form: dict[str, str],
        *,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        path: str = "/",
        url: str = TEST_WEBHOOK_URL,
    ) -> Any:
        all_headers = {"X-Twilio-Signature": sign(url, form) if signature is None else signature}
        all_headers.update(headers or {})
        return self.client.post(
            path,
            data=urlencode(form),
            content_type="application/x-www-form-urlencoded",
            headers=all_headers,
        )

    def send(self, text: str = "", **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", None)
        return self.post(self.form(text, **kwargs), headers=headers)

    def say(self, text: str = "", **kwargs: Any) -> str:
        """Send a message; the bot's one reply (asserting a 200 TwiML answer)."""
        response = self.send(text, **kwargs)
        return reply_text(response)

    def code(self, phone: str = PHONE) -> str:
        """The code in the last SMS sent to ``phone``."""
        (code,) = re.findall(r"\b\d{6}\b", self.services.twilio.sent_to(phone)[-1].body or "")
        return code

    def register(self, phone: str = PHONE) -> None:
        """A verified user, the way a person gets there."""
        self.say("hi", phone=phone)
        self.say("YES", phone=phone)
        assert "verified" in self.say(self.code(phone), phone=phone)


def twiml_messages(response: Any) -> list[str]:
    """The messages of a 200 TwiML answer (none for a repeated delivery)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())  # noqa: S314 - our own function's answer
    assert root.tag == "Response"
    return [element.text or "" for element in root.findall("Message")]


def reply_text(response: Any) -> str:
    """The one message of a 200 TwiML answer."""
    messages = twiml_messages(response)
    assert len(messages) == 1, response.get_data(as_text=True)
    return messages[0]


@pytest.fixture()
def bot(webhook: Webhook, clean_state: Services) -> Iterator[Bot]:
    clock = Clock()
    services = webhook.module.deps().services
    services.clock = clock
    yield Bot(webhook=webhook, services=clean_state, clock=clock)
    services.clock = utc_now


_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}


def validate_payload(event_type: str, payload: dict[str, Any]) -> None:
    if event_type not in _VALIDATORS:
        schema = json.loads((EVENTS_DIR / f"{event_type}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        _VALIDATORS[event_type] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    _VALIDATORS[event_type].validate(payload)


@pytest.fixture()
def outbox(sql: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """The outbox rows, oldest first, each payload validated against its schema."""

    def rows() -> list[dict[str, Any]]:
        found = sql(
            "SELECT id, event_type, aggregate_type, aggregate_id, correlation_id, payload"
            " FROM whatsapp_handler.outbox_events ORDER BY created_at, id"
        )
        for row in found:
            validate_payload(row["event_type"], row["payload"])
        return found

    return rows
