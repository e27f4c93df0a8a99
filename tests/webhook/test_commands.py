"""Commands in every state, tickets, blocked users, erasure and rate limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhook.conftest import PHONE, START, Bot

PHOTO = ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg")
PDF = ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", "application/pdf")
VOICE = ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME3", "audio/ogg")


def conversation_key(bot: Bot, phone: str = PHONE) -> str:
    return str(bot.webhook.module.deps().services.keys.conversation(phone))


def preferences(sql: Any) -> list[dict[str, Any]]:
    return sql("SELECT notification_enabled FROM whatsapp_handler.user_preferences")


@pytest.mark.parametrize("command", ["HELP", "menu", " Help "])
@pytest.mark.parametrize("where", ["new", "awaiting_code", "verified", "in_claim"])
def test_help_and_menu_work_everywhere_and_keep_the_place(
    bot: Bot, command: str, where: str
) -> None:
    if where == "new":
        bot.say("hi")
    elif where == "awaiting_code":
        bot.say("hi")
        bot.say("YES")
    else:
        bot.register()
    if where == "in_claim":
        bot.say("CLAIM")
        bot.say("yesterday")

    reply = bot.say(command)

    assert reply
    expected_next = {
        "new": "YES",
        "awaiting_code": "6-digit code",
        "verified": "CLAIM",
        "in_claim": "Which stations",
    }[where]
    assert expected_next in reply
    if where == "in_claim":  # nothing lost: the claim carries on
        assert "What time" in bot.say("Leeds to York")


def test_stop_and_start_switch_notifications(bot: Bot, sql: Any) -> None:
    bot.register()
    assert "off" in bot.say("STOP") and preferences(sql) == [{"notification_enabled": False}]
    assert "on" in bot.say("start") and preferences(sql) == [{"notification_enabled": True}]


def test_stop_from_an_unknown_number_changes_nothing(bot: Bot, sql: Any) -> None:
    bot.say("hi")
    assert "only message registered users" in bot.say("STOP")
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]


def test_delete_my_data_needs_a_yes(bot: Bot, sql: Any, outbox: Any) -> None:
    bot.register()
    assert "Reply YES to delete" in bot.say("DELETE MY DATA")
    assert "haven't deleted anything" in bot.say("no thanks")
    assert sql("SELECT anonymized_at FROM whatsapp_handler.users")[0]["anonymized_at"] is None

    bot.say("delete my data")
    reply = bot.say("YES")

    assert "deleted" in reply
    (user,) = sql("SELECT * FROM whatsapp_handler.users")
    assert user["phone_number"].startswith("ANON-") and user["anonymized_at"] == bot.clock.now
    assert user["block_reason"] == "GDPR_ERASURE_REQUEST"
    assert preferences(sql) == []
    assert outbox()[-1]["event_type"] == "user.gdpr.erased"
    services = bot.webhook.module.deps().services
    tag, prefix = services.keys.phone_tag(PHONE), services.settings.redis_key_prefix
    # This run's keys only: other runs on the same Redis use the same test number.
    # Only the rate-limit counters are left; they expire with their window (D70).
    left = [str(key) for key in bot.services.redis.scan_iter(match=f"{prefix}*{tag}*")]
    assert left and all(":rl:" in key for key in left)
    # The number is free again: the next message is a first contact.
    assert "reply YES" in bot.say("hello again")


def test_delete_my_data_from_an_unknown_number(bot: Bot) -> None:
    bot.say("hi")
    assert "don't hold any personal data" in bot.say("DELETE MY DATA")


def test_a_blocked_user_gets_a_short_reply_and_nothing_else(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.register()
    sql(
        "UPDATE whatsapp_handler.users SET blocked_at = :t, block_reason = 'abuse'",
        t=START,
    )
    before = outbox()
    bot.clock.advance(hours=1)

    for text in ("CLAIM", "STOP", "DELETE MY DATA", "hello"):
        assert "can't use RailRepay" in bot.say(text)
    assert "can't use RailRepay" in bot.say("", media=(PHOTO,))

    assert outbox() == before
    (user,) = sql("SELECT last_active_at, anonymized_at FROM whatsapp_handler.users")
    assert user == {"last_active_at": START, "anonymized_at": None}
    assert preferences(sql) == [{"notification_enabled": True}]
    assert bot.services.redis.exists(conversation_key(bot)) == 0


def test_a_ticket_photo_publishes_ticket_uploaded(bot: Bot, outbox: Any) -> None:
    bot.register()
    sid = bot.next_sid()

    reply = bot.say("", sid=sid, media=(PHOTO, PDF))

    assert "got your ticket" in reply and "CLAIM" in reply
    ticket = outbox()[-1]
    assert ticket["event_type"] == "ticket.uploaded" and ticket["aggregate_type"] == "ticket"
    assert ticket["correlation_id"] == sid
    assert ticket["payload"]["message_sid"] == sid
    assert ticket["payload"]["media"] == [
        {"url": PHOTO[0], "content_type": "image/jpeg"},
        {"url": PDF[0], "content_type": "application/pdf"},
    ]
    assert "journey_id" not in ticket["payload"]
    assert str(ticket["aggregate_id"]) == ticket["payload"]["ticket_id"]


def test_only_images_and_pdfs_are_tickets(bot: Bot, outbox: Any) -> None:
    bot.register()
    before = len(outbox())
    assert "only take photos or PDFs" in bot.say("", media=(VOICE,))
    assert len(outbox()) == before

    reply = bot.say("", media=(VOICE, PHOTO))
    assert "1 file skipped" in reply
    assert outbox()[-1]["payload"]["media"] == [{"url": PHOTO[0], "content_type": "image/jpeg"}]


def test_tickets_wait_for_verification(bot: Bot, outbox: Any) -> None:
    bot.say("hi")
    bot.say("YES")
    assert "send it again once you're verified" in bot.say("", media=(PHOTO,))
    assert [row["event_type"] for row in outbox()] == ["user.registered", "conversation.started"]


def test_free_text_says_what_can_be_done(bot: Bot) -> None:
    bot.register()
    reply = bot.say("my train was late!!")
    assert "CLAIM" in reply and "STATUS" in reply and "photo" in reply


def test_inbound_messages_are_limited_per_number_and_minute(bot: Bot, sql: Any) -> None:
    bot.register()  # 3 messages in this minute
    for _ in range(17):
        bot.say("hello")
    bot.clock.advance(seconds=30)

    limited = bot.send("hello")

    assert limited.status_code == 200
    assert "faster than we can answer" in limited.get_data(as_text=True)
    assert sql("SELECT last_active_at FROM whatsapp_handler.users") == [{"last_active_at": START}]
    assert "limits" not in bot.say("hello", phone="+447700900124")  # others are not limited
    bot.clock.advance(seconds=30)  # the next minute
    assert "CLAIM" in bot.say("hello")


def test_the_global_otp_ceiling_holds_across_numbers(
    bot: Bot, webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_OTP_GLOBAL_PER_HOUR", "2")
    webhook.module.deps.cache_clear()
    try:
        webhook.module.deps().services.clock = bot.clock
        for number in ("+447700900201", "+447700900202"):
            bot.say("hi", phone=number)
            assert "sent a 6-digit code" in bot.say("YES", phone=number)
        bot.say("hi", phone="+447700900203")
        assert "as many codes as we can" in bot.say("YES", phone="+447700900203")
        assert len(bot.services.twilio.messages) == 2
    finally:
        monkeypatch.undo()
        webhook.module.deps.cache_clear()


def test_a_language_keyword_saves_the_preference_the_notifier_reads(bot: Bot, sql: Any) -> None:
    # Issue 20: the notifier picks its template by user_preferences.language
    # (tests/notifier/test_notify.py), so the conversation's choice must land there.
    bot.register()
    assert "Welsh" in bot.say("CYMRAEG")
    assert sql("SELECT language FROM whatsapp_handler.user_preferences") == [{"language": "cy-GB"}]
    assert "English" in bot.say("ENGLISH")
    assert sql("SELECT language FROM whatsapp_handler.user_preferences") == [{"language": "en-GB"}]


def test_status_while_notifications_are_off_says_so(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("STOP")
    reply = bot.say("STATUS")
    assert "notifications are off" in reply and "START" in reply
    assert not [row for row in outbox() if row["event_type"] == "claim.status_requested"]
    bot.say("START")
    assert "We've asked for the latest" in bot.say("STATUS")


def test_photos_sent_before_claim_all_reach_the_claim(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("", media=(PHOTO,))
    assert "2 ticket files" in bot.say("", media=(PDF,))
    bot.say("CLAIM")
    bot.say("yesterday")
    bot.say("Leeds to York")
    assert "2 files attached" in bot.say("8am")
    bot.say("YES")
    (journey,) = [row for row in outbox() if row["event_type"] == "journey.submitted"]
    assert [item["url"] for item in journey["payload"]["ticket_media"]] == [PHOTO[0], PDF[0]]
