"""Security and parsing at the door (RAILREPAY-600): what is refused writes nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_WEBHOOK_URL, Services, sign
from tests.webhook.conftest import PHONE, Bot, Webhook, twiml_messages


def nothing_written(bot: Bot, sql: Any) -> None:
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]
    assert list(bot.services.redis.scan_iter(match=f"{bot.services.redis_prefix}*")) == []
    assert bot.services.twilio.messages == []


@pytest.fixture()
def reconfigured(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Change environment variables for one test; the function re-reads its settings."""

    def apply(**variables: str | None) -> None:
        for name, value in variables.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        webhook.module.deps.cache_clear()

    yield apply
    monkeypatch.undo()
    webhook.module.deps.cache_clear()


@pytest.mark.parametrize(
    "signature",
    [
        "",  # missing
        "bm90IGEgc2lnbmF0dXJl",  # wrong
        sign("https://internal.run.app/webhook", {"x": "y"}),  # over another URL
    ],
    ids=["missing", "wrong", "other-url"],
)
def test_unsigned_requests_get_403_and_change_nothing(bot: Bot, sql: Any, signature: str) -> None:
    response = bot.post(bot.form("YES"), signature=signature)

    assert response.status_code == 403
    assert response.get_json() == {"error": response.get_json()["error"]}
    nothing_written(bot, sql)


def test_signature_over_the_internal_url_is_refused(bot: Bot, sql: Any) -> None:
    form = bot.form("hello")
    response = bot.post(form, signature=sign("http://localhost/", form))
    assert response.status_code == 403
    nothing_written(bot, sql)


def test_a_signature_over_the_url_with_its_default_port_is_accepted(bot: Bot) -> None:
    # Twilio's back end signs some requests with ":443" in the URL, some without.
    with_port = TEST_WEBHOOK_URL.replace(".test/", ".test:443/")
    assert with_port != TEST_WEBHOOK_URL
    form = bot.form("hello")
    response = bot.post(form, signature=sign(with_port, form))
    assert twiml_messages(response)


def test_signature_with_another_token_is_refused(bot: Bot, sql: Any) -> None:
    form = bot.form("hello")
    response = bot.post(form, signature=sign(TEST_WEBHOOK_URL, form, token="another-token"))
    assert response.status_code == 403
    nothing_written(bot, sql)


def test_no_auth_token_configured_refuses_everything(bot: Bot, sql: Any, reconfigured: Any) -> None:
    reconfigured(TWILIO_AUTH_TOKEN=None)
    response = bot.send("hello")
    assert response.status_code == 403
    nothing_written(bot, sql)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/json", 415), ("text/plain", 415), ("multipart/form-data; boundary=x", 415)],
)
def test_only_twilio_form_encoding_is_accepted(
    bot: Bot, sql: Any, content_type: str, status: int
) -> None:
    form = bot.form("hello")
    response = bot.client.post(
        "/",
        data=json.dumps(form),
        content_type=content_type,
        headers={"X-Twilio-Signature": sign(TEST_WEBHOOK_URL, form)},
    )
    assert response.status_code == status
    assert "error" in response.get_json()
    nothing_written(bot, sql)


def test_oversized_bodies_get_413(bot: Bot, sql: Any) -> None:
    form = bot.form("x" * (70 * 1024))
    response = bot.post(form)
    assert response.status_code == 413
    nothing_written(bot, sql)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"From": None}, "From is required"),
        ({"MessageSid": None}, "MessageSid is required"),
        ({"MessageSid": "SM-not/a sid"}, "MessageSid is malformed"),
        ({"From": "+447700900123"}, "From must look like whatsapp:+447700900123"),
        ({"From": "whatsapp:447700900123"}, "E.164"),
        ({"From": "whatsapp:+44123"}, "wrong length"),
        ({"From": "whatsapp:+4477009001239999"}, "From"),
        ({"From": "whatsapp:+44 hello"}, "From"),
        ({"NumMedia": "two"}, "NumMedia"),
        ({"NumMedia": "11"}, "NumMedia"),
        ({"NumMedia": "1"}, "MediaUrl0"),
        (
            {"NumMedia": "1", "MediaUrl0": "javascript:alert(1)", "MediaContentType0": "image/png"},
            "MediaUrl0",
        ),
        (
            {"NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m", "MediaContentType0": "?"},
            "MediaContentType0",
        ),
    ],
)
def test_bad_fields_get_400_with_a_reason(
    bot: Bot, sql: Any, change: dict[str, str | None], reason: str
) -> None:
    form = bot.form("hello")
    for name, value in change.items():
        if value is None:
            form.pop(name)
        else:
            form[name] = value
    response = bot.post(form)
    assert response.status_code == 400
    assert reason in response.get_json()["error"]
    nothing_written(bot, sql)


@pytest.mark.parametrize("phone", ["+447700900000", "+447700900999", "+447700900123"])
def test_ofcom_drama_numbers_are_welcome(bot: Bot, phone: str) -> None:
    assert "reply YES" in bot.say("hello", phone=phone)


