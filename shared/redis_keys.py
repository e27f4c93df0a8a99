"""Every Redis key the service writes, named in one place.

Keys that concern a person are named by a keyed hash of the phone number, not by the
number: a `KEYS *` or a memory dump shows no phone numbers, and erasure can still find
every key of a person because the hash is computable from the number.

Erasure deletes a person's state (``state_keys``), never their rate-limit counters
(``<prefix>rl:``): a counter holds the hash and a count, nothing the hash does not, and
expires with its window; deleting it let a number reset its limits by erasing itself
(issue 19, D70).
"""

from __future__ import annotations

import hmac


class RedisKeys:
    def __init__(self, prefix: str, pepper: bytes) -> None:
        self._prefix = prefix
        self._pepper = pepper

    def phone_tag(self, phone_number: str) -> str:
        digest = hmac.digest(self._pepper, b"redis-key:" + phone_number.encode(), "sha256")
        return digest.hex()[:32]

    def conversation(self, phone_number: str) -> str:
        return f"{self._prefix}conv:{self.phone_tag(phone_number)}"

    def claim_marker(self, phone_number: str) -> str:
        """ "A claim was in progress": the value is "1", nothing else (D106)."""
        return f"{self._prefix}claim:{self.phone_tag(phone_number)}"

    def inbound_rate(self, phone_number: str, window: int) -> str:
        return f"{self._prefix}rl:in:{self.phone_tag(phone_number)}:{window}"

    def otp_rate(self, phone_number: str, window: int) -> str:
        return f"{self._prefix}rl:otp:{self.phone_tag(phone_number)}:{window}"

    def otp_global_rate(self, window: int) -> str:
        return f"{self._prefix}rl:otp-global:{window}"

    def message_sid(self, message_sid: str) -> str:
        return f"{self._prefix}msg:{message_sid}"

    def state_keys(self, phone_number: str) -> list[str]:
        """The keys erasure deletes: everything kept about this person except the rate-limit
        counters, which must outlive an erasure (they expire with their window)."""
        return [self.conversation(phone_number), self.claim_marker(phone_number)]
