"""Twilio retries: one MessageSid, one effect, also when two deliveries race."""

from __future__ import annotations

import threading
from typing import Any

from tests.conftest import TEST_WEBHOOK_URL, sign
from tests.webhook.conftest import PHONE, Bot, twiml_messages


def test_a_repeated_message_sid_changes_nothing(bot: Bot, sql: Any, outbox: Any) -> None:
    bot.say("hi")
    form = bot.form("YES")

    first, second = bot.post(form), bot.post(form)

    assert "sent a 6-digit code" in twiml_messages(first)[0]
    assert twiml_messages(second) == []
    assert len(bot.services.twilio.sent_to(PHONE)) == 1
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 1}]
    assert len(outbox()) == 2


def test_concurrent_deliveries_of_one_message_make_one_effect(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.say("hi")
    form = bot.form("YES")
    barrier = threading.Barrier(8)
    responses: list[Any] = []

    def deliver() -> None:
        client = bot.webhook.app.test_client()
        barrier.wait()
        responses.append(
            client.post(
                "/",
                data=form,
                content_type="application/x-www-form-urlencoded",
                headers={"X-Twilio-Signature": sign(TEST_WEBHOOK_URL, form)},
            )
        )

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    replies = [twiml_messages(response) for response in responses]
    assert sorted(len(reply) for reply in replies) == [0] * 7 + [1]
    assert len(bot.services.twilio.sent_to(PHONE)) == 1
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 1}]
    assert [row["event_type"] for row in outbox()] == ["user.registered", "conversation.started"]


def test_a_delivery_that_failed_before_commit_is_served_on_retry(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    bot.say("hi")
    key = bot.webhook.module.deps().services.keys.conversation(PHONE)
    bot.services.redis.delete(key)
    bot.services.redis.rpush(key, "not a conversation")  # reading it fails: WRONGTYPE
    form = bot.form("YES")

    failed = bot.post(form)

    assert failed.status_code == 503
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]
    assert bot.services.twilio.messages == []

    bot.services.redis.delete(key)
    retried = bot.post(form)  # Twilio's retry, same MessageSid

    reply = twiml_messages(retried)[0]  # served afresh: a first YES signs up at once
    assert "terms" in reply and "sent a 6-digit code" in reply
    assert len(bot.services.twilio.sent_to(PHONE)) == 1
