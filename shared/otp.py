"""One-time codes, pure apart from the secure random source (RAILREPAY-001/002).

- 6 digits from ``secrets`` (a CSPRNG), never ``random``.
- Only a keyed hash is stored: HMAC-SHA256(OTP_PEPPER, phone || code) in hex. A plain
  hash of a 6-digit code is reversed in a second; bound to the phone number, a stolen
  hash is also useless for any other number.
- Comparison in constant time; expiry and the attempt limit decide before the hash does.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

CODE_DIGITS = 6
_CODE_SHAPE = re.compile(r"^[0-9]{6}$")


class OtpResult(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"  # a try used, more are left
    EXHAUSTED = "exhausted"  # the last allowed try was wrong: the code is gone
    EXPIRED = "expired"
    NO_CODE = "no_code"  # nothing to check against (never sent, used, or ended)
    REPLACED = "replaced"  # an older code a RESEND replaced: no try used


@dataclass(frozen=True)
class StoredOtp:
    """What the database holds after ``take_otp_attempt`` counted this try."""

    otp_hash: str
    expires_at: datetime
    attempts: int  # including this one


@dataclass(frozen=True)
class OtpCheck:
    result: OtpResult
    attempts_left: int = 0


def generate_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_code_shaped(text: str) -> bool:
    return bool(_CODE_SHAPE.match(text))


def hash_code(pepper: bytes, phone_number: str, code: str) -> str:
    # The code has a fixed length, so phone || code is unambiguous.
    return hmac.new(pepper, (phone_number + code).encode(), hashlib.sha256).hexdigest()


def expiry(now: datetime, ttl_seconds: int) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now + timedelta(seconds=ttl_seconds)


def check_code(
    stored: StoredOtp | None,
    *,
    code: str,
    phone_number: str,
    pepper: bytes,
    now: datetime,
    max_attempts: int,
) -> OtpCheck:
    if stored is None:
        return OtpCheck(OtpResult.NO_CODE)
    if now >= stored.expires_at:
        return OtpCheck(OtpResult.EXPIRED)
    expected = hash_code(pepper, phone_number, code)
    if hmac.compare_digest(expected.encode(), stored.otp_hash.encode()):
        return OtpCheck(OtpResult.VERIFIED)
    left = max(0, max_attempts - stored.attempts)
    return OtpCheck(OtpResult.WRONG if left else OtpResult.EXHAUSTED, attempts_left=left)


def sms_body(code: str, ttl_seconds: int) -> str:
    """The SMS text: the code is its only 6-digit number (tests and phones pick it out)."""
    minutes = max(1, ttl_seconds // 60)
    return (
        f"Your RailRepay code is {code}. It expires in {minutes} minutes. "
        "Never share it: RailRepay will never ask you for it by phone."
    )
