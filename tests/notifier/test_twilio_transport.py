"""The notifier's Twilio transport (shared/adapters/twilio_messages.py) against the stand-in.

Without a proxy in the environment, messages go out through a lean urllib3 client instead
of twilio's requests-based TwilioHttpClient (kept for proxied environments). What Twilio
receives, what the caller gets back and which exception a failure raises (its class name
is logged as the reason) must be the same through both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.models import RequestEncodingMixin
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from shared.adapters.twilio_messages import (
    _form,
    _requests_http_client,
    _urllib3_http_client,
)
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_WHATSAPP_FROM
from tools.devservices import free_port

TRANSPORTS: dict[str, Callable[[str], Any]] = {
    "urllib3": lambda base_url: _urllib3_http_client(base_url, 5.0, None),
    "twilio's requests client": lambda base_url: _requests_http_client(base_url, 5.0, {}, None),
}


def client_for(transport: str, base_url: str) -> Client:
    return Client(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, http_client=TRANSPORTS[transport](base_url))


def send_one(client: Client) -> Any:
    return client.messages.create(
        to="whatsapp:+447700900123",
        from_=TEST_WHATSAPP_FROM,
        content_sid="HX" + "e" * 32,
        content_variables='{"1":"08:02","2":"Tŷ Ddewi - Abertawe"}',
        status_callback="https://example.test/status?x=1&y=2",
    )


def test_twilio_receives_the_same_request_through_either_transport(clean_state: Any) -> None:
    twilio = clean_state.twilio
    answers = [send_one(client_for(transport, twilio.base_url)) for transport in TRANSPORTS]

    lean, reference = twilio.messages
    assert lean.form == reference.form  # every field, encoded alike (non-ASCII included)
    assert lean.content_variables == '{"1":"08:02","2":"Tŷ Ddewi - Abertawe"}'
    assert lean.status_callback == "https://example.test/status?x=1&y=2"
    assert [answer.sid for answer in answers] == [lean.sid, reference.sid]
    assert answers[0].status == answers[1].status and answers[0].to == answers[1].to


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_twilio_error_reply_raises_twilios_exception(clean_state: Any, transport: str) -> None:
    twilio = clean_state.twilio
    twilio.fail_next(1, status=400, code=21211, message="invalid To")

    with pytest.raises(TwilioRestException) as raised:
        send_one(client_for(transport, twilio.base_url))

    assert (raised.value.status, raised.value.code) == (400, 21211)
    assert twilio.messages == []


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_twilio_unreachable_raises_requests_connection_error(transport: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(requests.ConnectionError) as raised:
        send_one(client_for(transport, nobody))

    assert type(raised.value).__name__ == "ConnectionError"  # the reason the notifier logs


@pytest.mark.parametrize(
    "fields",
    [
        {"To": "whatsapp:+447700900123", "Body": "Tŷ Ddewi & York: 32 min"},
        {"MediaUrl": ["https://a.test/1.jpg", "https://a.test/2.jpg"], "Body": None},
        {"Flag": True, "Count": 3, "Empty": ""},
    ],
)
def test_the_form_is_encoded_as_requests_encodes_it(fields: dict[str, Any]) -> None:
    assert _form(fields) == RequestEncodingMixin._encode_params(fields)
