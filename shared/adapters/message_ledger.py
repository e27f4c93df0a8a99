"""The MessageSid ledger in Redis: which deliveries are being handled or were handled.

Twilio retries a webhook it got no answer to, and may deliver one message twice at the
same moment. The first delivery of a MessageSid *reserves* it (``SET NX``, a
"pending:<token>" value for RESERVATION_TTL_SECONDS), counts the number's message for
the inbound rate limit and reads its conversation state, in one Lua script and one round
trip; a later delivery finds the key and is a repeat. Until the commit, a failure
releases the reservation (only our own token), so Twilio's retry is served afresh; after
it, the state is saved, the claim marker kept or dropped and the MessageSid marked
"done" for MESSAGE_DEDUPE_TTL_SECONDS, again one round trip. The durable record of
handled messages is PostgreSQL's ``handled_messages`` (D64); this ledger is the fast
path in front of it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import cast

import redis

from shared.adapters.conversation_store import (
    UNREADABLE,
    SavedConversation,
    StoredConversation,
    decode,
)
from shared.redis_keys import RedisKeys

_RELEASE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# How long a reservation lives without its "done" mark: twice the webhook's 30 s timeout
# (terraform/locals.tf; a test holds them together). A reservation whose holder died, or
# whose release was lost with Redis, then frees Twilio's next retry of that message after
# a minute instead of answering it with nothing for the de-duplication TTL (a day). A
# delivery that reaches the database twice is still caught there (handled_messages, D64).
RESERVATION_TTL_SECONDS = 60

# KEYS: the MessageSid's key, the number's inbound counter for this minute, the number's
# conversation state, its claim marker. ARGV: the pending token, the reservation's TTL,
# the counter's TTL. A first delivery is reserved, counted and given the conversation
# state and whether the marker is set (D106), in one round trip: {count, state, marked};
# a repeat is none of these ({-1}). State and marker are saved together by one script
# (below), so the pair read here is consistent. A state that cannot be read (not a
# string) is reported as such ({count, false, marked, 1}) rather than failing the script,
# which would leave the MessageSid reserved: it is then read again after the row lock,
# and fails there.
_RESERVE_COUNT_AND_READ = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {-1} end
local count = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local marked = redis.call('EXISTS', KEYS[4])
local state = redis.pcall('GET', KEYS[3])
if type(state) == 'table' and state.err then return {count, false, marked, 1} end
return {count, state, marked}
"""


# KEYS: the conversation state, the MessageSid, the claim marker. ARGV: the state's JSON
# ('' deletes it), its TTL, the marker's TTL ('' deletes it: no claim in progress), the
# "done" mark's TTL (MESSAGE_DEDUPE_TTL_SECONDS). After the commit: the state saved, the
# marker kept or dropped and the MessageSid marked done, one round trip.
_SAVE_AND_COMPLETE = """
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[3])
else
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
end
redis.call('SET', KEYS[2], 'done', 'XX', 'EX', ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Reservation:
    token: str
    count_this_minute: int  # messages of this number in the current rate-limit window
    conversation: StoredConversation  # as read with the reservation, before the row lock


class MessageLedger:
    """MessageSids being handled ("pending:<token>") or handled ("done")."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_seconds = ttl_seconds
        # EVALSHA: Redis neither receives nor hashes the script's text on every message.
        self._reserve = client.register_script(_RESERVE_COUNT_AND_READ)
        self._release = client.register_script(_RELEASE_IF_OURS)
        self._save_and_complete = client.register_script(_SAVE_AND_COMPLETE)

    def reserve(
        self,
        message_sid: str,
        counter_key: str,
        counter_ttl: int,
        conversation_keys: tuple[str, str],
    ) -> Reservation | None:
        """The reservation when this delivery is the first (counted at ``counter_key``,
        with the state and claim marker at ``conversation_keys``); None for a repeat."""
        token = f"pending:{secrets.token_hex(8)}"
        state_key, marker_key = conversation_keys
        reply = cast(
            list[object],
            self._reserve(
                keys=[self._keys.message_sid(message_sid), counter_key, state_key, marker_key],
                args=[token, RESERVATION_TTL_SECONDS, counter_ttl],
            ),
        )
        count = int(cast(int, reply[0]))
        if count < 0:
            return None
        marked = reply[2] == 1
        conversation = (
            replace(UNREADABLE, claim_marked=marked)
            if len(reply) > 3
            else decode(cast(str | None, reply[1]), claim_marked=marked)
        )
        return Reservation(token=token, count_this_minute=count, conversation=conversation)

    def release(self, message_sid: str, token: str) -> None:
        self._release(keys=[self._keys.message_sid(message_sid)], args=[token])

    def complete(self, message_sid: str) -> None:
        """Mark handled, for the de-duplication TTL."""
        self._client.set(self._keys.message_sid(message_sid), "done", xx=True, ex=self._ttl_seconds)

    def complete_saving(
        self, message_sid: str, conversation_keys: tuple[str, str], saved: SavedConversation
    ) -> None:
        """Mark handled, and write the state and claim marker at ``conversation_keys``
        as ``saved`` says (ConversationStore.to_save)."""
        state_key, marker_key = conversation_keys
        self._save_and_complete(
            keys=[state_key, self._keys.message_sid(message_sid), marker_key],
            args=[
                saved.state_json or "",
                saved.state_ttl,
                "" if saved.marker_ttl is None else saved.marker_ttl,
                self._ttl_seconds,
            ],
        )
