"""Conversation state in Redis: one JSON value per phone number, with a TTL (RFC 1.1).

The key names a keyed hash of the number (shared/redis_keys.py), and the value holds a
dialogue position, never anything the database does not also know how to rebuild.
"""

from __future__ import annotations

import redis

from shared.conversation import ConversationState, state_from_json, state_to_json
from shared.redis_keys import RedisKeys


class ConversationStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_seconds = ttl_seconds

    def load(self, phone_number: str) -> ConversationState | None:
        """None when there is none, it expired, or it cannot be read (start afresh)."""
        raw = self._client.get(self._keys.conversation(phone_number))
        if raw is None:
            return None
        return state_from_json(str(raw))

    def save(
        self, phone_number: str, state: ConversationState, on: redis.client.Pipeline | None = None
    ) -> None:
        """Every save restarts the TTL: 24 h of silence ends a conversation. On ``on``, a
        pipeline the caller executes, when given."""
        target = self._client if on is None else on
        target.set(
            self._keys.conversation(phone_number), state_to_json(state), ex=self._ttl_seconds
        )

    def delete(self, phone_number: str, on: redis.client.Pipeline | None = None) -> None:
        target = self._client if on is None else on
        target.delete(self._keys.conversation(phone_number))
