"""The chat client's Twilio-shaped requests, the stand-in's dev pages, and the small pure
pieces of `make dev`, `notify` and `doctor` (no stack needed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import stat
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from tools.commands.chat import (
    ChatError,
    ChatTarget,
    content_type_for,
    fetch_messages,
    inbound_form,
    media_url_for,
    normalise_number,
    reply_texts,
    resolve_target,
    twilio_signature,
)
from tools.commands.doctor import Check, redact_url
from tools.commands.notify import notification_request, push_envelope
from tools.devstack import (
    DevOptions,
    EnvironmentSettings,
    describe_event,
    job_did_something,
    load_or_create_secrets,
    load_stack,
    render_log_line,
    startup_table,
    summarise_job,
    target_defined,
    timer_plan,
)
from tools.devtwilio import TwilioStandIn

SID = "AC" + "2" * 32
TOKEN = "tools-test-token-" + "9d" * 8
PUBLIC_URL = "https://whatsapp.example.test/webhook"


def target(standin_url: str | None = None) -> ChatTarget:
    return ChatTarget(
        webhook_url="http://127.0.0.1:1/",
        public_url=PUBLIC_URL,
        auth_token=TOKEN,
        account_sid=SID,
        whatsapp_to="whatsapp:+447700900000",
        standin_url=standin_url,
    )


# --- signing and form fields --------------------------------------------------------------


def test_the_signature_is_twilios_hmac_over_the_public_url_and_sorted_fields() -> None:
    form = inbound_form(number="+447700900123", body="hello", target=target())
    signed = PUBLIC_URL + "".join(key + form[key] for key in sorted(form))
    expected = base64.b64encode(
        hmac.new(TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()

    signature = twilio_signature(PUBLIC_URL, form, TOKEN)

    assert signature == expected
    assert RequestValidator(TOKEN).validate(PUBLIC_URL, form, signature)
    assert not RequestValidator(TOKEN).validate("http://127.0.0.1:8080/", form, signature)


def test_a_text_message_has_the_fields_twilio_sends_for_whatsapp() -> None:
    form = inbound_form(number="+447700900123", body="YES", target=target(), profile_name="Ann")

    assert form["From"] == "whatsapp:+447700900123"
    assert form["To"] == "whatsapp:+447700900000"
    assert form["WaId"] == "447700900123"
    assert form["Body"] == "YES"
    assert form["NumMedia"] == "0"
    assert form["AccountSid"] == SID
    assert form["ProfileName"] == "Ann"
    assert form["MessageType"] == "text"
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
    assert form["SmsMessageSid"] == form["SmsSid"] == form["MessageSid"]
    assert not any(key.startswith("Media") for key in form)


def test_a_photo_carries_its_url_and_content_type() -> None:
    photo = inbound_form(
        number="+447700900123",
        body="",
        target=target(),
        media=[("http://127.0.0.1:9/m/ME1", "image/jpeg")],
    )
    pdf = inbound_form(
        number="+447700900123",
        body="",
        target=target(),
        media=[("file:///t.pdf", "application/pdf")],
    )

    assert photo["NumMedia"] == "1"
    assert photo["MediaUrl0"] == "http://127.0.0.1:9/m/ME1"
    assert photo["MediaContentType0"] == "image/jpeg"
    assert photo["MessageType"] == "image"
    assert pdf["MessageType"] == "document"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("t.jpg", "image/jpeg"),
        ("t.JPEG", "image/jpeg"),
        ("t.png", "image/png"),
        ("t.pdf", "application/pdf"),
        ("t.unknownext", "application/octet-stream"),
    ],
)
def test_content_types_are_guessed_from_the_extension(name: str, content_type: str) -> None:
    assert content_type_for(Path(name)) == content_type


def test_numbers_are_accepted_with_or_without_the_whatsapp_prefix() -> None:
    assert normalise_number("+447700900123") == "+447700900123"
    assert normalise_number(" whatsapp:+447700900123 ") == "+447700900123"
    with pytest.raises(ChatError):
        normalise_number("07700900123")


def test_twiml_replies_are_read_message_by_message() -> None:
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hello &amp; welcome</Message>'
        "<Message><Body>Second</Body><Media>https://x/y.png</Media></Message></Response>"
    )

    assert reply_texts(twiml) == ["Hello & welcome", "Second\n[media] https://x/y.png"]
    assert reply_texts("<Response/>") == []


# --- where the chat talks -----------------------------------------------------------------


STACK = {
    "webhook_url": "http://127.0.0.1:8080/",
    "webhook_public_url": "http://127.0.0.1:8080/",
    "twilio_auth_token": "dev-token",
    "twilio_account_sid": SID,
    "twilio_whatsapp_from": "whatsapp:+447700900000",
    "twilio_api_base_url": "http://127.0.0.1:8090",
}


@pytest.fixture()
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> EnvironmentSettings:
    for name in (
        "TWILIO_AUTH_TOKEN",
        "WEBHOOK_PUBLIC_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_WHATSAPP_FROM",
        "TWILIO_API_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return EnvironmentSettings.from_env()


def test_without_a_url_the_chat_talks_to_the_running_dev_stack(
    bare_environment: EnvironmentSettings,
) -> None:
    chosen = resolve_target(
        url=None,
        token=None,
        public_url=None,
        whatsapp_to=None,
        stack=STACK,
        environment=bare_environment,
    )

    assert chosen.webhook_url == "http://127.0.0.1:8080/"
    assert chosen.auth_token == "dev-token"
    assert chosen.standin_url == "http://127.0.0.1:8090"


def test_with_a_url_the_chat_signs_for_the_public_url_with_the_given_token(
    bare_environment: EnvironmentSettings,
) -> None:
    chosen = resolve_target(
        url="http://127.0.0.1:9999/",
        token="real-token",
        public_url="https://x.test/webhook",
        whatsapp_to=None,
        stack=None,
        environment=bare_environment,
    )

    assert chosen.webhook_url == "http://127.0.0.1:9999/"
    assert chosen.public_url == "https://x.test/webhook"
    assert chosen.auth_token == "real-token"
    assert chosen.standin_url is None  # the real Twilio API: no /dev pages


def test_the_chat_says_how_to_fix_a_missing_webhook_or_token(
    bare_environment: EnvironmentSettings,
) -> None:
    with pytest.raises(ChatError, match="make dev"):
        resolve_target(
            url=None,
            token=None,
            public_url=None,
            whatsapp_to=None,
            stack=None,
            environment=bare_environment,
        )
    with pytest.raises(ChatError, match="TWILIO_AUTH_TOKEN"):
        resolve_target(
            url="https://x.test/webhook",
            token=None,
            public_url=None,
            whatsapp_to=None,
            stack=None,
            environment=bare_environment,
        )


# --- the stand-in's dev pages -------------------------------------------------------------


@pytest.fixture()
def standin() -> Iterator[TwilioStandIn]:
    running = TwilioStandIn(SID, TOKEN).start()
    yield running
    running.stop()


def _send(standin: TwilioStandIn, to: str, body: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - the local stand-in
        f"{standin.base_url}/2010-04-01/Accounts/{SID}/Messages.json",
        data=urlencode({"To": to, "From": "+447700900001", "Body": body}).encode(),
        headers={"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert response.status == 201


def test_the_chat_sees_sms_and_whatsapp_sent_to_its_number_once(standin: TwilioStandIn) -> None:
    chat = target(standin.base_url)
    _send(standin, "+447700900123", "code 123456")
    _send(standin, "+447700900999", "someone else")
    _send(standin, "whatsapp:+447700900123", "news")

    first, cursor = fetch_messages(chat, "+447700900123")
    _send(standin, "+447700900123", "again")
    later, _ = fetch_messages(chat, "+447700900123", cursor)

    assert [m["body"] for m in first] == ["code 123456", "news"]
    assert [m["body"] for m in later] == ["again"]


def test_one_connection_carries_many_requests_even_refused_ones(standin: TwilioStandIn) -> None:
    # Keep-alive as Twilio's API; a refused request's body is not read as the next request.
    host, port = standin.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    path = f"/2010-04-01/Accounts/{SID}/Messages.json"
    form = urlencode({"To": "+447700900123", "From": "+447700900001", "Body": "hi"})
    good = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    statuses, kept_alive = [], []
    try:
        for authorization in (good, "Basic bm9wZQ==", good):
            connection.request("POST", path, form, {**headers, "Authorization": authorization})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            kept_alive.append(not response.will_close)
    finally:
        connection.close()

    assert statuses == [201, 401, 201]
    assert kept_alive == [True, True, True]
    assert [message.body for message in standin.messages] == ["hi", "hi"]


def test_the_dev_pages_need_the_account_credentials(standin: TwilioStandIn) -> None:
    wrong = ChatTarget(**{**target(standin.base_url).__dict__, "auth_token": "wrong"})

    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch_messages(wrong, "+447700900123")

    assert refused.value.code == 401


def test_a_photo_is_hosted_by_the_standin_like_twilio_media(
    standin: TwilioStandIn, tmp_path: Path
) -> None:
    photo = tmp_path / "ticket.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0fake-jpeg")

    url, content_type = media_url_for(target(standin.base_url), photo)

    assert content_type == "image/jpeg"
    assert re.search(
        r"/2010-04-01/Accounts/AC\w+/Messages/MM[0-9a-f]{32}/Media/ME[0-9a-f]{32}$", url
    )
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.read() == photo.read_bytes()


def test_without_a_standin_a_photo_is_a_file_url(tmp_path: Path) -> None:
    photo = tmp_path / "ticket.pdf"
    photo.write_bytes(b"%PDF-1.4")

    assert media_url_for(target(None), photo) == (photo.resolve().as_uri(), "application/pdf")
    with pytest.raises(ChatError, match="no such file"):
        media_url_for(target(None), tmp_path / "missing.png")


# --- make dev's small pieces --------------------------------------------------------------


def test_the_console_shows_warnings_and_errors_not_routine_lines() -> None:
    info = json.dumps({"severity": "INFO", "message": "inbound", "action": "webhook.inbound"})
    error = json.dumps({"severity": "ERROR", "message": "boom", "action": "x.y", "error_type": "E"})
    gunicorn = "[2026-11-24 18:00:00 +0000] [42] [INFO] Booting worker with pid: 42"

    assert render_log_line(info) is None
    assert render_log_line(error) == "error: boom (x.y) [E]"
    assert render_log_line(gunicorn) is None
    assert render_log_line("Traceback (most recent call last):") is not None
    assert render_log_line(info, verbose=True) == "info: inbound (webhook.inbound)"


def test_a_function_is_served_only_once_its_target_is_defined() -> None:
    source = "import x\n\n@functions_framework.http\ndef webhook(request):\n    ...\n"

    assert target_defined(source, "webhook")
    assert not target_defined(source, "user_api")
    assert not target_defined("def webhook_helper(x): ...", "webhook")


def test_events_jobs_and_the_table_read_at_a_glance() -> None:
    event = {"event_type": "user.verified", "payload": {"user_id": "u1", "verified_at": "t"}}

    assert describe_event(event) == "user.verified user_id=u1"
    assert summarise_job({"published": 2, "failed": 0, "elapsed_seconds": 0.1}) == (
        "published=2 elapsed_seconds=0.1"
    )
    assert job_did_something({"published": 2}) and not job_did_something({"published": 0})
    assert startup_table([("db", "x"), ("webhook", "y")]) == "  db       x\n  webhook  y"


def test_local_secrets_are_made_once_private_and_kept(tmp_path: Path) -> None:
    first = load_or_create_secrets(tmp_path)
    again = load_or_create_secrets(tmp_path)

    assert first == again
    assert re.fullmatch(r"AC[0-9a-f]{32}", first["TWILIO_ACCOUNT_SID"])
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


def test_a_stack_file_left_by_a_dead_stack_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"pid": 2**22 + 7}))
    assert load_stack(tmp_path) is None
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid()}))
    assert load_stack(tmp_path) == {"pid": os.getpid()}


# --- notify and doctor --------------------------------------------------------------------


def test_a_notification_request_is_the_contract_message_and_pushes_intact() -> None:
    user_id = uuid.uuid4()
    request = notification_request(user_id=user_id, text="Your claim was paid")
    envelope = push_envelope(json.dumps(request).encode(), "projects/p/subscriptions/s")

    assert set(request) == {"notification_id", "user_id", "text"}
    assert request["user_id"] == str(user_id)
    assert uuid.UUID(request["notification_id"])
    assert json.loads(base64.b64decode(envelope["message"]["data"])) == request
    assert envelope["message"]["messageId"] and envelope["subscription"]


def test_doctor_lines_hide_passwords_and_say_how_to_fix() -> None:
    assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
    line = Check("redis", False, "refused", "start redis-server").line()
    assert line.startswith("FAIL") and line.endswith("-> start redis-server")


# --- timers --------------------------------------------------------------------------------

ALL_FUNCTIONS = ("webhook", "user_api", "outbox_relay", "outbox_purge", "gdpr_cleanup", "notify")


def test_make_dev_posts_the_scheduled_functions_on_timers(tmp_path: Path) -> None:
    options = DevOptions(dev_dir=tmp_path, relay_every_seconds=2, jobs_every_seconds=60)

    plan = timer_plan(options, ALL_FUNCTIONS, relay_enabled=True)

    assert [(t.name, t.first_after_seconds, t.every_seconds) for t in plan] == [
        ("outbox_relay", 0.5, 2),
        ("outbox_purge", 5.0, 60),
        ("gdpr_cleanup", 6.0, 60),
    ]
    assert [t.name for t in timer_plan(options, ALL_FUNCTIONS, relay_enabled=False)] == [
        "outbox_purge",
        "gdpr_cleanup",
    ]


def test_a_stack_without_timers_leaves_the_jobs_to_its_caller(tmp_path: Path) -> None:
    options = DevOptions(dev_dir=tmp_path, timers=False)

    assert timer_plan(options, ALL_FUNCTIONS, relay_enabled=True) == []
