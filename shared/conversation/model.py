"""The values the conversation works on: where a dialogue is (``Phase``,
``ConversationState`` and the claim it drafts), what a message brings (``Inbound``,
``UserView``), the work it asks the shell to do (the effect dataclasses, ``Effect``), how
that work went (``Outcome``) and what a turn decides (``Decision``). Plain frozen values,
no behaviour beyond ``derived_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID, uuid5

from shared.events import Media
from shared.otp import OtpCheck

_ID_NAMESPACE = UUID("6f1d8a52-3c4b-5e7f-9a0b-1c2d3e4f5a6b")
DEFAULT_LANGUAGE = "en-GB"  # user_preferences.language's column default


class Phase(StrEnum):
    AWAITING_TERMS = "awaiting_terms"
    AWAITING_CODE = "awaiting_code"
    MENU = "menu"
    CONFIRM_ERASURE = "confirm_erasure"
    CLAIM_DATE = "claim_date"
    CLAIM_STATIONS = "claim_stations"
    CLAIM_TIME = "claim_time"
    CLAIM_TICKET = "claim_ticket"
    CLAIM_CONFIRM = "claim_confirm"


CLAIM_PHASES = frozenset(
    {
        Phase.CLAIM_DATE,
        Phase.CLAIM_STATIONS,
        Phase.CLAIM_TIME,
        Phase.CLAIM_TICKET,
        Phase.CLAIM_CONFIRM,
    }
)
# The claim's questions, in the order they are asked (the summary numbers them so).
STEP_PHASES = (Phase.CLAIM_DATE, Phase.CLAIM_STATIONS, Phase.CLAIM_TIME, Phase.CLAIM_TICKET)


@dataclass(frozen=True)
class ClaimDraft:
    """What the passenger has told us so far; lives only in the conversation (RFC 4.2)."""

    journey_id: UUID
    journey_date: date | None = None
    origin: str | None = None
    destination: str | None = None
    departure: datetime | None = None  # aware, Europe/London
    ticket: tuple[Media, ...] = ()
    # The station list's CRS code and name for each side (issue 20); None in a state
    # saved before them, or for a side typed but not (yet) resolved.
    origin_crs: str | None = None
    origin_name: str | None = None
    destination_crs: str | None = None
    destination_name: str | None = None
    reviewed: bool = False  # the summary was shown: a changed answer returns to it
    duplicate_warned: bool = False  # told it repeats a journey sent before: YES sends it


ORIGIN, DESTINATION = "origin", "destination"


@dataclass(frozen=True)
class StationChoice:
    """A typed name that fits several stations, offered as a numbered choice."""

    side: str  # ORIGIN or DESTINATION
    typed: str
    candidates: tuple[tuple[str, str], ...]  # (CRS, name), best first


@dataclass(frozen=True)
class ConversationState:
    phase: Phase
    conversation_id: UUID
    claim: ClaimDraft | None = None
    resume_phase: Phase | None = None  # where a declined erasure returns to
    recent_ticket: tuple[Media, ...] = ()  # sent outside a claim; a CLAIM picks it up
    language: str = DEFAULT_LANGUAGE  # the user row's preference; a guest's own choice
    proposal: ClaimDraft | None = None  # a correction offered at the summary (YES/NO)
    resend_after: datetime | None = None  # RESEND was refused until then
    # Keyed hashes (as the database stores them) of codes a newer one replaced, newest
    # last: typing one says so and costs no try. Opaque to the core.
    replaced_codes: tuple[str, ...] = field(default=(), repr=False)
    # When the message that saved this state came (read from the stored JSON): a claim
    # left this long (ConversationConfig.conversation_idle_seconds) is dropped, and said so.
    saved_at: datetime | None = None
    # At CLAIM_STATIONS: names that fit several stations, the first one asked now.
    choices: tuple[StationChoice, ...] = ()
    # At CLAIM_TIME: (hour 1-12, minute) of a time given without am or pm.
    pending_hour: tuple[int, int] | None = None


@dataclass(frozen=True)
class UserView:
    """The facts step needs from the user row (the truth)."""

    user_id: UUID
    verified: bool
    blocked: bool
    terms_version: str | None
    notifications_enabled: bool = True
    language: str = DEFAULT_LANGUAGE
    # Journeys this user sent within the claim window, (fingerprint, when) oldest first,
    # from the database (D125: the warning before the same journey goes twice). The shell
    # reads them only for a state at CLAIM_CONFIRM, the one phase whose YES submits.
    recent_journeys: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class Inbound:
    message_sid: str
    text: str
    media: tuple[Media, ...] = ()
    user: UserView | None = None
    # The shell found no state but the marker of an unfinished claim (its state expired
    # after conversation_idle_seconds of silence): the reply says it was dropped (D106).
    claim_dropped: bool = False


@dataclass(frozen=True)
class ConversationConfig:
    """The settings the conversation reads, passed in by the shell. No defaults here:
    shared/settings.py owns them, and shared/services/inbound.py copies them over."""

    terms_version: str
    terms_url: str
    claim_window_days: int
    otp_ttl_seconds: int  # said in the "code sent" reply, in minutes
    support_email: str
    # Silence after which an unfinished claim is dropped (the Redis TTL is longer, so the
    # next message can say so instead of starting over unawares).
    conversation_idle_seconds: int


# --- effects: the core asks, the shell does --------------------------------------------


@dataclass(frozen=True)
class RegisterUser:
    terms_version: str


@dataclass(frozen=True)
class AcceptTerms:
    terms_version: str


@dataclass(frozen=True)
class StartConversation:
    conversation_id: UUID


@dataclass(frozen=True)
class SendOtpSms:
    """Issue a new code (invalidating the old one) and SMS it; answered by OtpSendOutcome."""


@dataclass(frozen=True)
class VerifyOtp:
    """Use one try on the current code, unless it is one of ``replaced`` (the hashes of
    codes a newer one replaced: no try used); answered by OtpCheckOutcome."""

    code: str = field(repr=False)
    replaced: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class MarkVerified:
    pass


@dataclass(frozen=True)
class SetNotifications:
    enabled: bool


@dataclass(frozen=True)
class SetLanguage:
    language: str  # BCP 47, as user_preferences.language holds it


@dataclass(frozen=True)
class EraseUser:
    pass


@dataclass(frozen=True)
class PublishTicket:
    ticket_id: UUID
    media: tuple[Media, ...]
    journey_id: UUID | None = None


@dataclass(frozen=True)
class SubmitJourney:
    journey_id: UUID
    journey_date: date
    origin: str
    destination: str
    departure: datetime
    ticket: tuple[Media, ...]
    # journey_fingerprint of it: the shell records it beside the outbox row, for the
    # warning when the same journey comes again within the claim window.
    fingerprint: str
    # The resolved stations (all four, or none for a draft saved before them).
    origin_crs: str | None = None
    destination_crs: str | None = None
    origin_name: str | None = None
    destination_name: str | None = None


@dataclass(frozen=True)
class RequestClaimStatus:
    pass


Effect = (
    RegisterUser
    | AcceptTerms
    | StartConversation
    | SendOtpSms
    | VerifyOtp
    | MarkVerified
    | SetNotifications
    | SetLanguage
    | EraseUser
    | PublishTicket
    | SubmitJourney
    | RequestClaimStatus
)


class OtpSendResult(StrEnum):
    SENT = "sent"
    RATE_LIMITED = "rate_limited"
    FAILED = "failed"  # Twilio refused or was unreachable (known only after the commit)


@dataclass(frozen=True)
class OtpSendOutcome:
    result: OtpSendResult
    retry_at: datetime | None = None  # RATE_LIMITED: when a new code can be sent again
    replaced: str | None = field(default=None, repr=False)  # SENT: the old code's hash


@dataclass(frozen=True)
class OtpCheckOutcome:
    check: OtpCheck


Outcome = OtpSendOutcome | OtpCheckOutcome


class Decision(NamedTuple):
    state: ConversationState | None  # None: forget the conversation
    effects: tuple[Effect, ...]
    reply: str


def derived_id(kind: str, message_sid: str) -> UUID:
    """Ids for things a message creates, derived from its MessageSid: a retried delivery
    would name the same conversation, journey or ticket."""
    return uuid5(_ID_NAMESPACE, f"{kind}:{message_sid}")
