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

from shared.conversation import (
    ConversationState,
    claim_open,
    state_to_json,
    stored_state_from_json,
)
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
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        ttl_seconds: int,
        marker_ttl_seconds: int = 72 * 3600,
    ) -> None:
        self._client = client
        self._keys = keys
        self.ttl_seconds = ttl_seconds
        self.marker_ttl_seconds = marker_ttl_seconds

    def key(self, phone_number: str) -> str:
        return self._keys.conversation(phone_number)

    def marker_key(self, phone_number: str) -> str:
        return self._keys.claim_marker(phone_number)

    def claim_was_open(self, phone_number: str) -> bool:
        """Whether an unfinished claim's state expired here (its marker outlives it, D106)."""
        return bool(self._client.exists(self.marker_key(phone_number)))

    @staticmethod
    def marks_a_claim(state: ConversationState | None) -> bool:
        """Whether saving ``state`` keeps the marker (a claim in progress) or deletes it."""
        return claim_open(state)

    def load(self, phone_number: str) -> StoredConversation:
        return decode(cast(str | None, self._client.get(self.key(phone_number))))

    def encode(self, state: ConversationState, *, saved_at: datetime) -> str:
        """The value to store at ``key()`` with a TTL of ``ttl_seconds`` (every save
        restarts it). An unfinished claim also keeps a marker at ``marker_key()`` (the value
        "1", ``marker_ttl_seconds``), so after the state expires the next message can say
        the claim was dropped (D106). The webhook saves both with its MessageSid's "done"
        mark, in one round trip (shared/services/inbound.py)."""
        return state_to_json(state, saved_at)
