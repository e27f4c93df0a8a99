"""After the commit the state is saved before the OTP SMS goes out (found by review).

The next message of the same number takes the row lock at our COMMIT and reads the state
at once; saved only after Twilio answered, it read the state before this message and the
two saves overwrote each other. The keys the save deletes for an erased person are the
keys erasure deletes elsewhere (RedisKeys.state_keys), so the webhook deletes them once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.conversation import Phase
from tests.webhook.conftest import PHONE, Bot


class SeesTheState:
    """The real Twilio client, noting the saved conversation phase at each send."""

    def __init__(self, real: Any, read_phase: Any) -> None:
        self._real = real
        self._read_phase = read_phase
        self.phases_at_send: list[str | None] = []

    def send(self, **message: Any) -> Any:
        self.phases_at_send.append(self._read_phase())
        return self._real.send(**message)


@pytest.fixture()
def watched(bot: Bot) -> SeesTheState:
    services = bot.webhook.module.deps().services
    key = services.store.key(PHONE)

    def read_phase() -> str | None:
        raw = bot.services.redis.get(key)
        return None if raw is None else str(json.loads(raw)["phase"])

    spy = SeesTheState(services.twilio(), read_phase)
    services._twilio = spy  # type: ignore[assignment]
    return spy


def test_the_state_is_saved_before_the_code_is_sent(bot: Bot, watched: SeesTheState) -> None:
    bot.say("hi")
    assert "sent a 6-digit code" in bot.say("YES")
    assert watched.phases_at_send == [Phase.AWAITING_CODE.value]
    assert bot.say("RESEND")
    assert watched.phases_at_send[-1] == Phase.AWAITING_CODE.value
    assert "verified" in bot.say(bot.code())


def test_a_failed_send_is_saved_again_and_said(bot: Bot, watched: SeesTheState) -> None:
    bot.say("hi")
    bot.services.twilio.fail_next(status=500)
    reply = bot.say("YES")
    assert len(watched.phases_at_send) == 1
    assert "couldn't send your code" in reply and "RESEND" in reply
    state = json.loads(bot.services.redis.get(bot.webhook.module.deps().services.store.key(PHONE)))
    assert state["phase"] == Phase.AWAITING_CODE.value  # RESEND works from here


def test_the_save_deletes_what_erasure_deletes(bot: Bot) -> None:
    services = bot.webhook.module.deps().services
    assert services.keys.state_keys(PHONE) == [
        services.store.key(PHONE),
        services.store.marker_key(PHONE),
    ]
    bot.register()
    bot.say("CLAIM")
    assert bot.services.redis.exists(*services.keys.state_keys(PHONE)) == 2
    assert "Reply YES to delete" in bot.say("DELETE MY DATA")
    assert "deleted" in bot.say("YES")
    assert bot.services.redis.exists(*services.keys.state_keys(PHONE)) == 0
