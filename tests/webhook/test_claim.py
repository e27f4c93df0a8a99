"""The claim conversation end to end (issue 7): CLAIM to journey.submitted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.webhook.conftest import PHONE, Bot

PHOTO = ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM9/Media/ME9", "image/png")


def user_id(sql: Any) -> str:
    return str(sql("SELECT id FROM whatsapp_handler.users")[0]["id"])


def submitted(outbox: Any) -> list[dict[str, Any]]:
    return [row for row in outbox() if row["event_type"] == "journey.submitted"]


def test_a_whole_claim_publishes_journey_submitted(bot: Bot, sql: Any, outbox: Any) -> None:
    bot.register()

    assert "Which day" in bot.say("CLAIM")
    assert "Which stations" in bot.say("yesterday")
    assert "What time" in bot.say("  Leeds   to York ")
    assert "photo or PDF of your ticket" in bot.say("08:02")
    summary = bot.say("SKIP")
    assert "Monday 23 November 2026" in summary and "Leeds" in summary and "08:02" in summary
    bot.clock.advance(minutes=3)
    sid = bot.next_sid()
    done = bot.say("YES", sid=sid)

    assert "We'll message you here when we've matched your journey" in done
    (row,) = submitted(outbox)
    payload = row["payload"]
    assert row["aggregate_type"] == "journey" and str(row["aggregate_id"]) == payload["journey_id"]
    assert row["correlation_id"] == sid
    assert payload == {
        "journey_id": payload["journey_id"],
        "user_id": user_id(sql),
        "journey_date": "2026-11-23",
        "origin": "Leeds",
        "destination": "York",
        "departure": "2026-11-23T08:02:00+00:00",
        "ticket_media": [],
        "submitted_at": bot.clock.now.isoformat(),
        "origin_crs": "LDS",
        "destination_crs": "YRK",
        "origin_name": "Leeds",
        "destination_name": "York",
    }
    assert sql("SELECT last_active_at FROM whatsapp_handler.users") == [
        {"last_active_at": bot.clock.now}
    ]
    assert "CLAIM" in bot.say("what now")  # back at the menu


def test_stations_are_resolved_and_sent_as_journey_submitted_1_1(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    """Issue 20: "Kings X to Edinbrugh" is read back with the list's names, the time in
    the same answer is not asked again, and the event carries the CRS codes (1.1)."""
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    read_back = bot.say("I went from Kings X to Edinbrugh at 08:00")
    assert "Got it: London Kings Cross to Edinburgh Waverley." in read_back
    assert "What time" not in read_back and "photo or PDF of your ticket" in read_back
    bot.say("SKIP")
    bot.say("yes")
    (row,) = submitted(outbox)  # validated against journey.submitted's schema
    assert sql(
        "SELECT event_version FROM whatsapp_handler.outbox_events"
        " WHERE event_type = 'journey.submitted'"
    ) == [{"event_version": "1.1"}]
    payload = row["payload"]
    assert (payload["origin"], payload["destination"]) == ("Kings X", "Edinbrugh")
    assert (payload["origin_crs"], payload["destination_crs"]) == ("KGX", "EDB")
    assert payload["origin_name"] == "London Kings Cross"
    assert payload["destination_name"] == "Edinburgh Waverley"
    assert payload["departure"] == "2026-11-23T08:00:00+00:00"


def test_a_name_with_several_stations_is_a_numbered_choice(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    offered = bot.say("Newport to Cardiff Central")
    assert 'Which "Newport" did you mean?' in offered and "\n1 " in offered
    picked = bot.say("1")
    assert "Got it: Newport" in picked and "to Cardiff Central" in picked
    assert "What time" in picked


def test_a_ticket_photo_inside_a_claim_belongs_to_the_journey(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("DELAY")
    bot.say("15 Nov")
    bot.say("from Bristol Temple Meads to London Paddington")
    bot.say("7:45am")

    confirm = bot.say("", media=(PHOTO,))

    assert "Got your ticket" in confirm and "1 file attached" in confirm
    bot.say("yes")
    ticket = next(row for row in outbox() if row["event_type"] == "ticket.uploaded")
    (journey,) = submitted(outbox)
    assert ticket["payload"]["journey_id"] == journey["payload"]["journey_id"]
    assert journey["payload"]["ticket_media"] == [{"url": PHOTO[0], "content_type": "image/png"}]
    assert journey["payload"]["origin"] == "Bristol Temple Meads"
    assert journey["payload"]["destination"] == "London Paddington"
    assert journey["payload"]["departure"] == "2026-11-15T07:45:00+00:00"


def test_a_ticket_sent_first_is_offered_to_the_next_claim(bot: Bot, outbox: Any) -> None:
    bot.register()
    assert "Reply CLAIM" in bot.say("", media=(PHOTO,))
    assert "I've added the ticket you sent" in bot.say("CLAIM")
    bot.say("today")
    bot.say("Leeds - York")
    summary = bot.say("0802")  # the ticket is there: straight to the summary
    assert "Please check your claim" in summary and "1 file attached" in summary
    bot.say("YES")
    (journey,) = submitted(outbox)
    assert journey["payload"]["ticket_media"] == [{"url": PHOTO[0], "content_type": "image/png"}]


def test_cancel_midway_sends_nothing(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    assert "claim cancelled" in bot.say("cancel")
    assert submitted(outbox) == []
    fresh = bot.say("Leeds to York")  # one message names a journey: a new claim (issue 20)
    assert "Got it: Leeds to York." in fresh and "Which day" in fresh


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("1 Oct", "within 28 days"),
        ("25 Nov 2026", "in the future"),
        ("the day before my birthday", "couldn't read that date"),
    ],
)
def test_dates_outside_the_window_are_asked_again(bot: Bot, answer: str, reason: str) -> None:
    bot.register()
    bot.say("CLAIM")

    again = bot.say(answer)

    assert reason in again and "Which day did you travel?" in again
    assert "Which stations" in bot.say("27 October")  # exactly 28 days back is fine


def test_a_bad_answer_loses_nothing_already_given(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("Monday")
    bot.say("Leeds to York")

    assert "couldn't read that time" in bot.say("banana")
    assert "What time" in bot.say("HELP")
    assert "Is that 8am or 8pm?" in bot.say("8")
    bot.say("8pm")
    summary = bot.say("SKIP")

    assert "Monday 23 November 2026" in summary and "York" in summary and "20:00" in summary


def test_a_train_that_has_not_left_yet_is_refused(bot: Bot) -> None:
    bot.register()  # at 12:00 UK time
    bot.say("CLAIM")
    bot.say("today")
    bot.say("Leeds to York")
    assert "hasn't come yet" in bot.say("23:59")
    assert "photo or PDF" in bot.say("11:59")


def test_no_at_the_summary_offers_what_to_change_and_keeps_the_rest(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    bot.say("Leeds to York")
    bot.say("8am")
    bot.say("SKIP")

    assert "What would you like to change?" in bot.say("NO")
    assert "Which stations" in bot.say("2")
    assert "Please check your claim" in bot.say("York to Leeds")
    assert "Change the time to 10:15?" in bot.say("the time is wrong, it was 10:15")
    assert "Changed." in bot.say("yes please")
    bot.say("YES")

    (journey,) = submitted(outbox)
    assert journey["payload"]["origin"] == "York"
    assert journey["payload"]["journey_date"] == "2026-11-23"
    assert journey["payload"]["departure"] == "2026-11-23T10:15:00+00:00"


@pytest.mark.parametrize(
    ("now", "day", "expected"),
    [
        # Last Sunday of October 2026: clocks go back at 02:00 BST.
        (datetime(2026, 10, 26, 9, tzinfo=UTC), "25/10/2026", "2026-10-25T08:02:00+00:00"),
        (datetime(2026, 10, 26, 9, tzinfo=UTC), "24/10/2026", "2026-10-24T08:02:00+01:00"),
        # Last Sunday of March 2026: clocks go forward at 01:00 GMT.
        (datetime(2026, 3, 30, 9, tzinfo=UTC), "29/03/2026", "2026-03-29T08:02:00+01:00"),
        (datetime(2026, 3, 30, 9, tzinfo=UTC), "28/03/2026", "2026-03-28T08:02:00+00:00"),
        (datetime(2026, 3, 30, 9, tzinfo=UTC), "Sunday", "2026-03-29T08:02:00+01:00"),
    ],
)
def test_departures_carry_the_uk_offset_of_their_day(
    bot: Bot, outbox: Any, now: datetime, day: str, expected: str
) -> None:
    bot.clock.now = now
    bot.register()
    bot.say("CLAIM")
    bot.say(day)
    bot.say("Leeds to York")
    bot.say("08:02")
    bot.say("SKIP")
    bot.say("YES")

    (journey,) = submitted(outbox)
    assert journey["payload"]["departure"] == expected
    assert journey["payload"]["journey_date"] == expected[:10]


def test_the_hour_that_never_was_is_refused(bot: Bot) -> None:
    bot.clock.now = datetime(2026, 3, 30, 9, tzinfo=UTC)
    bot.register()
    bot.say("CLAIM")
    bot.say("29/3")
    bot.say("Leeds to York")
    assert "clocks went forward" in bot.say("01:30")
    assert "photo or PDF" in bot.say("02:30")


def test_a_repeated_final_yes_submits_once(bot: Bot, outbox: Any) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    bot.say("Leeds to York")
    bot.say("8am")
    bot.say("SKIP")
    final = bot.form("YES")

    assert bot.post(final).status_code == 200
    assert bot.post(final).status_code == 200

    assert len(submitted(outbox)) == 1


def test_status_asks_claim_dispatcher(bot: Bot, sql: Any, outbox: Any) -> None:
    bot.register()
    reply = bot.say("STATUS")
    assert "will message you" in reply
    row = outbox()[-1]
    assert row["event_type"] == "claim.status_requested" and row["aggregate_type"] == "user"
    assert row["payload"]["user_id"] == user_id(sql)


def test_claims_need_a_verified_number(bot: Bot, outbox: Any) -> None:
    bot.say("hi")
    bot.say("YES")
    assert "once your number is verified" in bot.say("CLAIM")
    assert "once your number is verified" in bot.say("STATUS")
    assert {row["event_type"] for row in outbox()} == {"user.registered", "conversation.started"}


def test_a_claim_left_24_hours_is_dropped_and_said_to_be(bot: Bot, outbox: Any) -> None:
    # Issue 20: the next message said "Welcome back" and threw the answer away.
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")
    keys = bot.webhook.module.deps().services.keys
    redis = bot.services.redis
    assert 24 * 3600 - 60 < redis.ttl(keys.conversation(PHONE)) <= 24 * 3600  # the design's
    assert 72 * 3600 - 60 < redis.ttl(keys.claim_marker(PHONE)) <= 72 * 3600
    assert redis.get(keys.claim_marker(PHONE)) in ("1", b"1")  # no personal data
    bot.clock.advance(hours=25)
    redis.delete(keys.conversation(PHONE))  # what the 24 h TTL does
    reply = bot.say("Leeds to York")
    assert "unfinished claim was dropped" in reply and "nothing was sent" in reply
    assert "Reply CLAIM to start again" in reply
    assert "Which day" in bot.say("CLAIM")  # a fresh claim: the old date is gone
    assert submitted(outbox) == []
    started = [row for row in outbox() if row["event_type"] == "conversation.started"]
    assert len(started) == 2  # the silence ended the first conversation


def test_a_conversation_state_gone_from_redis_starts_afresh(bot: Bot) -> None:
    bot.register()
    bot.say("CLAIM")
    keys = bot.webhook.module.deps().services.keys
    bot.services.redis.delete(keys.conversation(PHONE), keys.claim_marker(PHONE))
    assert "Welcome back" in bot.say("hello")  # the marker's TTL (3 days) has passed too


def test_the_claim_marker_goes_when_the_claim_ends_or_the_user_is_erased(bot: Bot) -> None:
    bot.register()
    keys = bot.webhook.module.deps().services.keys
    redis = bot.services.redis
    assert not redis.exists(keys.claim_marker(PHONE))  # no claim: no marker
    bot.say("CLAIM")
    assert redis.exists(keys.claim_marker(PHONE))
    bot.say("CANCEL")
    assert not redis.exists(keys.claim_marker(PHONE))
    bot.say("CLAIM")
    bot.say("DELETE MY DATA")
    assert redis.exists(keys.claim_marker(PHONE))  # an erasure asked mid-claim keeps it
    assert "deleted" in bot.say("YES")
    assert not redis.exists(keys.claim_marker(PHONE))
    assert not redis.exists(keys.conversation(PHONE))


def test_one_message_starts_a_claim_and_only_what_is_missing_is_asked(
    bot: Bot, outbox: Any
) -> None:
    bot.register()
    first = bot.say("my train from kings cross to leeds yesterday was 40 mins late")
    assert "Got it: London Kings Cross to Leeds." in first and "What time" in first
    asked = bot.say("quarter past 8")
    assert "Is that 8:15am or 8:15pm?" in asked
    assert "photo or PDF of your ticket" in bot.say("pm")
    bot.say("SKIP")
    bot.say("yes")
    (row,) = submitted(outbox)
    assert row["payload"]["departure"] == "2026-11-23T20:15:00+00:00"
    assert row["payload"]["origin_crs"] == "KGX" and row["payload"]["destination_crs"] == "LDS"
