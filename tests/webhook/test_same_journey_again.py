"""Issue 20, section 4: the same journey sent twice within the claim window is warned about,
also after the 24-hour conversation state is gone (the record is in PostgreSQL, D125)."""

from __future__ import annotations

from typing import Any

from tests.webhook.conftest import Bot

WARNING = "already sent a claim for this journey"


def send_journey(bot: Bot) -> str:
    """Leeds to York, 23/11/2026 at 08:02, no ticket: the reply to YES at the summary."""
    assert "Which day" in bot.say("CLAIM")
    assert "Which stations" in bot.say("23/11/2026")
    assert "What time" in bot.say("Leeds to York")
    assert "ticket" in bot.say("08:02")
    assert "Monday 23 November 2026" in bot.say("SKIP")
    return bot.say("YES")


def journey_rows(sql: Any) -> list[dict[str, Any]]:
    return sql("SELECT user_id, fingerprint, submitted_at FROM whatsapp_handler.submitted_journeys")


def submitted_count(outbox: Any) -> int:
    return sum(1 for row in outbox() if row["event_type"] == "journey.submitted")


def test_a_journey_sent_days_ago_is_warned_about_in_a_new_conversation(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.register()
    assert "matched" in send_journey(bot)
    ((row),) = journey_rows(sql)
    (user,) = sql("SELECT id FROM whatsapp_handler.users")
    assert row["user_id"] == user["id"] and row["submitted_at"] == bot.clock.now
    assert "leeds" not in row["fingerprint"].casefold()  # a digest, not the journey

    bot.clock.advance(days=3)  # the conversation state (24 h) is long gone
    warned = send_journey(bot)

    assert WARNING in warned and submitted_count(outbox) == 1
    assert "matched" in bot.say("YES")  # sent again once the passenger says so
    assert submitted_count(outbox) == 2
    ((again),) = journey_rows(sql)
    assert again["submitted_at"] == bot.clock.now  # one row, at its latest time


def test_the_same_journey_after_the_claim_window_goes_without_a_warning(
    bot: Bot, outbox: Any
) -> None:
    bot.register()
    assert "matched" in send_journey(bot)
    bot.clock.advance(days=29)
    # 23/11/2026 is now outside the window itself: the date is refused, not warned about.
    bot.say("CLAIM")
    refused = bot.say("23/11/2026")
    assert WARNING not in refused and "28 days" in refused
    assert submitted_count(outbox) == 1


def test_erasure_deletes_the_journey_record(bot: Bot, sql: Any) -> None:
    bot.register()
    send_journey(bot)
    assert len(journey_rows(sql)) == 1

    assert "Reply YES to delete" in bot.say("DELETE MY DATA")
    assert "deleted" in bot.say("YES")

    assert journey_rows(sql) == []
