"""Races: many deliveries at the same instant, through threads on the webhook test client."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tests.conftest import TEST_WEBHOOK_URL, sign
from tests.webhook.conftest import PHONE, Bot, twiml_messages


def at_once(forms: list[dict[str, str]], bot: Bot) -> list[Any]:
    """Post every form from its own thread, all released by one barrier."""
    barrier = threading.Barrier(len(forms))
    responses: list[Any] = [None] * len(forms)

    def deliver(index: int, form: dict[str, str]) -> None:
        client = bot.webhook.app.test_client()
        barrier.wait()
        responses[index] = client.post(
            "/",
            data=urlencode(form),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": sign(TEST_WEBHOOK_URL, form)},
        )

    threads = [
        threading.Thread(target=deliver, args=(index, form)) for index, form in enumerate(forms)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def count(sql: Callable[..., list[dict[str, Any]]], query: str) -> int:
    return int(sql(query)[0]["n"])


def test_fifty_deliveries_of_one_message_sid_make_one_effect_and_one_sms(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.say("hi")
    form = bot.form("YES")

    responses = at_once([form] * 50, bot)

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 503}, statuses  # 503: Twilio retries, never a 500
    replies = [twiml_messages(r) for r in responses if r.status_code == 200]
    assert sum(len(reply) for reply in replies) == 1
    assert len(bot.services.twilio.sent_to(PHONE)) == 1
    assert count(sql, "SELECT count(*) AS n FROM whatsapp_handler.users") == 1
    assert [row["event_type"] for row in outbox()] == ["user.registered", "conversation.started"]


def test_two_yes_from_a_new_number_at_once_make_one_user_and_one_registration(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.say("hi")

    responses = at_once([bot.form("YES"), bot.form("YES")], bot)

    assert {response.status_code for response in responses} <= {200, 503}
    assert count(sql, "SELECT count(*) AS n FROM whatsapp_handler.users") == 1
    events = [row["event_type"] for row in outbox()]
    assert events.count("user.registered") == 1
    # Two distinct messages each asked for a code: one or two SMS (each replaces the last
    # code), within the per-number hourly limit. Documented in docs/reliability.md.
    assert 1 <= len(bot.services.twilio.sent_to(PHONE)) <= 2
    assert "verified" in bot.say(bot.code())


def test_concurrent_wrong_codes_cannot_exceed_the_attempt_limit(bot: Bot, sql: Any) -> None:
    bot.say("hi")
    bot.say("YES")
    code = bot.code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    responses = at_once([bot.form(wrong) for _ in range(12)], bot)

    assert {response.status_code for response in responses} <= {200, 503}
    (user,) = sql("SELECT otp_attempts, otp_secret, verified_at FROM whatsapp_handler.users")
    assert user["verified_at"] is None
    assert user["otp_secret"] is None or user["otp_attempts"] <= 3
    assert "no longer valid" in bot.say(code)  # the limit was reached: even the right code fails
