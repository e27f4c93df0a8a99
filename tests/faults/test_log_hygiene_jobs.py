"""The logs of the background jobs carry no phone number, message body, OTP code, auth token
or pepper: the relay publishing the events of real registrations and of an erasure, the
notifier delivering a notification to a known number, and the GDPR job anonymising a user.
tests/faults/test_log_hygiene.py covers the webhook's own flows."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from tests.conftest import TEST_AUTH_TOKEN, TEST_OTP_PEPPER
from tests.notifier.conftest import envelope_for, post_event
from tests.webhook.conftest import Bot

ROOT = Path(__file__).resolve().parents[2]
ACTIVE = "+447700900611"  # registered now: gets the notification
DORMANT = "+447700900612"  # registered 400 days ago: anonymised by the GDPR job
FIRST_WORDS = "hello, I travel from Hull to Selby every Monday"
NOTIFICATION_TEXT = "Your 08:02 Leeds to York was 32 minutes late; reply CLAIM for refund 7731"

pytestmark = pytest.mark.pubsub


def build(directory: str, target: str, signature_type: str = "http") -> tuple[Any, Any]:
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target=target,
        source=str(ROOT / f"functions/{directory}/main.py"),
        signature_type=signature_type,
    )
    return app.test_client(), sys.modules["main"]


def register(bot: Bot, phone: str, at: datetime) -> str:
    """hi, YES, the code: a verified user, registered at ``at``; the code sent."""
    bot.clock.now = at
    bot.say(FIRST_WORDS, phone=phone)
    bot.say("YES", phone=phone)
    code = bot.code(phone)
    assert "verified" in bot.say(code, phone=phone)
    return code


def test_relay_notifier_and_gdpr_logs_carry_no_numbers_bodies_codes_or_secrets(
    bot: Bot, sql: Any, pubsub: str, captured_logs: io.StringIO
) -> None:
    now = datetime.now(UTC)
    codes = [register(bot, ACTIVE, now), register(bot, DORMANT, now - timedelta(days=400))]
    (active,) = sql(
        "SELECT id::text AS id FROM whatsapp_handler.users WHERE phone_number = :p", p=ACTIVE
    )
    built = []
    try:
        notifier, module = build("notifier", "notify", "cloudevent")
        built.append(module)
        gdpr, module = build("gdpr_cleanup", "gdpr_cleanup")
        built.append(module)
        relay, module = build("outbox_relay", "outbox_relay")  # after pubsub set the host
        built.append(module)

        request = {
            "notification_id": "hygiene-1",
            "user_id": active["id"],
            "text": NOTIFICATION_TEXT,
        }
        delivered = post_event(notifier, envelope_for(json.dumps(request).encode()))
        erased = gdpr.post("/", headers={"X-Correlation-ID": "hygiene-gdpr"})
        events = sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events")[0]["n"]
        published = relay.post("/")
    finally:
        for module in built:
            if module.deps.cache_info().currsize:
                module.deps().close()
            module.deps.cache_clear()

    # Each job did its work (else the test would prove nothing).
    assert delivered.status_code == 200
    sent = [(m.to, m.body) for m in bot.services.twilio.messages if m.body == NOTIFICATION_TEXT]
    assert sent == [(f"whatsapp:{ACTIVE}", NOTIFICATION_TEXT)]
    assert erased.status_code == 200 and erased.get_json()["anonymised"] == 1
    assert sql(
        "SELECT count(*) AS n FROM whatsapp_handler.users WHERE phone_number = :p", p=DORMANT
    ) == [{"n": 0}]
    assert published.status_code == 200 and published.get_json()["published"] == events > 0

    lines = [line for line in captured_logs.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # each line is one JSON object
    loggers = {record.get("logger", "") for record in records}
    for component in ("notifier", "gdpr", "relay"):
        assert any(component in name for name in loggers), f"no {component} log line: {loggers}"
    forbidden: dict[str, str] = {
        "auth token": TEST_AUTH_TOKEN,
        "pepper": TEST_OTP_PEPPER,
        "first message": FIRST_WORDS,
        "notification text": NOTIFICATION_TEXT,
        "active phone": ACTIVE,
        "active phone without +": ACTIVE[1:],
        "dormant phone": DORMANT,
        "dormant phone without +": DORMANT[1:],
    }
    forbidden.update({f"code {code}": code for code in codes})
    for what, needle in forbidden.items():
        # a code is six digits: not inside a longer hex id or the time stamp's microseconds
        pattern = re.compile(rf"(?<![0-9a-fA-F.]){re.escape(needle)}(?![0-9a-fA-F])")
        hits = [line for line in lines if pattern.search(line)]
        assert not hits, f"{what} appears in the logs: {hits[:2]}"
