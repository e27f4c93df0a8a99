"""Registration and verification (RAILREPAY-001/002) as a WhatsApp user lives them."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest

from tests.conftest import TEST_OTP_PEPPER, TEST_SMS_FROM
from tests.webhook.conftest import PHONE, START, Bot


def user_row(sql: Any, phone: str = PHONE) -> dict[str, Any]:
    (row,) = sql("SELECT * FROM whatsapp_handler.users WHERE phone_number = :p", p=phone)
    return row


def test_a_new_number_becomes_a_verified_user(bot: Bot, sql: Any, outbox: Any) -> None:
    welcome = bot.say("Hi there")
    assert "terms" in welcome and "YES" in welcome
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]

    first_sid = bot.next_sid()
    accepted = bot.say("  yes  ", sid=first_sid)

    assert "sent a 6-digit code by SMS" in accepted
    (sms,) = bot.services.twilio.sent_to(PHONE)
    assert sms.from_ == TEST_SMS_FROM and not sms.to.startswith("whatsapp:")
    assert len(re.findall(r"\d{6}", sms.body or "")) == 1
    code = bot.code()
    user = user_row(sql)
    assert user["terms_version"] == "2025-11-30" and user["terms_accepted_at"] == START
    assert user["verified_at"] is None
    expected_hash = hmac.new(
        TEST_OTP_PEPPER.encode(), (PHONE + code).encode(), hashlib.sha256
    ).hexdigest()
    assert user["otp_secret"] == expected_hash  # a keyed hash, never the code
    assert user["otp_expires_at"] == START.replace(minute=5)

    bot.clock.advance(seconds=90)
    verify_sid = bot.next_sid()
    verified = bot.say(code, sid=verify_sid)

    assert "verified" in verified and "CLAIM" in verified
    user = user_row(sql)
    assert user["verified_at"] == user["otp_verified_at"] == bot.clock.now
    assert user["otp_secret"] is None and user["otp_attempts"] == 0
    assert user["last_active_at"] == bot.clock.now
    assert sql(
        "SELECT notification_enabled FROM whatsapp_handler.user_preferences WHERE user_id = :u",
        u=user["id"],
    ) == [{"notification_enabled": True}]
    rows = outbox()
    assert [(row["event_type"], row["correlation_id"]) for row in rows] == [
        ("user.registered", first_sid),
        ("conversation.started", first_sid),
        ("user.verified", verify_sid),
    ]
    assert all(row["payload"]["user_id"] == str(user["id"]) for row in rows)
    assert rows[0]["aggregate_type"] == "user" and rows[1]["aggregate_type"] == "conversation"
    assert PHONE not in str([row["payload"] for row in rows])


def test_three_wrong_codes_end_the_code(bot: Bot, sql: Any, outbox: Any) -> None:
    bot.say("hello")
    bot.say("YES")
    code = bot.code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    assert "2 tries left" in bot.say(wrong)
    assert "1 try left" in bot.say(wrong)
    assert "can't be used again" in bot.say(wrong)
    assert "no longer valid" in bot.say(code)  # even the right one, now

    assert user_row(sql)["verified_at"] is None
    assert user_row(sql)["otp_secret"] is None
    assert [row["event_type"] for row in outbox()] == ["user.registered", "conversation.started"]

    assert "sent a 6-digit code" in bot.say("RESEND")
    assert "verified" in bot.say(bot.code())


def test_codes_expire_after_five_minutes(bot: Bot, sql: Any) -> None:
    bot.say("hello")
    bot.say("YES")
    code = bot.code()
    bot.clock.advance(minutes=5)

    assert "expired" in bot.say(code)
    assert user_row(sql)["verified_at"] is None

    bot.say("RESEND")
    bot.clock.advance(minutes=4, seconds=59)
    assert "verified" in bot.say(bot.code())


def test_resend_replaces_the_old_code(bot: Bot, sql: Any) -> None:
    bot.say("hello")
    bot.say("YES")
    old = bot.code()
    bot.say("resend")
    new = bot.code()
    assert len(bot.services.twilio.sent_to(PHONE)) == 2
    if old != new:
        assert "newer one replaced it" in bot.say(old)  # and it does not verify
    assert "verified" in bot.say(new)


def test_otp_sms_are_limited_per_number_and_hour(bot: Bot) -> None:
    bot.say("hello")
    bot.say("YES")  # 1
    for _ in range(4):  # 2..5
        assert "sent a 6-digit code" in bot.say("RESEND")

    limited = bot.say("RESEND")

    assert "RESEND after 13:00 (UK time)" in limited and "support@" in limited
    assert len(bot.services.twilio.sent_to(PHONE)) == 5
    bot.clock.advance(hours=1)
    assert "sent a 6-digit code" in bot.say("RESEND")  # a new window
    assert len(bot.services.twilio.sent_to(PHONE)) == 6


def test_a_rate_limited_resend_keeps_the_current_code(bot: Bot) -> None:
    bot.say("hello")
    bot.say("YES")
    for _ in range(4):
        bot.say("RESEND")
    code = bot.code()
    assert "RESEND after 13:00" in bot.say("RESEND")
    assert "verified" in bot.say(code)


def test_an_sms_failure_is_told_and_resend_recovers(bot: Bot, sql: Any) -> None:
    bot.say("hello")
    bot.services.twilio.fail_next(1, status=500)

    reply = bot.say("YES")

    assert "couldn't send your code" in reply and "RESEND" in reply
    assert user_row(sql)["terms_accepted_at"] is not None  # the registration stands
    assert bot.services.twilio.sent_to(PHONE) == []
    bot.say("RESEND")
    assert "verified" in bot.say(bot.code())


def test_a_returning_verified_user_is_greeted_and_starts_a_conversation(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.register()
    bot.services.redis.delete(bot.webhook.module.deps().services.keys.conversation(PHONE))
    bot.clock.advance(days=2)
    sid = bot.next_sid()

    reply = bot.say("hi", sid=sid)

    assert reply.startswith("Welcome back") and "CLAIM" in reply
    started = [row for row in outbox() if row["event_type"] == "conversation.started"]
    assert len(started) == 2 and started[-1]["correlation_id"] == sid
    assert started[-1]["payload"]["started_at"] == bot.clock.now.isoformat()
    assert user_row(sql)["last_active_at"] == bot.clock.now


def test_a_returning_unverified_user_can_still_use_their_code(bot: Bot, outbox: Any) -> None:
    bot.say("hello")
    bot.say("YES")
    code = bot.code()
    bot.services.redis.delete(bot.webhook.module.deps().services.keys.conversation(PHONE))

    assert "Welcome back" in bot.say("hello?")
    assert "verified" in bot.say(code)
    assert [row["event_type"] for row in outbox()] == [
        "user.registered",
        "conversation.started",
        "conversation.started",
        "user.verified",
    ]


def test_losing_redis_state_loses_no_user(bot: Bot, sql: Any) -> None:
    bot.register()
    for key in bot.services.redis.scan_iter(match=f"{bot.services.redis_prefix}*"):
        bot.services.redis.delete(key)
    assert "Welcome back" in bot.say("hello")
    assert user_row(sql)["verified_at"] is not None


def test_every_message_touches_last_active(bot: Bot, sql: Any) -> None:
    bot.register()
    for _ in range(2):
        bot.clock.advance(hours=3)
        bot.say("what now?")
        assert user_row(sql)["last_active_at"] == bot.clock.now


def test_an_incoming_correlation_id_is_kept(bot: Bot, outbox: Any) -> None:
    bot.say("hello")
    bot.say("YES", headers={"X-Correlation-ID": "trace-4711"})
    assert {row["correlation_id"] for row in outbox()} == {"trace-4711"}


def test_a_first_yes_from_a_new_number_signs_up_at_once(bot: Bot, sql: Any) -> None:
    # Issue 20: "send YES again" was a dead end. The reply names the terms and the way out.
    reply = bot.say("YES")
    assert "https://" in reply and "DELETE MY DATA" in reply and "sent a 6-digit code" in reply
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 1}]
    assert len(bot.services.twilio.sent_to(PHONE)) == 1


def test_an_older_code_after_resend_says_it_was_replaced_and_costs_no_try(
    bot: Bot, sql: Any
) -> None:
    # Issue 20: the first code, typed after a RESEND, used a try and said "isn't right".
    bot.say("hi")
    bot.say("YES")
    first = bot.code()
    bot.say("RESEND")
    second = bot.code()
    if first == second:  # pragma: no cover - one chance in a million
        pytest.skip("the new code happens to equal the old")
    reply = bot.say(f"my code is {first}")
    assert "newer one replaced it" in reply and "no try used" in reply
    assert user_row(sql)["otp_attempts"] == 0
    assert "verified" in bot.say(second)