def test_other_methods_are_refused(bot: Bot) -> None:
    response = bot.client.get("/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert bot.client.post("/health").status_code == 405


def test_health_answers_200_when_database_and_redis_answer(bot: Bot) -> None:
    response = bot.client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": ["database", "redis"]}


def test_health_answers_503_naming_what_is_down(
    bot: Bot, reconfigured: Any, services: Services
) -> None:
    reconfigured(REDIS_URL="redis://127.0.0.1:1/0")
    response = bot.client.get("/health")
    assert response.status_code == 503
    assert list(response.get_json()["failing"]) == ["redis"]

    reconfigured(REDIS_URL=services.redis_url, DATABASE_URL="postgresql://nobody@127.0.0.1:1/x")
    response = bot.client.get("/health")
    assert response.status_code == 503
    assert list(response.get_json()["failing"]) == ["database"]


def test_redis_down_is_a_503_and_writes_nothing(bot: Bot, sql: Any, reconfigured: Any) -> None:
    reconfigured(REDIS_URL="redis://127.0.0.1:1/0")
    response = bot.send("YES")
    assert response.status_code == 503
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]


def test_a_missing_required_setting_is_named(bot: Bot, reconfigured: Any) -> None:
    reconfigured(OTP_PEPPER=None)
    response = bot.send("hello")
    assert response.status_code == 503
    assert response.get_json() == {"error": "OTP_PEPPER is required but not set"}


def test_replies_are_twiml_and_escaped(bot: Bot) -> None:
    response = bot.send("<b>hi</b> & bye")
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True).startswith(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
    )


def test_status_callbacks_log_failed_deliveries(
    bot: Bot, reconfigured: Any, caplog: pytest.LogCaptureFixture
) -> None:
    status_url = "https://whatsapp-handler.example.test/webhook/status"
    reconfigured(STATUS_CALLBACK_URL=status_url)
    failed = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "undelivered", "ErrorCode": "63016"}
    delivered = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "delivered"}

    with caplog.at_level(logging.INFO, logger="whatsapp_handler"):
        assert bot.post(failed, path="/status", url=status_url).status_code == 204
        assert bot.post(delivered, path="/status", url=status_url).status_code == 204
        unsigned = bot.post(failed, path="/status", url=TEST_WEBHOOK_URL)

    assert unsigned.status_code == 403
    failures = [
        record.fields  # type: ignore[attr-defined]
        for record in caplog.records
        if getattr(record, "fields", {}).get("action") == "notification.delivery_failed"
    ]
    assert failures == [
        {
            "action": "notification.delivery_failed",
            "message_sid": "SM" + "f" * 32,
            "status": "undelivered",
            "error_code": "63016",
        }
    ]


def test_logs_never_carry_the_number_the_body_or_the_code(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="whatsapp_handler"):
        bot.say("my secret words")
        bot.say("YES")
        code = bot.code()
        bot.say(code)
    text = "\n".join(
        f"{record.getMessage()} {getattr(record, 'fields', '')}" for record in caplog.records
    )
    assert "webhook.message_handled" in text
    assert PHONE not in text and "7700900123" not in text
    assert "secret words" not in text
    assert code not in text


# Hypothesis: whatever Twilio (or anyone) posts, the answer is never a 5xx.
_text = st.text(max_size=40)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "From": st.one_of(
            _text,
            st.from_regex(r"whatsapp:\+[0-9]{0,16}", fullmatch=True),
            st.just(f"whatsapp:{PHONE}"),
        ),
        "MessageSid": st.one_of(_text, st.from_regex(r"SM[0-9a-f]{32}", fullmatch=True)),
        "Body": st.text(max_size=200),
        "NumMedia": st.one_of(_text, st.integers(-2, 12).map(str)),
        "MediaUrl0": st.one_of(_text, st.just("https://api.twilio.com/media/1")),
        "MediaContentType0": st.one_of(
            _text, st.sampled_from(["image/jpeg", "application/pdf", "audio/ogg"])
        ),
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(form=_fields, signed=st.booleans())
def test_no_form_body_ever_gets_a_5xx(bot: Bot, form: dict[str, str], signed: bool) -> None:
    headers = {"X-Twilio-Signature": sign(TEST_WEBHOOK_URL, form) if signed else "x"}
    response = bot.client.post(
        "/",
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )
    assert response.status_code in (200, 400, 403), response.get_data(as_text=True)
    if response.status_code == 200:  # a reply, or none for a repeated MessageSid
        assert len(twiml_messages(response)) <= 1
    else:
        assert "error" in response.get_json()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=300))
def test_no_raw_body_ever_gets_a_5xx(bot: Bot, raw: bytes) -> None:
    response = bot.client.post(
        "/",
        data=raw,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "x"},
    )
    assert response.status_code in (400, 403)


def test_rfc_metric_fields_are_logged(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="whatsapp_handler"):
        bot.say("hello")
        bot.say("YES")
        bot.say("000000" if bot.code() != "000000" else "111111")
        bot.say(bot.code())
    fields = [getattr(record, "fields", {}) for record in caplog.records]

    def metric(name: str) -> list[tuple[Any, Any]]:
        return [(line[name], line.get("status")) for line in fields if name in line]

    assert metric("whatsapp_user_registrations_total") == [(1, "success")]
    assert metric("whatsapp_otp_sent_total") == [(1, "success")]
    assert metric("whatsapp_otp_verified_total") == [(1, "failure"), (1, "success")]
    created = {
        line["event_type"]: line["whatsapp_outbox_events_created_total"]
        for line in fields
        if "whatsapp_outbox_events_created_total" in line
    }
    assert created == {"user.registered": 1, "conversation.started": 1, "user.verified": 1}
