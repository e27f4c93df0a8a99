"""Conversation state in Redis: one JSON value per phone number, with a TTL (RFC 1.1).

The key names a keyed hash of the number (shared/redis_keys.py), and the value holds a
dialogue position, never anything the database does not also know how to rebuild. Each
value records when it was saved (the time of the message that saved it), so a state read
early, with the message's claim, can be checked against the user row for freshness.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import redis

from shared.conversation import ConversationState, state_to_json, stored_state_from_json
from shared.redis_keys import RedisKeys


@dataclass(frozen=True)
class StoredConversation:
    state: ConversationState | None  # None: none, expired, or unreadable (start afresh)
    saved_at: datetime | None = None  # the saving message's time; None when unknown
    present: bool = False  # a value was there (readable or not)


ABSENT = StoredConversation(state=None)
UNREADABLE = StoredConversation(state=None, present=True)


def decode(raw: str | bytes | None) -> StoredConversation:
    if raw is None:
        return ABSENT
    text = raw.decode() if isinstance(raw, bytes) else raw
    state, saved_at = stored_state_from_json(text)
    return StoredConversation(state=state, saved_at=saved_at, present=True)


class ConversationStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self.ttl_seconds = ttl_seconds

    def key(self, phone_number: str) -> str:
        return self._keys.conversation(phone_number)

    def load(self, phone_number: str) -> StoredConversation:
        return decode(cast(str | None, self._client.get(self.key(phone_number))))

    def encode(self, state: ConversationState, *, saved_at: datetime) -> str:
        """The value to store at ``key()`` with a TTL of ``ttl_seconds`` (every save
        restarts it; the core drops an unfinished claim after conversation_idle_seconds of
        silence and says so, which needs the state to outlive it). The webhook saves it together
        with its MessageSid's "done" mark (shared/services/inbound.py)."""
        return state_to_json(state, saved_at)
