"""What erasure must not undo (issue 19 items 3 and 4), through the webhook.

- Rate-limit counters outlive an erasure: they hold a keyed hash of the number and a
  count, nothing more, and expire with their window. Deleting them let one number send
  `YES`, `RESEND` x4, `DELETE MY DATA`, `YES` in a loop for unlimited OTP SMS.
- Declining an erasure in the middle of a claim returns to the claim with its draft.
"""

from __future__ import annotations

from typing import Any

from shared import conversation
from tests.webhook.conftest import PHONE, Bot

OTP_PER_HOUR = 5  # RATE_LIMIT_OTP_PER_HOUR's default
INBOUND_PER_MINUTE = 20  # RATE_LIMIT_INBOUND_PER_MINUTE's default


def test_erasing_and_signing_up_again_sends_no_more_otp_sms_than_the_limit(bot: Bot) -> None:
    for _ in range(3):
        for text in ("hi", "YES", "RESEND", "RESEND", "RESEND", "RESEND", "DELETE MY DATA"):
            bot.say(text)
            bot.clock.advance(seconds=5)  # well inside the inbound limit
        assert "deleted" in bot.say("YES")
        bot.clock.advance(seconds=5)

    assert len(bot.services.twilio.sent_to(PHONE)) == OTP_PER_HOUR
    # Signing up again is still possible: the limit says so, and a new hour sends codes.
    bot.say("hi")
    assert "sent as many codes as we can" in bot.say("YES")
    bot.clock.advance(hours=1)
    assert "sent a 6-digit code" in bot.say("RESEND")
    assert len(bot.services.twilio.sent_to(PHONE)) == OTP_PER_HOUR + 1


def test_the_inbound_limit_still_applies_after_an_erasure(bot: Bot) -> None:
    bot.register()  # 3 messages
    bot.say("DELETE MY DATA")
    assert "deleted" in bot.say("YES")  # 5 messages this minute
    for _ in range(INBOUND_PER_MINUTE - 5):
        assert bot.say("hi") != conversation.RATE_LIMITED_REPLY

    assert bot.say("hi") == conversation.RATE_LIMITED_REPLY


def test_declining_an_erasure_mid_claim_keeps_the_claim(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    assert "What time" in bot.say("Leeds to York")
    assert "Reply YES to delete" in bot.say("DELETE MY DATA")

    declined = bot.say("NO")

    assert "haven't deleted anything" in declined and "What time" in declined
    assert "08:02" in bot.say("08:02")
    bot.say("SKIP")
    assert "matched" in bot.say("YES")
    (journey,) = [row for row in outbox() if row["event_type"] == "journey.submitted"]
    assert (journey["payload"]["origin"], journey["payload"]["destination"]) == ("Leeds", "York")
    assert journey["payload"]["journey_date"] == "2026-11-23"
