"""The notifier's body limits (issue 19): a body is bounded before anything parses it, and
a body nested too deep for a parser is a 400 with a reason, never a 500."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.notifier.conftest import envelope_for, post_event

BODY_LIMIT = 256 * 1024  # functions/notifier/main.py NOTIFY_BODY_MAX_BYTES
HUGE = 30 * 1024 * 1024


def _huge_push_body() -> bytes:
    """A push envelope whose data is 30 MB: well-formed, and never one of ours."""
    envelope = envelope_for("QUFB" * (HUGE // 4))
    return json.dumps(envelope).encode()


def test_a_30_mb_body_is_refused_without_being_read(notifier: Any, services: Any) -> None:
    body = _huge_push_body()
    stream = io.BytesIO(body)

    response = notifier.post(
        "/",
        input_stream=stream,
        content_type="application/json",
        content_length=len(body),
    )

    assert response.status_code == 400
    assert response.get_json() == {"error": f"body larger than {BODY_LIMIT} bytes"}
    assert stream.tell() == 0  # refused on its Content-Length: not one byte read
    assert services.twilio.messages == []


def test_a_30_mb_chunked_body_is_read_no_further_than_the_limit(
    notifier: Any, services: Any
) -> None:
    body = _huge_push_body()
    stream = io.BytesIO(body)

    response = notifier.post(
        "/",
        input_stream=stream,
        content_type="application/json",
        # No Content-Length: the server marks a chunked body's end for the application.
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 400
    assert response.get_json() == {"error": f"body larger than {BODY_LIMIT} bytes"}
    assert stream.tell() <= 2 * BODY_LIMIT
    assert services.twilio.messages == []


@pytest.mark.parametrize("mode", ["push", "structured", "binary"])
@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_a_body_nested_too_deep_is_a_400_with_a_reason(
    notifier: Any, services: Any, mode: str, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    if mode == "push":
        response = notifier.post("/", data=nested, content_type="application/json")
    else:
        # The same nesting as the CloudEvent's data.
        headers, body = _cloud_event(mode, nested)
        response = notifier.post("/", data=body, headers=headers)

    if len(nested) > BODY_LIMIT:
        assert response.status_code == 400
        assert response.get_json() == {"error": f"body larger than {BODY_LIMIT} bytes"}
    else:
        assert response.status_code == 400, response.get_data(as_text=True)[:200]
        assert response.get_json() == {"error": "body is nested too deeply"}
    assert services.twilio.messages == []


def _cloud_event(mode: str, data_json: str) -> tuple[dict[str, str], bytes]:
    attributes = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/notifications",
        "id": "1",
    }
    if mode == "structured":
        body = json.dumps({**attributes, "datacontenttype": "application/json"})
        # Splice the raw nesting in as data: json.dumps of the nesting itself would recurse.
        return (
            {"content-type": "application/cloudevents+json"},
            (body[:-1] + ', "data": ' + data_json + "}").encode(),
        )
    headers = {f"ce-{key}": value for key, value in attributes.items()}
    headers["content-type"] = "application/json"
    return headers, data_json.encode()


def test_a_well_formed_push_still_reaches_the_function(
    notifier: Any, services: Any, users: Any
) -> None:
    """Control: the checks above let an ordinary delivery through."""
    user_id = users.add("+447700900123")
    request = {"notification_id": "body-ok-1", "user_id": user_id, "text": "Your claim moved."}

    response = post_event(notifier, envelope_for(json.dumps(request).encode()), "push")

    assert response.status_code == 200
    assert [message.body for message in services.twilio.messages] == ["Your claim moved."]
