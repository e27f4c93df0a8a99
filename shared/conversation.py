"""The WhatsApp conversation as a pure state machine (issues 4 and 7).

    step(state, inbound, now, config) -> Decision(new_state, effects, reply)

No I/O, clock, randomness or globals: the shell (shared/services/inbound.py) loads the
state from Redis and the user row from PostgreSQL, calls ``step``, carries out the
effects in one unit of work and saves the new state. Two effects need an answer from
the outside world before the reply can be written (was the OTP right? could we send
one?); the shell reports it back through ``resolve``.

The user row is the truth, the Redis state only remembers where we are in a dialogue:
``step`` first reconciles the state with the row, so a lost or stale state never loses
or contradicts what the database knows.

What is said in which state is data: ``KEYWORDS`` names the commands, ``TRANSITIONS``
maps (phase, command) to a handler, ``COMMANDS`` are the handlers that work anywhere,
``ANSWERS`` handle free text per phase and ``MEDIA`` photos and PDFs per phase.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple
from uuid import UUID, uuid5

import msgspec

from shared import claim as claims
from shared.events import Media
from shared.otp import OtpCheck, OtpResult, is_code_shaped

STATE_VERSION = 1
MAX_TICKET_FILES = 10
_ID_NAMESPACE = UUID("6f1d8a52-3c4b-5e7f-9a0b-1c2d3e4f5a6b")


# --- states, commands and the values step works on ------------------------------------


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


class Command(StrEnum):
    HELP = "help"
    MENU = "menu"
    STOP = "stop"
    START = "start"
    DELETE_MY_DATA = "delete my data"
    YES = "yes"
    NO = "no"
    RESEND = "resend"
    CLAIM = "claim"
    STATUS = "status"
    CANCEL = "cancel"
    SKIP = "skip"


KEYWORDS: Mapping[str, Command] = {
    **{command.value: command for command in Command},
    "delay": Command.CLAIM,
    "delete my details": Command.DELETE_MY_DATA,
    "unsubscribe": Command.STOP,
}
# Menu choices by number, only where the menu offers them.
PHASE_KEYWORDS: Mapping[Phase, Mapping[str, Command]] = {
    Phase.MENU: {"1": Command.CLAIM, "2": Command.STATUS},
}


@dataclass(frozen=True)
class ClaimDraft:
    """What the passenger has told us so far; lives only in the conversation (RFC 4.2)."""

    journey_id: UUID
    journey_date: date | None = None
    origin: str | None = None
    destination: str | None = None
    departure: datetime | None = None  # aware, Europe/London
    ticket: tuple[Media, ...] = ()


@dataclass(frozen=True)
class ConversationState:
    phase: Phase
    conversation_id: UUID
    claim: ClaimDraft | None = None
    resume_phase: Phase | None = None  # where a declined erasure returns to
    recent_ticket: tuple[Media, ...] = ()  # sent outside a claim; a CLAIM picks it up


@dataclass(frozen=True)
class UserView:
    """The facts step needs from the user row (the truth)."""

    user_id: UUID
    verified: bool
    blocked: bool
    terms_version: str | None


@dataclass(frozen=True)
class Inbound:
    message_sid: str
    text: str
    media: tuple[Media, ...] = ()
    user: UserView | None = None


@dataclass(frozen=True)
class ConversationConfig:
    terms_version: str
    terms_url: str = "https://railrepay.co.uk/terms"
    claim_window_days: int = 28
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 3
    support_email: str = "support@railrepay.co.uk"


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
    """Use one try on the current code; answered by OtpCheckOutcome."""

    code: str = field(repr=False)


@dataclass(frozen=True)
class MarkVerified:
    pass


@dataclass(frozen=True)
class SetNotifications:
    enabled: bool


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


@dataclass(frozen=True)
class OtpCheckOutcome:
    check: OtpCheck


Outcome = OtpSendOutcome | OtpCheckOutcome


class Decision(NamedTuple):
    state: ConversationState | None  # None: forget the conversation
    effects: tuple[Effect, ...]
    reply: str


# --- what we say -----------------------------------------------------------------------


def welcome(config: ConversationConfig) -> str:
    return (
        "Hello! RailRepay helps you claim compensation when your train is delayed. "
        f"Please read our terms at {config.terms_url} and reply YES to accept them "
        "and sign up."
    )


def _menu_text() -> str:
    return (
        "What would you like to do?\n"
        "1 CLAIM - claim for a delayed train\n"
        "2 STATUS - news on your claims\n"
        "Or send a photo or PDF of your ticket. HELP lists everything."
    )


def _summary(draft: ClaimDraft) -> str:
    when = claims.describe_date(draft.journey_date) if draft.journey_date else "?"
    departs = claims.describe_time(draft.departure) if draft.departure else "?"
    tickets = len(draft.ticket)
    ticket = f"{tickets} file{'s' if tickets != 1 else ''} attached" if tickets else "none"
    return (
        f"Please check your claim:\nDate: {when}\n"
        f"From: {draft.origin or '?'}\nTo: {draft.destination or '?'}\n"
        f"Departure: {departs}\nTicket: {ticket}\n"
        "Reply YES to send it, NO to start again, or CANCEL."
    )


def prompt(state: ConversationState, config: ConversationConfig) -> str:
    """What the user can do next, in this phase."""
    phase = state.phase
    if phase is Phase.AWAITING_TERMS:
        return f"Reply YES to accept our terms ({config.terms_url}) and sign up."
    if phase is Phase.AWAITING_CODE:
        return "Reply with the 6-digit code we sent you by SMS, or RESEND for a new one."
    if phase is Phase.MENU:
        return "Reply CLAIM to claim for a delayed train, send a photo of your ticket, or HELP."
    if phase is Phase.CONFIRM_ERASURE:
        return "Reply YES to delete your data for good, or anything else to keep it."
    if phase is Phase.CLAIM_DATE:
        return (
            "Which day did you travel? For example: today, yesterday, Monday, 15 Nov or 15/11/2026."
        )
    if phase is Phase.CLAIM_STATIONS:
        return "Which stations did you travel between? For example: Leeds to York."
    if phase is Phase.CLAIM_TIME:
        return "What time was the train due to leave? For example: 08:02 or 8am."
    if phase is Phase.CLAIM_TICKET:
        return "Please send a photo or PDF of your ticket, or reply SKIP if you don't have it."
    return _summary(state.claim or ClaimDraft(journey_id=state.conversation_id))


# (command shown, what it does, who sees it: "guest", "unverified", "verified")
HELP_LINES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("YES", "accept our terms and sign up", frozenset({"guest"})),
    ("RESEND", "a new sign-up code by SMS", frozenset({"unverified"})),
    ("CLAIM", "claim for a delayed train", frozenset({"verified"})),
    ("STATUS", "news on your claims", frozenset({"verified"})),
    ("CANCEL", "stop a claim you've started", frozenset({"verified"})),
    ("STOP / START", "notifications off / on", frozenset({"unverified", "verified"})),
    ("MENU", "your options", frozenset({"verified"})),
    ("DELETE MY DATA", "erase your account", frozenset({"unverified", "verified"})),
)


def _audience(user: UserView | None) -> str:
    if user is None:
        return "guest"
    return "verified" if user.verified else "unverified"


def _help_text(turn: Turn) -> str:
    audience = _audience(turn.user)
    lines = [f"{name} - {what}" for name, what, who in HELP_LINES if audience in who]
    intro = "RailRepay helps you claim compensation for delayed trains.\n"
    if audience == "verified":
        lines.append("Or send a photo or PDF of your ticket.")
    text = intro + "\n".join(lines)
    if turn.state.phase is not Phase.MENU:
        text += "\n\n" + prompt(turn.state, turn.config)
    return text


def _with_prompt(text: str, state: ConversationState, config: ConversationConfig) -> str:
    return f"{text} {prompt(state, config)}".strip()


BLOCKED_REPLY = (
    "Sorry, this number can't use RailRepay. If you think that's a mistake, or want your "
    "data deleted, email {email}."
)
RATE_LIMITED_REPLY = (
    "You're sending messages faster than we can answer. Please wait a minute, then try again."
)


# --- one turn ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    state: ConversationState
    inbound: Inbound
    now: datetime
    config: ConversationConfig
    command: Command | None
    returning: bool  # a known user whose previous conversation had expired

    @property
    def user(self) -> UserView | None:
        return self.inbound.user

    def stay(self, reply: str, *effects: Effect) -> Decision:
        return Decision(self.state, effects, reply)

    def move(self, state: ConversationState, reply: str, *effects: Effect) -> Decision:
        return Decision(state, effects, reply)

    def derived_id(self, kind: str) -> UUID:
        return derived_id(kind, self.inbound.message_sid)


Handler = Callable[[Turn], Decision]


def derived_id(kind: str, message_sid: str) -> UUID:
    """Ids for things a message creates, derived from its MessageSid: a retried delivery
    would name the same conversation, journey or ticket."""
    return uuid5(_ID_NAMESPACE, f"{kind}:{message_sid}")


def normalise_text(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .!")


def parse_command(text: str, phase: Phase) -> Command | None:
    words = normalise_text(text)
    return PHASE_KEYWORDS.get(phase, {}).get(words) or KEYWORDS.get(words)


def home_phase(user: UserView | None, config: ConversationConfig) -> Phase:
    if user is None:
        return Phase.AWAITING_TERMS
    if user.verified:
        return Phase.MENU
    if user.terms_version != config.terms_version:
        return Phase.AWAITING_TERMS
    return Phase.AWAITING_CODE


def allowed_phases(user: UserView | None) -> frozenset[Phase]:
    if user is None:
        return frozenset({Phase.AWAITING_TERMS})
    if not user.verified:
        return frozenset({Phase.AWAITING_TERMS, Phase.AWAITING_CODE, Phase.CONFIRM_ERASURE})
    return frozenset({Phase.MENU, Phase.CONFIRM_ERASURE}) | CLAIM_PHASES


def reconcile(
    state: ConversationState | None,
    user: UserView | None,
    config: ConversationConfig,
    message_sid: str,
) -> ConversationState:
    """A state that agrees with the user row: kept where it does, reset where it cannot."""
    home = home_phase(user, config)
    if state is None:
        return ConversationState(
            phase=home, conversation_id=derived_id("conversation", message_sid)
        )
    allowed = allowed_phases(user)
    if state.phase not in allowed or (state.phase in CLAIM_PHASES and state.claim is None):
        return ConversationState(phase=home, conversation_id=state.conversation_id)
    if state.phase is Phase.CONFIRM_ERASURE and (
        state.resume_phase not in allowed
        or (state.resume_phase in CLAIM_PHASES and state.claim is None)
    ):
        state = replace(state, resume_phase=home)
    # A pending erasure keeps the claim it interrupted: a NO returns to it (D71).
    holds_claim = state.phase in CLAIM_PHASES or (
        state.phase is Phase.CONFIRM_ERASURE and state.resume_phase in CLAIM_PHASES
    )
    if not holds_claim and state.claim is not None:
        return replace(state, claim=None)
    return state


def step(
    state: ConversationState | None,
    inbound: Inbound,
    now: datetime,
    config: ConversationConfig,
) -> Decision:
    """One inbound message: the new state, what the shell must do, and the reply."""
    user = inbound.user
    if user is not None and user.blocked:
        return Decision(None, (), BLOCKED_REPLY.format(email=config.support_email))
    current = reconcile(state, user, config, inbound.message_sid)
    if state is None and user is None:
        return Decision(current, (), welcome(config))
    turn = Turn(
        state=current,
        inbound=inbound,
        now=now,
        config=config,
        command=parse_command(inbound.text, current.phase),
        returning=state is None,
    )
    decision = _dispatch(turn)
    if turn.returning:
        started = StartConversation(current.conversation_id)
        return decision._replace(effects=(started, *decision.effects))
    return decision


def _dispatch(turn: Turn) -> Decision:
    phase = turn.state.phase
    if turn.inbound.media:
        return MEDIA[phase](turn)
    command = turn.command
    if command is not None:
        handler = TRANSITIONS.get((phase, command))
        if handler is None and command in PHASE_COMMANDS.get(phase, ALL_COMMANDS):
            handler = COMMANDS.get(command)
        if handler is not None:
            return handler(turn)
    return ANSWERS[phase](turn)


def resolve(
    state: ConversationState,
    outcome: Outcome,
    base_reply: str,
    config: ConversationConfig,
) -> Decision:
    """The rest of a turn once the shell knows how an OTP send or check went."""
    if isinstance(outcome, OtpSendOutcome):
        text = {
            OtpSendResult.SENT: (
                "We've sent a 6-digit code by SMS to this number. Reply here with it within "
                f"{max(1, config.otp_ttl_seconds // 60)} minutes."
            ),
            OtpSendResult.RATE_LIMITED: (
                "We've sent as many codes as we can for now. Please try again in an hour "
                "by replying RESEND."
            ),
            OtpSendResult.FAILED: (
                "We couldn't send your code by SMS just now. Reply RESEND to try again."
            ),
        }[outcome.result]
        return Decision(state, (), f"{base_reply} {text}".strip())
    check = outcome.check
    if check.result is OtpResult.VERIFIED:
        verified = replace(state, phase=Phase.MENU, resume_phase=None)
        return Decision(
            verified, (MarkVerified(),), "You're verified. Welcome to RailRepay!\n" + _menu_text()
        )
    text = {
        OtpResult.WRONG: (
            f"That code isn't right. You have {check.attempts_left} "
            f"{'try' if check.attempts_left == 1 else 'tries'} left."
        ),
        OtpResult.EXHAUSTED: "That code isn't right, and it can't be used again.",
        OtpResult.EXPIRED: "That code has expired.",
        OtpResult.NO_CODE: "That code is no longer valid.",
    }[check.result]
    if check.result is OtpResult.WRONG:
        return Decision(state, (), f"{text} {prompt(state, config)}")
    return Decision(state, (), f"{text} Reply RESEND for a new one.")


# --- handlers: registration and verification -------------------------------------------


def show_terms(turn: Turn) -> Decision:
    return turn.stay(welcome(turn.config))


def accept_terms(turn: Turn) -> Decision:
    version = turn.config.terms_version
    waiting = replace(turn.state, phase=Phase.AWAITING_CODE)
    if turn.user is None:
        effects: tuple[Effect, ...] = (
            RegisterUser(version),
            StartConversation(turn.state.conversation_id),
            SendOtpSms(),
        )
    else:
        effects = (AcceptTerms(version), SendOtpSms())
    return turn.move(waiting, "Thanks for accepting our terms.", *effects)


def decline_terms(turn: Turn) -> Decision:
    return turn.stay(
        "No problem. We can only help once you've accepted our terms: reply YES whenever "
        "you're ready."
    )


def resend_code(turn: Turn) -> Decision:
    return turn.stay("", SendOtpSms())


def answer_code(turn: Turn) -> Decision:
    candidate = "".join(turn.inbound.text.split()).replace("-", "")
    if is_code_shaped(candidate):
        return turn.stay("", VerifyOtp(candidate))
    if candidate.isdigit():
        return turn.stay(_with_prompt("Codes have 6 digits.", turn.state, turn.config))
    greeting = "Welcome back." if turn.returning else "I'm waiting for your code."
    return turn.stay(_with_prompt(greeting, turn.state, turn.config))


def resend_elsewhere(turn: Turn) -> Decision:
    if turn.user is not None and turn.user.verified:
        return turn.stay(_with_prompt("Your number is already verified.", turn.state, turn.config))
    return turn.stay(prompt(turn.state, turn.config))


# --- handlers: anywhere ---------------------------------------------------------------


def show_help(turn: Turn) -> Decision:
    return turn.stay(_help_text(turn))


def show_menu(turn: Turn) -> Decision:
    user = turn.user
    if user is None or not user.verified:
        return turn.stay(prompt(turn.state, turn.config))
    if turn.state.phase in CLAIM_PHASES:
        return turn.stay(
            "You're in the middle of a claim; reply CANCEL to stop it. "
            + prompt(turn.state, turn.config)
        )
    if turn.state.phase is Phase.CONFIRM_ERASURE:
        return turn.stay(prompt(turn.state, turn.config))
    return turn.stay(_menu_text())


def _tail(turn: Turn) -> str:
    """After a side command, remind the user where they were (not in the plain menu)."""
    return "" if turn.state.phase is Phase.MENU else prompt(turn.state, turn.config)


def notifications_off(turn: Turn) -> Decision:
    if turn.user is None:
        return turn.stay(_with_prompt("We only message registered users.", turn.state, turn.config))
    text = "Notifications are off: we won't message you. Reply START to turn them back on."
    return turn.stay(f"{text} {_tail(turn)}".strip(), SetNotifications(enabled=False))


def notifications_on(turn: Turn) -> Decision:
    if turn.user is None:
        return show_terms(turn)
    text = "Notifications are on: we'll message you when there's news about your claims."
    return turn.stay(f"{text} {_tail(turn)}".strip(), SetNotifications(enabled=True))


def ask_erasure(turn: Turn) -> Decision:
    if turn.user is None:
        return turn.stay(
            _with_prompt(
                "We don't hold any personal data for this number.", turn.state, turn.config
            )
        )
    resume = (
        turn.state.resume_phase if turn.state.phase is Phase.CONFIRM_ERASURE else turn.state.phase
    )
    confirming = replace(turn.state, phase=Phase.CONFIRM_ERASURE, resume_phase=resume)
    return turn.move(
        confirming,
        "This deletes your RailRepay account and personal data, and can't be undone. "
        "Reply YES to delete it, or anything else to keep it.",
    )


def erase(turn: Turn) -> Decision:
    return Decision(
        None,
        (EraseUser(),),
        "Done: we've deleted your RailRepay account and personal data. If you message us "
        "again, we'll start afresh.",
    )


def keep_data(turn: Turn) -> Decision:
    back = turn.state.resume_phase or home_phase(turn.user, turn.config)
    resumed = replace(turn.state, phase=back, resume_phase=None)
    return turn.move(
        resumed, _with_prompt("OK, we haven't deleted anything.", resumed, turn.config)
    )


def needs_verification(turn: Turn) -> Decision:
    return turn.stay(
        _with_prompt("You can do that once your number is verified.", turn.state, turn.config)
    )


def request_status(turn: Turn) -> Decision:
    if turn.user is None or not turn.user.verified:
        return needs_verification(turn)
    text = "We've asked for the latest on your claims and will message you here."
    return turn.stay(f"{text} {_tail(turn)}".strip(), RequestClaimStatus())


def menu_answer(turn: Turn) -> Decision:
    if turn.returning:
        return turn.stay("Welcome back to RailRepay!\n" + _menu_text())
    return turn.stay("Sorry, I didn't follow that.\n" + _menu_text())


# --- handlers: the claim ---------------------------------------------------------------


def start_claim(turn: Turn) -> Decision:
    if turn.user is None or not turn.user.verified:
        return needs_verification(turn)
    draft = ClaimDraft(journey_id=turn.derived_id("journey"), ticket=turn.state.recent_ticket)
    claiming = replace(turn.state, phase=Phase.CLAIM_DATE, claim=draft, recent_ticket=())
    kept = " I've added the ticket you sent." if draft.ticket else ""
    return turn.move(
        claiming,
        f"Let's claim for your delayed train (reply CANCEL at any time to stop).{kept} "
        + prompt(claiming, turn.config),
    )


def already_claiming(turn: Turn) -> Decision:
    return turn.stay(_with_prompt("You're already making a claim.", turn.state, turn.config))


def cancel_claim(turn: Turn) -> Decision:
    home = replace(turn.state, phase=Phase.MENU, claim=None)
    return turn.move(
        home, _with_prompt("OK, claim cancelled: nothing was sent.", home, turn.config)
    )


def _draft(turn: Turn) -> ClaimDraft:
    assert turn.state.claim is not None  # noqa: S101 - reconcile() guarantees it in a claim
    return turn.state.claim


def _advance(turn: Turn, draft: ClaimDraft, said: str) -> Decision:
    """Store the answer and ask the next missing thing."""
    if draft.journey_date is None:
        phase = Phase.CLAIM_DATE
    elif draft.origin is None or draft.destination is None:
        phase = Phase.CLAIM_STATIONS
    elif draft.departure is None:
        phase = Phase.CLAIM_TIME
    elif not draft.ticket and turn.state.phase is not Phase.CLAIM_CONFIRM:
        phase = Phase.CLAIM_TICKET
    else:
        phase = Phase.CLAIM_CONFIRM
    moved = replace(turn.state, phase=phase, claim=draft)
    return turn.move(moved, _with_prompt(said, moved, turn.config))


def _ask_again(turn: Turn, reason: str) -> Decision:
    return turn.stay(_with_prompt(reason, turn.state, turn.config))


def answer_date(turn: Turn) -> Decision:
    found = claims.parse_journey_date(
        turn.inbound.text, now=turn.now, window_days=turn.config.claim_window_days
    )
    if isinstance(found, claims.Rejected):
        return _ask_again(turn, found.reason)
    draft = replace(_draft(turn), journey_date=found, departure=None)
    return _advance(turn, draft, f"Got it: {claims.describe_date(found)}.")


def answer_stations(turn: Turn) -> Decision:
    found = claims.parse_stations(turn.inbound.text)
    if isinstance(found, claims.Rejected):
        return _ask_again(turn, found.reason)
    draft = replace(_draft(turn), origin=found.origin, destination=found.destination)
    return _advance(turn, draft, f"Got it: {found.origin} to {found.destination}.")


def answer_time(turn: Turn) -> Decision:
    draft = _draft(turn)
    found = claims.parse_departure_time(turn.inbound.text)
    if isinstance(found, claims.Rejected):
        return _ask_again(turn, found.reason)
    if draft.journey_date is None:  # pragma: no cover - the phases ask for the date first
        return _advance(turn, draft, "")
    departure = claims.departure_at(draft.journey_date, found, now=turn.now)
    if isinstance(departure, claims.Rejected):
        return _ask_again(turn, departure.reason)
    return _advance(
        turn, replace(draft, departure=departure), f"Got it: {claims.describe_time(departure)}."
    )


def answer_ticket(turn: Turn) -> Decision:
    return _ask_again(turn, "I need a photo or PDF of your ticket here.")


def skip_ticket(turn: Turn) -> Decision:
    confirming = replace(turn.state, phase=Phase.CLAIM_CONFIRM)
    return turn.move(confirming, prompt(confirming, turn.config))


def answer_confirmation(turn: Turn) -> Decision:
    return turn.stay(prompt(turn.state, turn.config))


def submit_claim(turn: Turn) -> Decision:
    draft = _draft(turn)
    if (
        draft.journey_date is None
        or draft.origin is None
        or draft.destination is None
        or draft.departure is None
    ):
        return _advance(turn, draft, "There's something missing.")
    home = replace(turn.state, phase=Phase.MENU, claim=None)
    submitted = SubmitJourney(
        journey_id=draft.journey_id,
        journey_date=draft.journey_date,
        origin=draft.origin,
        destination=draft.destination,
        departure=draft.departure,
        ticket=draft.ticket,
    )
    return turn.move(
        home,
        f"Thanks! We've sent your claim for the {claims.describe_time(draft.departure)} "
        f"{draft.origin} to {draft.destination} train on "
        f"{claims.describe_date(draft.journey_date)}. We'll message you here when we've "
        "matched your journey.",
        submitted,
    )


def restart_claim(turn: Turn) -> Decision:
    draft = _draft(turn)
    fresh = ClaimDraft(journey_id=draft.journey_id, ticket=draft.ticket)
    restarted = replace(turn.state, phase=Phase.CLAIM_DATE, claim=fresh)
    kept = " I've kept your ticket." if fresh.ticket else ""
    return turn.move(restarted, f"OK, let's start again.{kept} " + prompt(restarted, turn.config))


# --- handlers: photos and PDFs ----------------------------------------------------------


def is_ticket_type(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("image/") or kind == "application/pdf"


def _ticket_files(turn: Turn) -> tuple[tuple[Media, ...], int]:
    accepted = tuple(item for item in turn.inbound.media if is_ticket_type(item.content_type))
    return accepted, len(turn.inbound.media) - len(accepted)


def _skipped(count: int) -> str:
    if not count:
        return ""
    return f" ({count} file{'s' if count != 1 else ''} skipped: only photos and PDFs.)"


def _not_a_ticket(turn: Turn) -> Decision:
    return _ask_again(turn, "I can only take photos or PDFs of tickets.")


def ticket_in_claim(turn: Turn) -> Decision:
    accepted, skipped = _ticket_files(turn)
    if not accepted:
        return _not_a_ticket(turn)
    draft = _draft(turn)
    attached = replace(draft, ticket=(draft.ticket + accepted)[:MAX_TICKET_FILES])
    published = PublishTicket(turn.derived_id("ticket"), accepted, draft.journey_id)
    decision = _advance(turn, attached, f"Got your ticket.{_skipped(skipped)}")
    return decision._replace(effects=(published,))


def ticket_outside_claim(turn: Turn) -> Decision:
    accepted, skipped = _ticket_files(turn)
    if not accepted:
        return _not_a_ticket(turn)
    kept = replace(turn.state, recent_ticket=accepted[:MAX_TICKET_FILES])
    return turn.move(
        kept,
        f"Thanks, we've got your ticket.{_skipped(skipped)} Reply CLAIM to claim for a "
        "delay on this journey, or MENU for other options.",
        PublishTicket(turn.derived_id("ticket"), accepted),
    )


def ticket_too_early(turn: Turn) -> Decision:
    return _ask_again(turn, "We can take tickets once your number is verified.")


# --- the tables --------------------------------------------------------------------------

TRANSITIONS: Mapping[tuple[Phase, Command], Handler] = {
    (Phase.AWAITING_TERMS, Command.YES): accept_terms,
    (Phase.AWAITING_TERMS, Command.NO): decline_terms,
    (Phase.AWAITING_TERMS, Command.START): show_terms,
    (Phase.AWAITING_CODE, Command.RESEND): resend_code,
    (Phase.CONFIRM_ERASURE, Command.YES): erase,
    (Phase.CONFIRM_ERASURE, Command.DELETE_MY_DATA): ask_erasure,
    (Phase.CLAIM_TICKET, Command.SKIP): skip_ticket,
    (Phase.CLAIM_CONFIRM, Command.YES): submit_claim,
    (Phase.CLAIM_CONFIRM, Command.NO): restart_claim,
    **{(phase, Command.CANCEL): cancel_claim for phase in CLAIM_PHASES},
    **{(phase, Command.CLAIM): already_claiming for phase in CLAIM_PHASES},
}

COMMANDS: Mapping[Command, Handler] = {
    Command.HELP: show_help,
    Command.MENU: show_menu,
    Command.STOP: notifications_off,
    Command.START: notifications_on,
    Command.DELETE_MY_DATA: ask_erasure,
    Command.CLAIM: start_claim,
    Command.STATUS: request_status,
    Command.RESEND: resend_elsewhere,
}

# Where only some of COMMANDS apply; elsewhere all do. A pending erasure is answered
# YES or not-YES; HELP and MENU still explain without deciding.
ALL_COMMANDS = frozenset(Command)
PHASE_COMMANDS: Mapping[Phase, frozenset[Command]] = {
    Phase.CONFIRM_ERASURE: frozenset({Command.HELP, Command.MENU}),
}

ANSWERS: Mapping[Phase, Handler] = {
    Phase.AWAITING_TERMS: show_terms,
    Phase.AWAITING_CODE: answer_code,
    Phase.MENU: menu_answer,
    Phase.CONFIRM_ERASURE: keep_data,
    Phase.CLAIM_DATE: answer_date,
    Phase.CLAIM_STATIONS: answer_stations,
    Phase.CLAIM_TIME: answer_time,
    Phase.CLAIM_TICKET: answer_ticket,
    Phase.CLAIM_CONFIRM: answer_confirmation,
}

MEDIA: Mapping[Phase, Handler] = {
    Phase.AWAITING_TERMS: show_terms,
    Phase.AWAITING_CODE: ticket_too_early,
    Phase.MENU: ticket_outside_claim,
    Phase.CONFIRM_ERASURE: keep_data,
    **{phase: ticket_in_claim for phase in CLAIM_PHASES},
}


# --- the state in Redis ------------------------------------------------------------------


def _media_json(items: tuple[Media, ...]) -> list[dict[str, str]]:
    return [{"url": item.url, "content_type": item.content_type} for item in items]


def _media_from(raw: Any) -> tuple[Media, ...]:
    return tuple(
        Media(url=str(item["url"]), content_type=str(item["content_type"])) for item in raw
    )


# The JSON json.dumps(sort_keys=True, compact) writes, in a tenth of the time (every
# message saves its state); non-ASCII characters are written as UTF-8, not escaped.
_STATE_JSON = msgspec.json.Encoder(order="sorted")


def state_to_json(state: ConversationState, saved_at: datetime | None = None) -> str:
    """``saved_at``: the time of the message that saved it, kept beside the state for the
    shell's freshness check (shared/services/inbound.py)."""
    draft = state.claim
    body: dict[str, Any] = {
        "v": STATE_VERSION,
        "phase": state.phase.value,
        "conversation_id": str(state.conversation_id),
        "resume_phase": state.resume_phase.value if state.resume_phase else None,
        "recent_ticket": _media_json(state.recent_ticket),
        "claim": None,
    }
    if draft is not None:
        body["claim"] = {
            "journey_id": str(draft.journey_id),
            "journey_date": draft.journey_date.isoformat() if draft.journey_date else None,
            "origin": draft.origin,
            "destination": draft.destination,
            "departure": draft.departure.isoformat() if draft.departure else None,
            "ticket": _media_json(draft.ticket),
        }
    if saved_at is not None:
        body["saved_at"] = saved_at.isoformat()
    return _STATE_JSON.encode(body).decode()


