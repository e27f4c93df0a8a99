"""A MessageSid reservation frees itself within a minute; the "done" mark lasts the
de-duplication TTL (issue 19's durable record makes the long Redis hold unnecessary).

A reservation whose holder died, or whose release was lost with Redis, used to keep the
MessageSid "pending" for MESSAGE_DEDUPE_TTL_SECONDS (a day): every retry of that message
got empty TwiML, Twilio stopped retrying, and the message was never handled."""

from __future__ import annotations

from shared.adapters.message_ledger import RESERVATION_TTL_SECONDS
from tests.terraform import hcl
from tests.webhook.conftest import PHONE, Bot


def test_the_reservation_outlives_the_webhooks_timeout_twice() -> None:
    webhook = hcl.load().locals["public_functions"]["webhook"]
    assert RESERVATION_TTL_SECONDS >= 2 * int(webhook["timeout_seconds"])
    assert RESERVATION_TTL_SECONDS <= 300


def test_a_pending_reservation_expires_in_a_minute_and_a_handled_one_lasts_a_day(
    bot: Bot,
) -> None:
    services = bot.webhook.module.deps().services
    keys, redis = services.keys, bot.services.redis
    store = services.store
    pending_sid, handled_sid = bot.next_sid(), bot.next_sid()
    counter_key, counter_ttl = services.limiter.inbound_counter(PHONE, bot.clock.now)
    conversation_keys = (store.key(PHONE), store.marker_key(PHONE))

    held = services.ledger.reserve(pending_sid, counter_key, counter_ttl, conversation_keys)

    assert held is not None  # as if this instance died now, before commit or release
    assert 0 < redis.ttl(keys.message_sid(pending_sid)) <= RESERVATION_TTL_SECONDS

    assert bot.say("hi", sid=handled_sid)  # a message handled end to end
    assert redis.get(keys.message_sid(handled_sid)) in (b"done", "done")
    ttl = redis.ttl(keys.message_sid(handled_sid))
    assert RESERVATION_TTL_SECONDS < ttl <= services.settings.message_dedupe_ttl_seconds
