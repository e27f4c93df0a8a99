"""What every parser of a claim answer shares (issue 7): the refusal, the limits, the UK clock.

Each parser returns a value or a ``Rejected``, never an exception. A refusal is worded by
the catalogue (``refused(R.<key>, **values)``, D126): ``reason`` is its English for logs
and tests, ``key`` and ``values`` let the conversation say it in the passenger's
language. Times are read as Europe/London wall-clock time (``UK``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from shared.replies import R, say


class LazyPattern:
    """A regular expression compiled on first use. Issue 20's patterns cost ~1.5 ms to
    compile; the webhook's cold start should not pay for answers it has not seen yet."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, self.flags)


UK = ZoneInfo("Europe/London")
MAX_ANSWER_CHARS = 100
MAX_STATION_CHARS = 60
ENGLISH = "en-GB"  # Rejected.reason's language


@dataclass(frozen=True)
class Rejected:
    """An answer refused: ``reason`` in English (logs, tests); ``key`` and ``values`` say
    it in the passenger's language (``replies.say``)."""

    reason: str
    key: R | None = None
    values: tuple[tuple[str, object], ...] = ()


def refused(key: R, **values: object) -> Rejected:
    """A refusal worded by the catalogue (D126): English here, the passenger's language
    when the conversation says it."""
    return Rejected(say(ENGLISH, key, **values), key, tuple(values.items()))


@dataclass(frozen=True)
class AmbiguousHour(Rejected):
    """A clock time without am or pm ("8", "half 5"): ask, then ``resolve_half_day``."""

    hour: int = 0  # 1 to 12
    minute: int = 0


def clean(text: str) -> str:
    return " ".join(text.strip().casefold().split()).rstrip(".!")


def uk_today(now: datetime) -> date:
    return now.astimezone(UK).date()
