"""The notification push subscription (terraform/pubsub.tf) delivers what `notify` expects.

Terraform pushes NOTIFY_TOPIC straight to the notify function (a Pub/Sub push
subscription with OIDC, retries and a dead-letter topic) instead of an Eventarc trigger.
These tests prove, with the functions-framework the functions run on, that a raw Pub/Sub
push body reaches a CloudEvent function as the same event data an Eventarc delivery
carries, and that a failure answers 500, which Pub/Sub takes as a nack and retries.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from tests.terraform.hcl import REPO

PROBE = """
import functions_framework

RECEIVED = []


@functions_framework.cloud_event
def notify(event):
    if event.data["message"].get("attributes", {}).get("fail") == "yes":
        raise RuntimeError("transient failure")
    RECEIVED.append({"type": event["type"], "data": event.data})
"""

MESSAGE = {
    "data": base64.b64encode(
        json.dumps(
            {"notification_id": "n-1", "user_id": "u-1", "text": "Your claim was paid"}
        ).encode()
    ).decode(),
    "attributes": {"origin": "claim-dispatcher"},
    "messageId": "1234567890",
    "publishTime": "2025-11-30T10:00:00.000Z",
}
SUBSCRIPTION = "projects/railrepay/subscriptions/whatsapp-handler-notifications-notify"


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    source = tmp_path / "main.py"
    source.write_text(PROBE, encoding="utf-8")
    app = functions_framework.create_app(target="notify", source=str(source))
    module = sys.modules["main"]
    yield app.test_client(), module.RECEIVED


def test_raw_push_arrives_as_the_cloud_event_eventarc_would_deliver(probe: Any) -> None:
    client, received = probe

    pushed = client.post("/", json={"message": MESSAGE, "subscription": SUBSCRIPTION})
    eventarc = client.post(
        "/",
        json={"message": MESSAGE, "subscription": SUBSCRIPTION},
        headers={
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": "//pubsub.googleapis.com/projects/railrepay/topics/whatsapp-handler-notifications",
            "ce-id": "1234567890",
        },
    )

    assert pushed.status_code == 200 and eventarc.status_code == 200
    via_push, via_eventarc = received
    assert (
        via_push["type"]
        == via_eventarc["type"]
        == ("google.cloud.pubsub.topic.v1.messagePublished")
    )
    for field in ("data", "attributes", "messageId", "publishTime"):
        assert via_push["data"]["message"][field] == via_eventarc["data"]["message"][field]
    decoded = json.loads(base64.b64decode(via_push["data"]["message"]["data"]))
    assert decoded["notification_id"] == "n-1"


def test_a_failing_delivery_answers_500_so_pubsub_retries(probe: Any) -> None:
    client, received = probe
    failing = {**MESSAGE, "attributes": {"fail": "yes"}}

    response = client.post("/", json={"message": failing, "subscription": SUBSCRIPTION})

    assert response.status_code == 500
    assert received == []


def test_the_notifier_acknowledges_a_malformed_push(services: Any, clean_state: Any) -> None:
    source = REPO / "functions" / "notifier" / "main.py"
    if not source.is_file():
        pytest.skip("functions/notifier/main.py is not written yet")
    client = functions_framework.create_app(target="notify", source=str(source)).test_client()
    garbage = {**MESSAGE, "data": base64.b64encode(b"not json").decode()}

    response = client.post("/", json={"message": garbage, "subscription": SUBSCRIPTION})

    # Acknowledged (2xx): a message that can never be delivered must not loop until the
    # dead-letter topic; Pub/Sub retries only what may succeed later.
    assert 200 <= response.status_code < 300
    assert services.twilio.messages == []
