"""Hostile input at the webhook: arbitrary form fields and headers, forged and missing
signatures, non-UTF-8, SQL and XML metacharacters, numbers in every format. Never a 500,
never a write without a valid signature, nothing unescaped in the TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_WEBHOOK_URL, sign
from tests.webhook.conftest import PHONE, Bot

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SQL_AND_XML = [
    "'; DROP TABLE whatsapp_handler.users; --",
    '" OR 1=1 --',
    "%' OR '1'='1",
    "\\x00\\",
    "<Response><Message>pwned</Message></Response>",
    "]]><!--",
    "&amp;&lt;<&>\"'",
    "<![CDATA[x]]>",
    "$(id)",
    ":user_id",
]
TEXT = st.one_of(st.sampled_from(SQL_AND_XML), st.text(max_size=80))
FIELDS = [
    "MessageSid",
    "AccountSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "ProfileName",
    "WaId",
]
PHONES = st.one_of(
    st.sampled_from(
        [
            PHONE,
            "+44 7700 900123",
            "07700900123",
            "0044 7700-900-123",
            "(07700) 900 123",
            "+1 (555) 010-9999",
            "+4477009001239999999",
            "whatsapp:+447700900123",
            "",
            "+",
            "+0",
        ]
    ),
    st.from_regex(r"\+?[0-9 ()\-]{0,20}", fullmatch=True),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "X-Twilio-Signature",
            "X-Correlation-Id",
            "X-Cloud-Trace-Context",
            "Content-Length",
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "Host",
            "I-Twilio-Idempotency-Token",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    max_size=4,
)


def writes(sql: Any) -> int:
    (row,) = sql(
        "SELECT (SELECT count(*) FROM whatsapp_handler.users)"
        " + (SELECT count(*) FROM whatsapp_handler.outbox_events) AS n"
    )
    return int(row["n"])


def assert_not_500(response: Any) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code < 500 or response.status_code == 503, body
    assert "Traceback" not in body


def post_raw(bot: Bot, data: bytes | str, headers: dict[str, str]) -> Any:
    return bot.client.post(
        "/", data=data, content_type="application/x-www-form-urlencoded", headers=headers
    )


@FAST
@given(
    form=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), TEXT),
    headers=HEADERS,
)
def test_unsigned_or_forged_requests_are_refused_and_write_nothing(
    bot: Bot, sql: Any, form: dict[str, str], headers: dict[str, str]
) -> None:
    if "X-Twilio-Signature" in headers and headers["X-Twilio-Signature"] == sign(
        TEST_WEBHOOK_URL, form
    ):
        headers = {**headers, "X-Twilio-Signature": "forged"}
    response = post_raw(bot, urlencode(form), headers)

    assert_not_500(response)
    assert response.status_code in (400, 403, 413, 415), response.get_data(as_text=True)
    assert writes(sql) == 0
    assert bot.services.twilio.messages == []


@FAST
@given(field=st.sampled_from(FIELDS), value=TEXT)
def test_a_signed_request_replayed_with_an_altered_field_is_refused(
    bot: Bot, sql: Any, field: str, value: str
) -> None:
    form = bot.form("hi")
    signature = sign(TEST_WEBHOOK_URL, form)
    altered = {**form, field: value}
    if altered == form:
        altered[field] = value + "x"

    response = bot.post(altered, signature=signature)

    assert response.status_code in (400, 403), response.get_data(as_text=True)
    assert writes(sql) == 0


@FAST
@given(body=TEXT, phone=PHONES, extra=st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=3))
def test_signed_hostile_fields_never_500_and_never_echo_unescaped(
    bot: Bot, body: str, phone: str, extra: dict[str, str]
) -> None:
    form = {**bot.form(body), "From": f"whatsapp:{phone}", **extra}

    response = bot.post(form)

    assert_not_500(response)
    if response.status_code == 200:
        text = response.get_data(as_text=True)
        root = ET.fromstring(response.get_data())  # noqa: S314 - our own function's answer
        assert root.tag == "Response"
        assert len(root) <= 1 and all(child.tag == "Message" for child in root)
        for value in form.values():
            if any(ch in value for ch in "<>&") and len(value) > 3:
                assert value not in text


def test_sql_metacharacters_in_every_field_are_only_data(bot: Bot, sql: Any) -> None:
    bot.register()
    for payload in SQL_AND_XML:
        for field in FIELDS:
            form = {**bot.form(payload), field: payload} if field != "Body" else bot.form(payload)
            assert_not_500(bot.post(form))
    (row,) = sql("SELECT count(*) AS n, min(phone_number) AS phone FROM whatsapp_handler.users")
    assert row == {"n": 1, "phone": PHONE}
    assert bot.say("HELP")  # still answering, and the tables are still there


def test_non_utf8_bodies_are_refused_and_write_nothing(bot: Bot, sql: Any) -> None:
    for raw in (b"Body=\xff\xfe&From=whatsapp%3A%2B447700900123", b"\xc3\x28=\xa0\xa1", b"%ff=%fe"):
        response = post_raw(bot, raw, {"X-Twilio-Signature": "x"})
        assert_not_500(response)
        assert response.status_code in (400, 403)
    # A percent-encoded invalid byte in a signed form decodes to U+FFFD: harmless data.
    form = bot.form("x")
    encoded = urlencode(form) + "&Body=%ff%fe"
    response = post_raw(bot, encoded, {"X-Twilio-Signature": sign(TEST_WEBHOOK_URL, form)})
    assert_not_500(response)
    assert writes(sql) == 0


def test_an_oversized_body_is_413_and_writes_nothing(bot: Bot, sql: Any) -> None:
    form = bot.form("x" * 2_000_000)
    response = bot.post(form)
    assert response.status_code == 413
    assert writes(sql) == 0
