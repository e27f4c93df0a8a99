"""The conversation state read with the MessageSid claim, and when it is read again.

The claim script hands over the state in the same round trip; after the user row is
locked, the shell reads it again only when it cannot prove the claimed copy is the latest
(shared/services/inbound.py, ``reserved_state_is_latest``). Redis MONITOR shows which GETs
the webhook sends itself (not from inside the claim script)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import redis

from shared.adapters.conversation_store import ABSENT, StoredConversation
from shared.conversation import ConversationState, Phase
from shared.services.inbound import reserved_state_is_latest
from tests.webhook.conftest import PHONE, Bot

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = 24 * 3600
STATE = ConversationState(phase=Phase.MENU, conversation_id=uuid4())


def user_row(last_active_at: datetime | None, blocked: bool = False) -> dict[str, Any]:
    return {"last_active_at": last_active_at, "blocked_at": NOW if blocked else None}


@pytest.mark.parametrize(
    ("claimed", "row", "latest"),
    [
        # no user: nothing serialises the number's messages, an absent state is as good
        (ABSENT, None, True),
        (StoredConversation(STATE, NOW, present=True), None, False),
        # a registered user: the stamp must be the row's last message time
        (StoredConversation(STATE, NOW, present=True), user_row(NOW), True),
        (StoredConversation(STATE, NOW, present=True), user_row(NOW + timedelta(seconds=1)), False),
        (StoredConversation(STATE, None, present=True), user_row(NOW), False),  # no stamp
        (StoredConversation(None, None, present=True), user_row(NOW), False),  # unreadable
        # no state: the latest only when any state the last message saved has expired
        (ABSENT, user_row(NOW - timedelta(days=2)), True),
        (ABSENT, user_row(NOW - timedelta(hours=1)), False),
        (ABSENT, user_row(NOW - timedelta(seconds=DAY)), False),  # inside the margin
        (ABSENT, user_row(None), False),
        # a blocked user's row is not touched: never trusted
        (StoredConversation(STATE, NOW, present=True), user_row(NOW, blocked=True), False),
        (ABSENT, user_row(NOW - timedelta(days=2), blocked=True), False),
    ],
)
def test_when_the_claimed_state_is_the_latest(
    claimed: StoredConversation, row: dict[str, Any] | None, latest: bool
) -> None:
    assert reserved_state_is_latest(claimed, row, NOW, DAY) is latest


class Monitor:
    """The GETs of one key that clients send (script-internal calls excluded)."""

    def __init__(self, client: redis.Redis, key: str, prefix: str) -> None:
        self._client = client
        self._key = key
        self._prefix = prefix  # this test run's keys: other clients' commands are not ours
        self._marker = f"monitor-done-{id(self)}"
        self.direct_gets = 0
        self.direct_commands: list[str] = []  # every command's name, outside scripts
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self._client.echo(self._marker)
        self._thread.join(10)
        assert not self._thread.is_alive(), "monitor never saw its end marker"

    def _run(self) -> None:
        with self._client.monitor() as monitor:
            self._ready.set()
            for info in monitor.listen():
                command = str(info["command"])
                if self._marker in command:
                    return
                if info.get("client_type") == "lua":
                    continue
                if self._prefix in command:
                    self.direct_commands.append(command.split()[0].upper())
                if command.split()[:2] == ["GET", self._key]:
                    self.direct_gets += 1


@pytest.fixture()
def monitor(bot: Bot) -> Callable[[], Monitor]:
    key = bot.webhook.module.deps().services.keys.conversation(PHONE)
    client = redis.Redis.from_url(bot.services.redis_url, decode_responses=True)
    return lambda: Monitor(client, key, bot.services.redis_prefix)


def test_a_registered_users_message_reads_the_state_once(
    bot: Bot, monitor: Callable[[], Monitor]
) -> None:
    bot.register()
    bot.clock.advance(minutes=1)

    with monitor() as seen:
        reply = bot.say("help")

    assert "CLAIM" in reply.upper()
    assert seen.direct_gets == 0  # the claim script's copy was the latest


def test_a_state_without_a_stamp_is_read_again_and_the_conversation_goes_on(
    bot: Bot, monitor: Callable[[], Monitor]
) -> None:
    bot.register()
    key = bot.webhook.module.deps().services.keys.conversation(PHONE)
    stored = json.loads(bot.services.redis.get(key))
    del stored["saved_at"]  # as a release before the stamp saved it
    bot.services.redis.set(key, json.dumps(stored))
    bot.clock.advance(minutes=1)

    with monitor() as seen:
        reply = bot.say("CLAIM")

    assert seen.direct_gets == 1
    assert "which day did you travel" in reply.lower()  # the claim began from the menu
    assert json.loads(bot.services.redis.get(key))["phase"] == Phase.CLAIM_DATE.value


def test_a_state_older_than_the_users_last_message_is_read_again(
    bot: Bot, sql: Any, monitor: Callable[[], Monitor]
) -> None:
    bot.register()
    # Another message's commit moved last_active_at on; its state is not saved yet.
    sql(
        "UPDATE whatsapp_handler.users SET last_active_at = last_active_at + interval '1 s'",
    )
    bot.clock.advance(minutes=1)

    with monitor() as seen:
        bot.say("help")

    assert seen.direct_gets == 1


@pytest.mark.parametrize(
    ("claim_open", "text", "said"),
    [
        (False, "help", "CLAIM"),  # a returning user: the menu
        (True, "hello", "DROPPED"),  # an unfinished claim's state expired: said so (D106)
    ],
)
def test_a_returning_user_without_state_costs_two_redis_round_trips(
    bot: Bot, monitor: Callable[[], Monitor], claim_open: bool, text: str, said: str
) -> None:
    """The claim marker (D106) is read by the reservation script with the state, not by a
    command of its own: a verified user whose state expired sends the reservation script
    and, after the commit, the save; nothing else."""
    bot.register()
    if claim_open:
        bot.say("CLAIM")
    bot.services.redis.delete(bot.webhook.module.deps().services.keys.conversation(PHONE))
    bot.clock.advance(days=2)

    with monitor() as seen:
        reply = bot.say(text)

    assert said in reply.upper()
    assert seen.direct_commands == ["EVALSHA", "EVALSHA"]