def state_from_json(text: str) -> ConversationState | None:
    """None for anything unreadable (an old version, a corrupted value): start afresh."""
    return stored_state_from_json(text)[0]


def stored_state_from_json(text: str) -> tuple[ConversationState | None, datetime | None]:
    """The state and when it was saved (None for either when unreadable or absent)."""
    try:
        body = json.loads(text)
        raw_saved_at = body.get("saved_at")
        saved_at = datetime.fromisoformat(raw_saved_at) if raw_saved_at else None
    except (ValueError, TypeError, AttributeError):
        return None, None
    return _state_from_body(body), saved_at


def _state_from_body(body: Any) -> ConversationState | None:
    try:
        if body.get("v") != STATE_VERSION:
            return None
        raw_claim = body.get("claim")
        draft = None
        if raw_claim is not None:
            departure = raw_claim.get("departure")
            parsed_departure = datetime.fromisoformat(departure) if departure else None
            if parsed_departure is not None and parsed_departure.tzinfo is None:
                return None
            if parsed_departure is not None:
                parsed_departure = parsed_departure.astimezone(claims.UK)
            journey_date = raw_claim.get("journey_date")
            draft = ClaimDraft(
                journey_id=UUID(raw_claim["journey_id"]),
                journey_date=date.fromisoformat(journey_date) if journey_date else None,
                origin=raw_claim.get("origin"),
                destination=raw_claim.get("destination"),
                departure=parsed_departure,
                ticket=_media_from(raw_claim.get("ticket") or []),
            )
        resume = body.get("resume_phase")
        return ConversationState(
            phase=Phase(body["phase"]),
            conversation_id=UUID(body["conversation_id"]),
            claim=draft,
            resume_phase=Phase(resume) if resume else None,
            recent_ticket=_media_from(body.get("recent_ticket") or []),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
