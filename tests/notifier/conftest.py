"""The notifier through functions-framework, fed real CloudEvents in Pub/Sub's envelope.

Users are arranged with literal SQL (the webhook that registers them is tested on its
own); every delivery goes through ``functions_framework.create_app(...).test_client()``
in one of the three shapes Pub/Sub can reach the function in: an Eventarc CloudEvent in
structured or binary mode, or a plain push subscription's body, which functions-framework
converts into the same CloudEvent.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from tests.conftest import TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions/notifier/main.py")
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
TOPIC_SOURCE = f"//pubsub.googleapis.com/projects/{TEST_PROJECT}/topics/notifications"
SUBSCRIPTION = f"projects/{TEST_PROJECT}/subscriptions/notifications-notify"
MODES = ("structured", "binary", "push")


@pytest.fixture(scope="module")
def notifier(services: Any) -> Any:
    """One app per module; its deps() is built on the first delivery, with the run's env."""
    app = functions_framework.create_app(
        target="notify", source=SOURCE, signature_type="cloudevent"
    )
    return app.test_client()


def envelope_for(
    data: bytes | str, *, message_id: str | None = None, attributes: dict[str, str] | None = None
) -> dict[str, Any]:
    """What Pub/Sub delivers: the message (data base64) and the subscription."""
    raw = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {
        "message": {
            "data": raw,
            "attributes": attributes or {},
            "messageId": message_id or str(secrets.randbelow(10**16)),
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": SUBSCRIPTION,
    }


def request_envelope(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return envelope_for(json.dumps(request).encode(), **kwargs)


def post_event(client: Any, envelope: Any, mode: str = "structured") -> Any:
    """POST one delivery as Eventarc (structured or binary CloudEvent) or a push would."""
    if mode == "push":
        return client.post("/", json=envelope)
    message_id = (
        envelope.get("message", {}).get("messageId", "1") if isinstance(envelope, dict) else "1"
    )
    event = CloudEvent(
        {"type": PUBSUB_TYPE, "source": TOPIC_SOURCE, "id": str(message_id)}, envelope
    )
    if mode == "structured":
        headers, body = to_structured(event)
    else:
        headers, body = to_binary(event)
        headers["content-type"] = "application/json"
    return client.post("/", data=body, headers=headers)


@dataclass
class Users:
    """Arrange users with literal SQL, relative to the real clock (the function reads it)."""

    sql: Callable[..., list[dict[str, Any]]]

    def add(
        self,
        phone: str = "+447700900123",
        *,
        verified: bool = True,
        active_ago: timedelta = timedelta(hours=1),
        blocked: bool = False,
        notifications: bool = True,
        language: str = "en-GB",
        preferences: bool = True,
    ) -> str:
        now = datetime.now(UTC)
        (row,) = self.sql(
            "INSERT INTO whatsapp_handler.users (phone_number, verified_at, otp_verified_at,"
            " terms_accepted_at, terms_version, last_active_at, blocked_at, block_reason)"
            " VALUES (:phone, :verified, :verified, :terms, 'v1', :active, :blocked, :reason)"
            " RETURNING id",
            phone=phone,
            verified=now - timedelta(days=2) if verified else None,
            terms=now - timedelta(days=2),
            active=now - active_ago,
            blocked=now - timedelta(days=1) if blocked else None,
            reason="abuse" if blocked else None,
        )
        if preferences:
            self.sql(
                "INSERT INTO whatsapp_handler.user_preferences"
                " (user_id, notification_enabled, language) VALUES (:id, :enabled, :language)",
                id=row["id"],
                enabled=notifications,
                language=language,
            )
        return str(row["id"])

    def deliveries(self) -> list[dict[str, Any]]:
        return self.sql(
            "SELECT notification_id, CAST(user_id AS TEXT) AS user_id, status, reason,"
            " message_sid, claimed_at, completed_at"
            " FROM whatsapp_handler.notification_deliveries ORDER BY claimed_at"
        )


@pytest.fixture()
def users(sql: Callable[..., list[dict[str, Any]]]) -> Users:
    return Users(sql)


@pytest.fixture()
def log_lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Our JSON log lines, as Cloud Logging would get them."""
    import logging

    from shared.logs import JsonFormatter

    formatter = JsonFormatter()
    with caplog.at_level(logging.DEBUG, logger="whatsapp_handler"):
        yield lambda: [
            json.loads(formatter.format(record))
            for record in caplog.records
            if record.name.startswith("whatsapp_handler")
        ]
