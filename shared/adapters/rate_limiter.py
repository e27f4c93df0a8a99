"""Rate limits in Redis (RAILREPAY-800): fixed windows, atomic across instances.

Each window is its own key (``...:<window number>``) that expires after the window, so a
limit resets by itself. Counting is INCR + EXPIRE inside one Lua script; the OTP check
is one Lua script too, so the per-number and the global ceiling are tested and counted
together and no send is counted against one limit when the other refused it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import cast

import redis

from shared.redis_keys import RedisKeys

MINUTE_SECONDS = 60
HOUR_SECONDS = 3600

# KEYS: per-number counter, global counter. ARGV: per-number limit, global limit, ttl.
_OTP_SCRIPT = """
local number = tonumber(redis.call('GET', KEYS[1]) or '0')
local everyone = tonumber(redis.call('GET', KEYS[2]) or '0')
if number >= tonumber(ARGV[1]) then return 1 end
if everyone >= tonumber(ARGV[2]) then return 2 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0
"""


class OtpAllowance(StrEnum):
    ALLOWED = "allowed"
    NUMBER_LIMIT = "number_limit"
    GLOBAL_LIMIT = "global_limit"


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        *,
        inbound_per_minute: int,
        otp_per_hour: int,
        otp_global_per_hour: int,
    ) -> None:
        self._client = client
        self._keys = keys
        self._inbound_per_minute = inbound_per_minute
        self._otp_per_hour = otp_per_hour
        self._otp_global_per_hour = otp_global_per_hour
        self._otp_script = client.register_script(_OTP_SCRIPT)

    def inbound_counter(self, phone_number: str, now: datetime) -> tuple[str, int]:
        """This number's counter key for the current minute, and how long it must live.

        The webhook counts a message in the same script that reserves its MessageSid
        (shared/adapters/message_ledger.py), so a repeated delivery is never counted.
        """
        window = int(now.timestamp()) // MINUTE_SECONDS
        return self._keys.inbound_rate(phone_number, window), 2 * MINUTE_SECONDS

    def inbound_allowed(self, count: int) -> bool:
        """False once the number has sent more than its limit this minute."""
        return count <= self._inbound_per_minute

    @staticmethod
    def otp_window_ends(now: datetime) -> datetime:
        """When the hourly OTP window holding ``now`` ends (a refused RESEND works again)."""
        window = int(now.timestamp()) // HOUR_SECONDS
        return datetime.fromtimestamp((window + 1) * HOUR_SECONDS, tz=UTC)

    def allow_otp(self, phone_number: str, now: datetime) -> OtpAllowance:
        """Counts one OTP SMS against both hourly limits, only when both allow it."""
        window = int(now.timestamp()) // HOUR_SECONDS
        verdict = self._otp_script(
            keys=[
                self._keys.otp_rate(phone_number, window),
                self._keys.otp_global_rate(window),
            ],
            args=[self._otp_per_hour, self._otp_global_per_hour, 2 * HOUR_SECONDS],
        )
        return {
            0: OtpAllowance.ALLOWED,
            1: OtpAllowance.NUMBER_LIMIT,
            2: OtpAllowance.GLOBAL_LIMIT,
        }[cast(int, verdict)]
