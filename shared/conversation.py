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
``ANSWERS`` handle free text per phase and ``MEDIA`` photos and PDFs per phase. Every
text it says comes from the catalogue in shared/replies, in the passenger's language.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID, uuid5

import msgspec

from shared import claim as claims
from shared.events import Media
from shared.otp import OtpCheck, OtpResult, is_code_shaped
from shared.replies import R, is_complete, say

if TYPE_CHECKING:  # the station list loads on the first stations answer (D87)
    from shared import stations as gb

STATE_VERSION = 1
MAX_TICKET_FILES = 10
MAX_REPLACED_CODES = 3
_ID_NAMESPACE = UUID("6f1d8a52-3c4b-5e7f-9a0b-1c2d3e4f5a6b")
DEFAULT_LANGUAGE = "en-GB"  # user_preferences.language's column default


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
    BACK = "back"
    ENGLISH = "english"
    CYMRAEG = "cymraeg"


KEYWORDS: Mapping[str, Command] = {
    **{command.value: command for command in Command},
    "delay": Command.CLAIM,
    "delete my details": Command.DELETE_MY_DATA,
    "unsubscribe": Command.STOP,
    "go back": Command.BACK,
    "previous": Command.BACK,
    "welsh": Command.CYMRAEG,
}
# Everyday ways to say yes or no (issue 20). A bare "ok" or "👍" does not erase anyone:
# the erasure confirmation takes only a reply that starts with the word YES.
YES_WORDS = frozenset(
    {
        "yeah",
        "yea",
        "yep",
        "yup",
        "y",
        "ok",
        "okay",
        "k",
        "sure",
        "correct",
        "\U0001f44d",
        "\u2705",
        "\u2714",
        "\u2714\ufe0f",
        "that's right",
        "thats right",
        "yes it is",
    }
)
NO_WORDS = frozenset({"nope", "nah", "n", "\U0001f44e", "\u274c"})
# Words dropped before a sentence is matched against KEYWORDS again, so "I want to make a
# claim", "Claim please" and "Please delete my data" are the commands they name.
FILLER_WORDS = frozenset(
    {
        "please",
        "pls",
        "plz",
        "i",
        "i'd",
        "id",
        "i'm",
        "im",
        "want",
        "wanna",
        "would",
        "like",
        "to",
        "make",
        "a",
        "an",
        "the",
        "my",
        "me",
        "can",
        "could",
        "you",
        "new",
        "let's",
        "lets",
        "let",
        "just",
        "all",
        "of",
        "thanks",
        "thank",
        "do",
        "need",
    }
)
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
    # from the database (D125: the warning before the same journey goes twice).
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
    terms_version: str
    terms_url: str = "https://railrepay.co.uk/terms"
    claim_window_days: int = 28
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 3
    support_email: str = "support@railrepay.co.uk"
    # Silence after which an unfinished claim is dropped (the Redis TTL is longer, so the
    # next message can say so instead of starting over unawares).
    conversation_idle_seconds: int = 24 * 3600


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


# --- what we say -----------------------------------------------------------------------


def welcome(config: ConversationConfig, language: str = DEFAULT_LANGUAGE) -> str:
    return say(language, R.WELCOME, terms_url=config.terms_url)


def _menu_text(language: str) -> str:
    return say(language, R.MENU)


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(claims.UK):%H:%M}"


def _summary(draft: ClaimDraft, language: str) -> str:
    tickets = len(draft.ticket)
    if not tickets:
        ticket = say(language, R.SUMMARY_TICKET_NONE)
    elif tickets == 1:
        ticket = say(language, R.SUMMARY_TICKET_ONE)
    else:
        ticket = say(language, R.SUMMARY_TICKET_MANY, count=tickets)
    return say(
        language,
        R.SUMMARY,
        date=claims.describe_date(draft.journey_date) if draft.journey_date else "?",
        origin=_station_name(draft, ORIGIN) or "?",
        destination=_station_name(draft, DESTINATION) or "?",
        time=claims.describe_time(draft.departure) if draft.departure else "?",
        ticket=ticket,
    )


def _station_name(draft: ClaimDraft, side: str) -> str | None:
    """The station list's name for a side, else the name as typed."""
    if side == ORIGIN:
        return draft.origin_name or draft.origin
    return draft.destination_name or draft.destination


def _choice_text(choice: StationChoice, language: str) -> str:
    options = "\n".join(
        say(language, R.STATION_OPTION, number=number, name=name)
        for number, (_, name) in enumerate(choice.candidates, start=1)
    )
    return say(language, R.STATION_CHOICE, typed=choice.typed, options=options)


def _stations_prompt(state: ConversationState) -> str:
    language, draft = state.language, state.claim
    if state.choices:
        return _choice_text(state.choices[0], language)
    if draft is not None and draft.origin is not None and draft.destination is None:
        return say(language, R.PROMPT_DESTINATION, origin=_station_name(draft, ORIGIN))
    if draft is not None and draft.destination is not None and draft.origin is None:
        return say(language, R.PROMPT_ORIGIN, destination=_station_name(draft, DESTINATION))
    return say(language, R.PROMPT_STATIONS)


def _am_or_pm(hour: int, minute: int, language: str) -> str:
    shown = f"{hour}" if minute == 0 else f"{hour}:{minute:02d}"
    return say(language, R.AM_OR_PM, time=shown)


def _resend_refused(state: ConversationState, now: datetime | None) -> bool:
    return now is not None and state.resend_after is not None and now < state.resend_after


def prompt(
    state: ConversationState, config: ConversationConfig, now: datetime | None = None
) -> str:
    """What the user can do next, in this phase (``now``: to leave out what is refused)."""
    phase, language = state.phase, state.language
    if phase is Phase.AWAITING_TERMS:
        return say(language, R.PROMPT_TERMS, terms_url=config.terms_url)
    if phase is Phase.AWAITING_CODE:
        if state.resend_after is not None and _resend_refused(state, now):
            later = say(
                language,
                R.HELP_RESEND_LATER,
                time=_clock(state.resend_after),
                email=config.support_email,
            )
            return f"{say(language, R.PROMPT_CODE_NO_RESEND)} {later}"
        return say(language, R.PROMPT_CODE)
    if phase is Phase.MENU:
        return say(language, R.PROMPT_MENU)
    if phase is Phase.CONFIRM_ERASURE:
        return say(language, R.PROMPT_ERASURE)
    if phase is Phase.CLAIM_DATE:
        return say(language, R.PROMPT_DATE)
    if phase is Phase.CLAIM_STATIONS:
        return _stations_prompt(state)
    if phase is Phase.CLAIM_TIME:
        if state.pending_hour is not None:
            return _am_or_pm(*state.pending_hour, language)
        return say(language, R.PROMPT_TIME)
    draft = state.claim or ClaimDraft(journey_id=state.conversation_id)
    if phase is Phase.CLAIM_TICKET:
        replacing = draft.reviewed and draft.ticket
        return say(language, R.PROMPT_TICKET_REPLACE if replacing else R.PROMPT_TICKET)
    return _summary(draft, language)


# (command shown, who sees it: "guest", "unverified", "verified")
HELP_LINES: tuple[tuple[R, frozenset[str]], ...] = (
    (R.HELP_YES, frozenset({"guest"})),
    (R.HELP_RESEND, frozenset({"unverified"})),
    (R.HELP_CLAIM, frozenset({"verified"})),
    (R.HELP_STATUS, frozenset({"verified"})),
    (R.HELP_CANCEL, frozenset({"verified"})),
    (R.HELP_STOP_START, frozenset({"unverified", "verified"})),
    (R.HELP_MENU, frozenset({"verified"})),
    (R.HELP_DELETE, frozenset({"unverified", "verified"})),
    (R.HELP_LANGUAGE, frozenset({"guest", "unverified", "verified"})),
)


def _audience(user: UserView | None) -> str:
    if user is None:
        return "guest"
    return "verified" if user.verified else "unverified"


def _help_text(turn: Turn) -> str:
    audience = _audience(turn.user)
    refused = _resend_refused(turn.state, turn.now)
    lines = [
        turn.say(key)
        for key, who in HELP_LINES
        if audience in who and not (key is R.HELP_RESEND and refused)
    ]
    if audience == "verified":
        lines.append(turn.say(R.HELP_TICKET))
    text = turn.say(R.HELP_INTRO) + "\n" + "\n".join(lines)
    if turn.state.phase is not Phase.MENU:
        text += "\n\n" + turn.prompt()
    return text


def _with_prompt(text: str, state: ConversationState, config: ConversationConfig) -> str:
    return f"{text} {prompt(state, config)}".strip()


BLOCKED_REPLY = say(DEFAULT_LANGUAGE, R.BLOCKED)  # {email}
RATE_LIMITED_REPLY = say(DEFAULT_LANGUAGE, R.RATE_LIMITED)


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

    @property
    def language(self) -> str:
        return self.state.language

    def say(self, key: R, **values: object) -> str:
        return say(self.state.language, key, **values)

    def reason(self, refused: claims.Rejected) -> str:
        """A parser's refusal reason in the passenger's language (D126)."""
        if refused.key is None:
            return refused.reason
        return say(self.state.language, refused.key, **dict(refused.values))

    def prompt(self, state: ConversationState | None = None) -> str:
        return prompt(state or self.state, self.config, self.now)

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


# Skin tones and the emoji presentation selector: "👍🏽" is "👍".
_EMOJI_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f]")


def normalise_text(text: str) -> str:
    plain = _EMOJI_MODIFIERS.sub("", text.replace("\u2019", "'"))
    return " ".join(plain.casefold().split()).strip(" .!,")


def _without_fillers(words: str) -> str:
    kept = (word.strip(",;:") for word in words.split())
    return " ".join(word for word in kept if word and word not in FILLER_WORDS)


LOOSE_KEYWORDS: Mapping[str, Command] = {
    _without_fillers(words): command for words, command in KEYWORDS.items()
}


def is_affirmative(text: str) -> bool:
    words = normalise_text(text)
    return words in YES_WORDS or _without_fillers(words) == Command.YES.value


def parse_command(text: str, phase: Phase) -> Command | None:
    words = normalise_text(text)
    exact = PHASE_KEYWORDS.get(phase, {}).get(words) or KEYWORDS.get(words)
    if exact is not None:
        return exact
    if words in YES_WORDS:
        # Erasing is for good: there, only an answer that starts with YES confirms it.
        return None if phase is Phase.CONFIRM_ERASURE else Command.YES
    if words in NO_WORDS:
        return Command.NO
    loose = _without_fillers(words)
    return LOOSE_KEYWORDS.get(loose) if loose else None


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
    agreed = _reconcile_phase(state, user, config, message_sid)
    if user is not None and agreed.language != user.language:
        agreed = replace(agreed, language=user.language)
    if agreed.proposal is not None and agreed.phase is not Phase.CLAIM_CONFIRM:
        agreed = replace(agreed, proposal=None)
    if agreed.choices and agreed.phase is not Phase.CLAIM_STATIONS:
        agreed = replace(agreed, choices=())
    if agreed.pending_hour is not None and agreed.phase is not Phase.CLAIM_TIME:
        agreed = replace(agreed, pending_hour=None)
    return agreed


def _reconcile_phase(
    state: ConversationState | None,
    user: UserView | None,
    config: ConversationConfig,
    message_sid: str,
) -> ConversationState:
    home = home_phase(user, config)
    if state is None:
        return ConversationState(
            phase=home, conversation_id=derived_id("conversation", message_sid)
        )
    allowed = allowed_phases(user)
    if state.phase not in allowed or (state.phase in CLAIM_PHASES and state.claim is None):
        return ConversationState(
            phase=home, conversation_id=state.conversation_id, language=state.language
        )
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


def claim_open(state: ConversationState | None) -> bool:
    """Whether ``state`` holds an unfinished claim (the shell keeps a marker of it)."""
    return state is not None and state.claim is not None


def is_idle(state: ConversationState, now: datetime, config: ConversationConfig) -> bool:
    """Whether the conversation ended in silence (its state outlived it in Redis)."""
    idle = timedelta(seconds=config.conversation_idle_seconds)
    return state.saved_at is not None and now - state.saved_at >= idle


def step(
    state: ConversationState | None,
    inbound: Inbound,
    now: datetime,
    config: ConversationConfig,
) -> Decision:
    """One inbound message: the new state, what the shell must do, and the reply."""
    user = inbound.user
    if user is not None and user.blocked:
        return Decision(None, (), say(user.language, R.BLOCKED, email=config.support_email))
    dropped = False
    if state is not None and is_idle(state, now, config):
        dropped = state.phase in CLAIM_PHASES and state.claim is not None
        state = None  # a new conversation, as if the state had expired
    elif state is None and inbound.claim_dropped and user is not None and user.verified:
        dropped = True  # the state expired; its marker said a claim was in progress
    current = reconcile(state, user, config, inbound.message_sid)
    command = parse_command(inbound.text, current.phase)
    turn = Turn(
        state=current,
        inbound=inbound,
        now=now,
        config=config,
        command=command,
        returning=state is None and user is not None,
    )
    if state is None and user is None:
        if command is Command.YES and not inbound.media:
            return accept_terms(turn, unseen=True)  # the terms were never shown: say where
        return Decision(current, (), welcome(config))
    if dropped:
        decision = _after_a_dropped_claim(turn)
    else:
        decision = _dispatch(turn)
    if turn.returning:
        started = StartConversation(current.conversation_id)
        return decision._replace(effects=(started, *decision.effects))
    return decision


def _after_a_dropped_claim(turn: Turn) -> Decision:
    hours = max(1, turn.config.conversation_idle_seconds // 3600)
    notice = turn.say(R.CLAIM_DROPPED, hours=hours)
    if turn.command is None and not turn.inbound.media:
        return turn.stay(f"{notice} {turn.say(R.CLAIM_AGAIN)}")
    decision = _dispatch(turn)
    return decision._replace(reply=f"{notice}\n{decision.reply}")


def _dispatch(turn: Turn) -> Decision:
    phase = turn.state.phase
    if turn.inbound.media:
        return MEDIA[phase](turn)
    command = turn.command
    if phase is Phase.CLAIM_CONFIRM and turn.state.proposal is not None:
        if command is Command.YES:
            return accept_proposal(turn)
        if command is Command.NO:
            return decline_proposal(turn)
        turn = replace(turn, state=replace(turn.state, proposal=None))
    if command is not None:
        handler = TRANSITIONS.get((phase, command))
        if handler is None and command in PHASE_COMMANDS.get(phase, ALL_COMMANDS):
            handler = COMMANDS.get(command)
        if handler is not None:
            return handler(turn)
    if phase in STEP_PHASES:
        wanted = requested_field(turn.inbound.text, phase)
        if wanted is not None:
            return go_to_field(turn, wanted)
    return ANSWERS[phase](turn)


def resolve(
    state: ConversationState,
    outcome: Outcome,
    base_reply: str,
    config: ConversationConfig,
) -> Decision:
    """The rest of a turn once the shell knows how an OTP send or check went."""
    language = state.language
    if isinstance(outcome, OtpSendOutcome):
        if outcome.result is OtpSendResult.SENT:
            text = say(language, R.OTP_SENT, minutes=max(1, config.otp_ttl_seconds // 60))
            replaced = state.replaced_codes
            if outcome.replaced is not None:
                replaced = (*replaced, outcome.replaced)[-MAX_REPLACED_CODES:]
            state = replace(state, resend_after=None, replaced_codes=replaced)
        elif outcome.result is OtpSendResult.RATE_LIMITED and outcome.retry_at is not None:
            text = say(
                language,
                R.OTP_RATE_LIMITED_UNTIL,
                time=_clock(outcome.retry_at),
                email=config.support_email,
            )
            state = replace(state, resend_after=outcome.retry_at)
        elif outcome.result is OtpSendResult.RATE_LIMITED:
            text = say(language, R.OTP_RATE_LIMITED)
        else:
            text = say(language, R.OTP_FAILED)
        return Decision(state, (), f"{base_reply} {text}".strip())
    check = outcome.check
    if check.result is OtpResult.VERIFIED:
        verified = replace(
            state, phase=Phase.MENU, resume_phase=None, resend_after=None, replaced_codes=()
        )
        return Decision(
            verified,
            (MarkVerified(),),
            say(language, R.VERIFIED) + "\n" + _menu_text(language),
        )
    if check.result is OtpResult.WRONG:
        if check.attempts_left == 1:
            text = say(language, R.OTP_WRONG_ONE)
        else:
            text = say(language, R.OTP_WRONG_MANY, count=check.attempts_left)
        return Decision(state, (), f"{text} {prompt(state, config)}")
    if check.result is OtpResult.REPLACED:
        return Decision(state, (), f"{say(language, R.OTP_REPLACED)} {prompt(state, config)}")
    text = say(
        language,
        {
            OtpResult.EXHAUSTED: R.OTP_EXHAUSTED,
            OtpResult.EXPIRED: R.OTP_EXPIRED,
            OtpResult.NO_CODE: R.OTP_NO_CODE,
        }[check.result],
    )
    if state.resend_after is not None:  # the last RESEND was refused: say until when
        hint = say(
            language,
            R.HELP_RESEND_LATER,
            time=_clock(state.resend_after),
            email=config.support_email,
        )
    else:
        hint = say(language, R.OTP_RESEND_HINT)
    return Decision(state, (), f"{text} {hint}")


# --- handlers: registration and verification -------------------------------------------


def show_terms(turn: Turn) -> Decision:
    return turn.stay(welcome(turn.config, turn.language))


def accept_terms(turn: Turn, *, unseen: bool = False) -> Decision:
    version = turn.config.terms_version
    waiting = replace(turn.state, phase=Phase.AWAITING_CODE)
    if turn.user is None:
        effects: tuple[Effect, ...] = (
            RegisterUser(version),
            StartConversation(turn.state.conversation_id),
            SendOtpSms(),
        )
        if turn.language != DEFAULT_LANGUAGE:  # chosen before signing up
            effects = (*effects[:2], SetLanguage(turn.language), effects[2])
    else:
        effects = (AcceptTerms(version), SendOtpSms())
    text = (
        turn.say(R.TERMS_ACCEPTED_UNSEEN, terms_url=turn.config.terms_url)
        if unseen
        else turn.say(R.TERMS_ACCEPTED)
    )
    return turn.move(waiting, text, *effects)


def decline_terms(turn: Turn) -> Decision:
    return turn.stay(turn.say(R.TERMS_DECLINED))


def resend_code(turn: Turn) -> Decision:
    if turn.state.resend_after is not None and _resend_refused(turn.state, turn.now):
        return turn.stay(
            turn.say(
                R.OTP_RATE_LIMITED_UNTIL,
                time=_clock(turn.state.resend_after),
                email=turn.config.support_email,
            )
        )
    return turn.stay("", SendOtpSms())


_CODE_IN_TEXT = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){5}(?![0-9])")


def code_in(text: str) -> str | None:
    """The 6-digit code in "224641", "224 641", "code is 224641", "my code is 224-641":
    the text's only digits, six of them, written together."""
    found = _CODE_IN_TEXT.findall(text)
    digits = [character for character in text if character.isascii() and character.isdigit()]
    if len(found) != 1 or len(digits) != 6:
        return None
    code = "".join(character for character in found[0] if character.isdigit())
    return code if is_code_shaped(code) else None


def answer_code(turn: Turn) -> Decision:
    code = code_in(turn.inbound.text)
    if code is not None:
        return turn.stay("", VerifyOtp(code, turn.state.replaced_codes))
    candidate = "".join(turn.inbound.text.split()).replace("-", "")
    if candidate.isdigit():
        return turn.stay(f"{turn.say(R.CODE_DIGITS)} {turn.prompt()}")
    greeting = turn.say(R.WELCOME_BACK_SHORT if turn.returning else R.CODE_WAITING)
    return turn.stay(f"{greeting} {turn.prompt()}")


def resend_elsewhere(turn: Turn) -> Decision:
    if turn.user is not None and turn.user.verified:
        return turn.stay(f"{turn.say(R.ALREADY_VERIFIED)} {turn.prompt()}")
    return turn.stay(turn.prompt())


# --- handlers: anywhere ---------------------------------------------------------------


def show_help(turn: Turn) -> Decision:
    return turn.stay(_help_text(turn))


def show_menu(turn: Turn) -> Decision:
    user = turn.user
    if user is None or not user.verified:
        return turn.stay(turn.prompt())
    if turn.state.phase in CLAIM_PHASES:
        return turn.stay(f"{turn.say(R.IN_A_CLAIM)} {turn.prompt()}")
    if turn.state.phase is Phase.CONFIRM_ERASURE:
        return turn.stay(turn.prompt())
    return turn.stay(_menu_text(turn.language))


def _tail(turn: Turn, state: ConversationState | None = None) -> str:
    """After a side command, remind the user where they were (not in the plain menu)."""
    where = state or turn.state
    return "" if where.phase is Phase.MENU else turn.prompt(where)


def notifications_off(turn: Turn) -> Decision:
    if turn.user is None:
        return turn.stay(f"{turn.say(R.STOP_GUEST)} {turn.prompt()}")
    text = turn.say(R.NOTIFICATIONS_OFF)
    return turn.stay(f"{text} {_tail(turn)}".strip(), SetNotifications(enabled=False))


def notifications_on(turn: Turn) -> Decision:
    if turn.user is None:
        return show_terms(turn)
    text = turn.say(R.NOTIFICATIONS_ON)
    return turn.stay(f"{text} {_tail(turn)}".strip(), SetNotifications(enabled=True))


LANGUAGES: Mapping[Command, str] = {Command.ENGLISH: "en-GB", Command.CYMRAEG: "cy-GB"}


def choose_language(turn: Turn) -> Decision:
    assert turn.command is not None  # noqa: S101 - only reached through a language keyword
    language = LANGUAGES[turn.command]
    chosen = replace(turn.state, language=language)
    key = R.LANGUAGE_SET if is_complete(language) else R.LANGUAGE_PARTIAL
    text = say(language, key)
    effects: tuple[Effect, ...] = () if turn.user is None else (SetLanguage(language),)
    tail = _tail(turn, chosen) if turn.user is not None else prompt(chosen, turn.config)
    return turn.move(chosen, f"{text} {tail}".strip(), *effects)


def ask_erasure(turn: Turn) -> Decision:
    if turn.user is None:
        return turn.stay(f"{turn.say(R.NO_DATA)} {turn.prompt()}")
    resume = (
        turn.state.resume_phase if turn.state.phase is Phase.CONFIRM_ERASURE else turn.state.phase
    )
    confirming = replace(turn.state, phase=Phase.CONFIRM_ERASURE, resume_phase=resume)
    return turn.move(confirming, turn.say(R.ERASURE_ASK))


def erase(turn: Turn) -> Decision:
    return Decision(None, (EraseUser(),), turn.say(R.ERASED))


def keep_data(turn: Turn) -> Decision:
    if not turn.inbound.media and is_affirmative(turn.inbound.text):
        return turn.stay(turn.say(R.ERASURE_SAY_YES))
    back = turn.state.resume_phase or home_phase(turn.user, turn.config)
    resumed = replace(turn.state, phase=back, resume_phase=None)
    return turn.move(resumed, f"{turn.say(R.KEPT_DATA)} {turn.prompt(resumed)}")


def needs_verification(turn: Turn) -> Decision:
    return turn.stay(f"{turn.say(R.NEEDS_VERIFICATION)} {turn.prompt()}")


def request_status(turn: Turn) -> Decision:
    if turn.user is None or not turn.user.verified:
        return needs_verification(turn)
    if not turn.user.notifications_enabled:
        # The answer comes as a notification, which we would not send: say so instead.
        return turn.stay(f"{turn.say(R.STATUS_NOTIFICATIONS_OFF)} {_tail(turn)}".strip())
    text = turn.say(R.STATUS_REQUESTED)
    return turn.stay(f"{text} {_tail(turn)}".strip(), RequestClaimStatus())


def menu_answer(turn: Turn) -> Decision:
    started = claim_from_text(turn)
    if started is not None:
        return started
    opener = R.WELCOME_BACK if turn.returning else R.NOT_UNDERSTOOD
    return turn.stay(turn.say(opener) + "\n" + _menu_text(turn.language))


# --- handlers: the claim ---------------------------------------------------------------

STEP_PHASES = (Phase.CLAIM_DATE, Phase.CLAIM_STATIONS, Phase.CLAIM_TIME, Phase.CLAIM_TICKET)
FIELD_NAMES: Mapping[Phase, R] = {
    Phase.CLAIM_DATE: R.FIELD_DATE,
    Phase.CLAIM_STATIONS: R.FIELD_STATIONS,
    Phase.CLAIM_TIME: R.FIELD_TIME,
    Phase.CLAIM_TICKET: R.FIELD_TICKET,
}
_FIELD_WORDS: Mapping[str, Phase] = {
    "date": Phase.CLAIM_DATE,
    "day": Phase.CLAIM_DATE,
    "station": Phase.CLAIM_STATIONS,
    "stations": Phase.CLAIM_STATIONS,
    "time": Phase.CLAIM_TIME,
    "departure": Phase.CLAIM_TIME,
    "ticket": Phase.CLAIM_TICKET,
    "photo": Phase.CLAIM_TICKET,
}
_CHANGE_WORDS = frozenset({"change", "wrong", "fix", "edit", "correct", "update", "redo"})
_WORD = re.compile(r"[a-z0-9']+")
MAX_REQUEST_WORDS = 8


def requested_field(text: str, phase: Phase) -> Phase | None:
    """The answer a passenger asks to change: "change date", "the time is wrong", and at
    the summary also a bare "time" or its number there (1 to 4)."""
    words = _WORD.findall(normalise_text(text))
    if not words or len(words) > MAX_REQUEST_WORDS:
        return None
    if phase is Phase.CLAIM_CONFIRM and len(words) == 1 and words[0] in ("1", "2", "3", "4"):
        return STEP_PHASES[int(words[0]) - 1]
    fields = {_FIELD_WORDS[word] for word in words if word in _FIELD_WORDS}
    if len(fields) != 1:
        return None
    asked = any(word in _CHANGE_WORDS for word in words)
    if asked or (phase is Phase.CLAIM_CONFIRM and len(words) <= 2):
        return fields.pop()
    return None


def start_claim(turn: Turn) -> Decision:
    if turn.user is None or not turn.user.verified:
        return needs_verification(turn)
    draft = ClaimDraft(journey_id=turn.derived_id("journey"), ticket=turn.state.recent_ticket)
    claiming = replace(turn.state, phase=Phase.CLAIM_DATE, claim=draft, recent_ticket=())
    kept = f" {turn.say(R.CLAIM_TICKET_ADDED)}" if draft.ticket else ""
    return turn.move(claiming, f"{turn.say(R.CLAIM_STARTED)}{kept} {turn.prompt(claiming)}")


# Words that make a message with only a date a claim ("my train yesterday was late").
_CLAIM_WORDS = frozenset({"claim", "delay", "delayed", "late", "cancelled", "canceled"})


def claim_from_text(turn: Turn) -> Decision | None:
    """A claim started by one free-text message ("my train from kings cross to leeds
    yesterday was 40 mins late"): take what it gives, ask only for what is missing. None
    when it names no journey (both stations resolved, or a date and a word of delay)."""
    user, text = turn.user, turn.inbound.text
    if user is None or not user.verified or len(text) > 4 * claims.MAX_ANSWER_CHARS:
        return None
    found = claims.extract_journey(text, now=turn.now, window_days=turn.config.claim_window_days)
    dated = isinstance(found.journey_date, date)
    if found.stations is None and not (
        dated and set(_WORD.findall(normalise_text(text))) & _CLAIM_WORDS
    ):
        return None
    draft = ClaimDraft(journey_id=turn.derived_id("journey"), ticket=turn.state.recent_ticket)
    claiming = replace(turn.state, phase=Phase.CLAIM_DATE, claim=draft, recent_ticket=())
    notes = [turn.say(R.CLAIM_STARTED)]
    if draft.ticket:
        notes.append(turn.say(R.CLAIM_TICKET_ADDED))
    if isinstance(found.journey_date, claims.Rejected):
        notes.append(turn.reason(found.journey_date))
    if found.stations is None:
        draft, claiming, said = _take_when(turn, draft, claiming, found)
        notes.extend(said)
        return _advance(replace(turn, state=claiming), draft, " ".join(notes), base=claiming)
    # The date first; the time once the stations are read back.
    draft, claiming, said = _take_when(turn, draft, claiming, replace(found, departure=None))
    notes.extend(said)
    started = replace(turn, state=claiming)
    answer = found.stations
    sides = (
        (ORIGIN, answer.origin, answer.origin_match),
        (DESTINATION, answer.destination, answer.destination_match),
    )
    later = replace(found, journey_date=None, stations=None)
    decision = _take_stations(started, sides, later, base=claiming)
    return decision._replace(reply=f"{' '.join(notes)} {decision.reply}")


def already_claiming(turn: Turn) -> Decision:
    return turn.stay(f"{turn.say(R.ALREADY_CLAIMING)} {turn.prompt()}")


def cancel_claim(turn: Turn) -> Decision:
    home = replace(turn.state, phase=Phase.MENU, claim=None, proposal=None)
    return turn.move(home, f"{turn.say(R.CLAIM_CANCELLED)} {turn.prompt(home)}")


def _draft(turn: Turn) -> ClaimDraft:
    assert turn.state.claim is not None  # noqa: S101 - reconcile() guarantees it in a claim
    return turn.state.claim


def _advance(
    turn: Turn, draft: ClaimDraft, said: str, base: ConversationState | None = None
) -> Decision:
    """Store the answer and ask the next missing thing (the summary once it was shown);
    ``base``: the state to move from, when the answer changed more than the draft."""
    if draft.journey_date is None:
        phase = Phase.CLAIM_DATE
    elif draft.origin is None or draft.destination is None:
        phase = Phase.CLAIM_STATIONS
    elif draft.departure is None:
        phase = Phase.CLAIM_TIME
    elif not draft.ticket and not draft.reviewed and turn.state.phase is not Phase.CLAIM_CONFIRM:
        phase = Phase.CLAIM_TICKET
    else:
        phase, draft = Phase.CLAIM_CONFIRM, replace(draft, reviewed=True)
    draft = replace(draft, duplicate_warned=False)
    moved = replace(base or turn.state, phase=phase, claim=draft, proposal=None)
    if phase is not Phase.CLAIM_STATIONS:
        moved = replace(moved, choices=())
    if phase is not Phase.CLAIM_TIME:
        moved = replace(moved, pending_hour=None)
    return turn.move(moved, f"{said} {turn.prompt(moved)}".strip())


def _ask_again(turn: Turn, reason: str) -> Decision:
    options = f" {turn.say(R.CLAIM_OPTIONS)}" if turn.state.phase in STEP_PHASES else ""
    return turn.stay(f"{reason} {turn.prompt()}{options}".strip())


def _current_value(draft: ClaimDraft, phase: Phase) -> str | None:
    if phase is Phase.CLAIM_DATE and draft.journey_date is not None:
        return claims.describe_date(draft.journey_date)
    if phase is Phase.CLAIM_STATIONS and draft.origin and draft.destination:
        return f"{_station_name(draft, ORIGIN)} to {_station_name(draft, DESTINATION)}"
    if phase is Phase.CLAIM_TIME and draft.departure is not None:
        return claims.describe_time(draft.departure)
    return None


def go_to_field(turn: Turn, phase: Phase, *, back: bool = False) -> Decision:
    """Ask one question again; its answer is kept until a new one replaces it."""
    moved = replace(turn.state, phase=phase, proposal=None)
    field_name = turn.say(FIELD_NAMES[phase])
    text = turn.say(R.BACK_TO if back else R.CHANGE_FIELD, field=field_name)
    value = _current_value(_draft(turn), phase)
    if value is not None:
        text += " " + turn.say(R.NOW_SET, value=value)
    return turn.move(moved, f"{text} {turn.prompt(moved)}")


_PREVIOUS: Mapping[Phase, Phase] = {
    Phase.CLAIM_STATIONS: Phase.CLAIM_DATE,
    Phase.CLAIM_TIME: Phase.CLAIM_STATIONS,
    Phase.CLAIM_TICKET: Phase.CLAIM_TIME,
}


def go_back(turn: Turn) -> Decision:
    phase = turn.state.phase
    if phase is Phase.CLAIM_CONFIRM:
        return offer_changes(turn)
    previous = _PREVIOUS.get(phase)
    if previous is None:
        return turn.stay(f"{turn.say(R.FIRST_QUESTION)} {turn.prompt()}")
    return go_to_field(turn, previous, back=True)


def keep_answer(turn: Turn) -> Decision:
    """SKIP at a question already answered (after BACK or "change X"): keep that answer."""
    draft = _draft(turn)
    if _current_value(draft, turn.state.phase) is None:
        return _ask_again(turn, "")
    return _advance(turn, draft, "")


def offer_changes(turn: Turn) -> Decision:
    return turn.move(replace(turn.state, proposal=None), turn.say(R.WHAT_TO_CHANGE))


def _moved_departure(
    departure: datetime | None, journey_date: date, now: datetime
) -> datetime | None:
    """The same wall-clock departure on another day, when that time exists and is past."""
    if departure is None:
        return None
    moved = claims.departure_at(journey_date, departure.astimezone(claims.UK).time(), now=now)
    return None if isinstance(moved, claims.Rejected) else moved


def answer_date(turn: Turn) -> Decision:
    found = claims.parse_journey_date(
        turn.inbound.text, now=turn.now, window_days=turn.config.claim_window_days
    )
    if isinstance(found, claims.Rejected):
        return _ask_again(turn, turn.reason(found))
    draft = _draft(turn)
    draft = replace(
        draft, journey_date=found, departure=_moved_departure(draft.departure, found, turn.now)
    )
    return _advance(turn, draft, turn.say(R.GOT_DATE, date=claims.describe_date(found)))


# --- stations, resolved against the GB list (issue 20) ----------------------------------


def _with_side(
    draft: ClaimDraft, side: str, typed: str | None, station: gb.Station | None = None
) -> ClaimDraft:
    """``draft`` with one side set (resolved when ``station`` is given) or cleared."""
    crs = station.crs if station is not None else None
    name = station.name if station is not None else None
    if side == ORIGIN:
        return replace(draft, origin=typed, origin_crs=crs, origin_name=name)
    return replace(draft, destination=typed, destination_crs=crs, destination_name=name)


def _awaited_side(state: ConversationState) -> str | None:
    """The side a lone station name answers: the one offered as a choice, else the one
    still missing while the other is kept."""
    if state.choices:
        return state.choices[0].side
    draft = state.claim
    if draft is None:
        return None
    if draft.origin is not None and draft.destination is None:
        return DESTINATION
    if draft.destination is not None and draft.origin is None:
        return ORIGIN
    return None


def _picked(choice: StationChoice, text: str) -> gb.Resolution | None:
    """The candidate a number picks ("2"), as a match."""
    from shared import stations as gb

    words = normalise_text(text)
    if words.isdigit() and 1 <= int(words) <= len(choice.candidates):
        station = gb.by_crs(choice.candidates[int(words) - 1][0])
        if station is not None:
            return gb.Match(station, choice.typed)
    return None


def _take_stations(
    turn: Turn,
    sides: tuple[tuple[str, str, gb.Resolution], ...],
    answer: claims.StationAnswer | claims.JourneyDraft | None = None,
    base: ConversationState | None = None,
) -> Decision:
    """Store what each typed name resolved to: a match is kept and read back, several
    candidates are offered as a numbered choice, none is said and asked again; the other
    side is kept. A date or time in the same answer answers those questions."""
    from shared import stations as gb

    state = base or turn.state
    draft = state.claim or _draft(turn)
    answered = {side for side, _, _ in sides}
    choices = [choice for choice in state.choices if choice.side not in answered]
    notes: list[str] = []
    for side, typed, found in sides:
        if isinstance(found, gb.Match):
            draft = _with_side(draft, side, typed, found.station)
        elif isinstance(found, gb.Choice):
            draft = _with_side(draft, side, None)
            candidates = tuple((station.crs, station.name) for station in found.candidates)
            choices.append(StationChoice(side, typed, candidates))
        else:
            draft = _with_side(draft, side, None)
            notes.append(turn.say(R.STATION_NOT_FOUND, typed=typed))
    if draft.origin_crs is not None and draft.origin_crs == draft.destination_crs:
        draft = _with_side(draft, sides[-1][0], None)
        notes.append(turn.say(R.REASON_SAME_STATIONS))
    choices.sort(key=lambda choice: choice.side != ORIGIN)
    state = replace(state, claim=draft, choices=tuple(choices))
    if draft.origin is not None and draft.destination is not None:
        notes.append(
            turn.say(
                R.GOT_STATIONS,
                origin=_station_name(draft, ORIGIN),
                destination=_station_name(draft, DESTINATION),
            )
        )
        draft, state, more = _take_when(turn, draft, state, answer)
        notes.extend(more)
    return _advance(turn, draft, " ".join(notes), base=state)


def _take_when(
    turn: Turn,
    draft: ClaimDraft,
    state: ConversationState,
    answer: claims.StationAnswer | claims.JourneyDraft | None,
) -> tuple[ClaimDraft, ConversationState, list[str]]:
    """A date or time given with another answer, taken as the answer to its question."""
    notes: list[str] = []
    if answer is None:
        return draft, state, notes
    if isinstance(answer.journey_date, date):
        moved = _moved_departure(draft.departure, answer.journey_date, turn.now)
        draft = replace(draft, journey_date=answer.journey_date, departure=moved)
        notes.append(turn.say(R.GOT_DATE, date=claims.describe_date(answer.journey_date)))
    given = answer.departure
    if isinstance(given, claims.AmbiguousHour):
        state = replace(state, pending_hour=(given.hour, given.minute))
        draft = replace(draft, departure=None)
    elif isinstance(given, time) and draft.journey_date is not None:
        departure = claims.departure_at(draft.journey_date, given, now=turn.now)
        if isinstance(departure, datetime):
            draft = replace(draft, departure=departure)
            notes.append(turn.say(R.GOT_TIME, time=claims.describe_time(departure)))
        else:
            notes.append(turn.reason(departure))
    return draft, replace(state, claim=draft), notes


def answer_stations(turn: Turn) -> Decision:
    from shared import stations as gb

    text, state = turn.inbound.text, turn.state
    side = _awaited_side(state)
    if side is not None and len(text) <= claims.MAX_STATION_CHARS:
        single = _picked(state.choices[0], text) if state.choices else None
        if single is None:
            single = gb.resolve(text, fuzzy=False)
        if not isinstance(single, gb.NoMatch):
            return _take_stations(turn, ((side, " ".join(text.split()), single),))
    found = claims.parse_station_answer(
        text, now=turn.now, window_days=turn.config.claim_window_days
    )
    if isinstance(found, claims.StationAnswer):
        sides = (
            (ORIGIN, found.origin, found.origin_match),
            (DESTINATION, found.destination, found.destination_match),
        )
        return _take_stations(turn, sides, found, base=replace(state, choices=()))
    if side is not None and len(text) <= claims.MAX_STATION_CHARS:
        typed = " ".join(text.split())
        return _take_stations(turn, ((side, typed, gb.resolve(typed)),))
    return _ask_again(turn, turn.reason(found))


def _take_time(turn: Turn, draft: ClaimDraft, found: time) -> Decision:
    if draft.journey_date is None:  # pragma: no cover - the phases ask for the date first
        return _advance(turn, draft, "")
    departure = claims.departure_at(draft.journey_date, found, now=turn.now)
    if isinstance(departure, claims.Rejected):
        return _ask_again(turn, turn.reason(departure))
    said = turn.say(R.GOT_TIME, time=claims.describe_time(departure))
    cleared = replace(turn.state, pending_hour=None)
    return _advance(turn, replace(draft, departure=departure), said, base=cleared)


def answer_time(turn: Turn) -> Decision:
    draft, pending = _draft(turn), turn.state.pending_hour
    if pending is not None:
        settled = claims.resolve_half_day(pending[0], turn.inbound.text, minute=pending[1])
        if settled is not None:
            return _take_time(turn, draft, settled)
    found = claims.parse_departure_time(turn.inbound.text)
    if isinstance(found, claims.AmbiguousHour):
        asking = replace(turn.state, pending_hour=(found.hour, found.minute))
        return turn.move(asking, turn.prompt(asking))
    if isinstance(found, claims.Rejected):
        return _ask_again(turn, turn.reason(found))
    return _take_time(turn, draft, found)


def answer_ticket(turn: Turn) -> Decision:
    return _ask_again(turn, turn.say(R.NEED_TICKET))


def skip_ticket(turn: Turn) -> Decision:
    draft = replace(_draft(turn), reviewed=True)
    confirming = replace(turn.state, phase=Phase.CLAIM_CONFIRM, claim=draft)
    return turn.move(confirming, turn.prompt(confirming))


_TIME_IN_TEXT = re.compile(
    r"(?<![0-9/.:])(?:[0-9]{1,2}[:.][0-9]{2}(?:\s*[ap]\.?m\.?)?|[0-9]{1,2}\s*[ap]\.?m\.?)"
    r"(?![0-9/:])"
)


def time_in(text: str) -> time | None:
    """A clock time the text plainly gives: the whole answer, or one inside a sentence."""
    found = claims.parse_departure_time(text)
    if isinstance(found, time):
        return found
    inside = _TIME_IN_TEXT.findall(text.casefold())
    if len(inside) == 1:
        found = claims.parse_departure_time(inside[0])
        if isinstance(found, time):
            return found
    return None


def _propose(turn: Turn, changed: ClaimDraft, key: R, value: str) -> Decision:
    if changed == _draft(turn):
        return turn.stay(f"{turn.say(R.UNCHANGED)} {turn.prompt()}")
    return turn.move(replace(turn.state, proposal=changed), turn.say(key, value=value))


def answer_confirmation(turn: Turn) -> Decision:
    """Free text at the summary: a number or "change X" asks that again; a value that
    plainly answers one question is offered as a correction; anything else, the choices."""
    text, draft = turn.inbound.text, _draft(turn)
    if len(text) <= claims.MAX_ANSWER_CHARS:
        wanted = requested_field(text, Phase.CLAIM_CONFIRM)
        given_time = time_in(text)
        if given_time is not None and draft.journey_date is not None:
            departure = claims.departure_at(draft.journey_date, given_time, now=turn.now)
            if isinstance(departure, claims.Rejected):
                return turn.stay(f"{turn.reason(departure)} {turn.say(R.WHAT_TO_CHANGE)}")
            value = claims.describe_time(departure)
            return _propose(turn, replace(draft, departure=departure), R.PROPOSE_TIME, value)
        given_date = claims.parse_journey_date(
            text, now=turn.now, window_days=turn.config.claim_window_days
        )
        if isinstance(given_date, date):
            changed = replace(
                draft,
                journey_date=given_date,
                departure=_moved_departure(draft.departure, given_date, turn.now),
            )
            value = claims.describe_date(given_date)
            return _propose(turn, changed, R.PROPOSE_DATE, value)
        if wanted is not None:
            return go_to_field(turn, wanted)
        if set(_WORD.findall(normalise_text(text))) & _CHANGE_WORDS:
            return offer_changes(turn)
        stations = claims.parse_station_answer(
            text, now=turn.now, window_days=turn.config.claim_window_days
        )
        if isinstance(stations, claims.StationAnswer) and _one_matched(stations):
            return _correct_stations(turn, stations)
    return turn.stay(f"{turn.say(R.NOT_UNDERSTOOD)} {turn.prompt()}")


def _one_matched(found: claims.StationAnswer) -> bool:
    """At the summary, a pair counts only when one name is plainly a station."""
    from shared import stations as gb

    return isinstance(found.origin_match, gb.Match) or isinstance(found.destination_match, gb.Match)


def _correct_stations(turn: Turn, found: claims.StationAnswer) -> Decision:
    """A station pair typed at the summary: offered as a correction when both names
    resolve; otherwise asked at the stations question (its answer returns here)."""
    from shared import stations as gb

    origin, destination = found.origin_match, found.destination_match
    if isinstance(origin, gb.Match) and isinstance(destination, gb.Match):
        changed = _with_side(_draft(turn), ORIGIN, found.origin, origin.station)
        changed = _with_side(changed, DESTINATION, found.destination, destination.station)
        value = f"{origin.station.name} to {destination.station.name}"
        return _propose(turn, changed, R.PROPOSE_STATIONS, value)
    asking = replace(turn.state, phase=Phase.CLAIM_STATIONS, proposal=None, choices=())
    sides = ((ORIGIN, found.origin, origin), (DESTINATION, found.destination, destination))
    return _take_stations(replace(turn, state=asking), sides, base=asking)


def accept_proposal(turn: Turn) -> Decision:
    proposal = turn.state.proposal
    assert proposal is not None  # noqa: S101 - _dispatch routes here only with one
    return _advance(turn, proposal, turn.say(R.CHANGED))


def decline_proposal(turn: Turn) -> Decision:
    unchanged = replace(turn.state, proposal=None)
    return turn.move(unchanged, f"{turn.say(R.UNCHANGED)} {turn.prompt(unchanged)}")


def journey_fingerprint(
    journey_date: date, origin: str, destination: str, departure: datetime
) -> str:
    """The same journey however it was typed: day, stations (case and spaces aside), time,
    as a SHA-256 digest, so the record the database keeps of it reads as no journey."""
    names = (" ".join(name.casefold().split()) for name in (origin, destination))
    journey = "|".join((journey_date.isoformat(), *names, claims.describe_time(departure)))
    return hashlib.sha256(journey.encode()).hexdigest()


def _resolved_fields(draft: ClaimDraft) -> dict[str, str]:
    """The four resolved-station fields of journey.submitted 1.1, or none (D90)."""
    fields = {
        "origin_crs": draft.origin_crs,
        "destination_crs": draft.destination_crs,
        "origin_name": draft.origin_name,
        "destination_name": draft.destination_name,
    }
    if any(value is None for value in fields.values()):
        return {}
    return {key: value for key, value in fields.items() if value is not None}


def _day_of(moment: datetime) -> str:
    return claims.describe_date(moment.astimezone(claims.UK).date())


def submit_claim(turn: Turn) -> Decision:
    draft = _draft(turn)
    if (
        draft.journey_date is None
        or draft.origin is None
        or draft.destination is None
        or draft.departure is None
    ):
        return _advance(turn, draft, turn.say(R.SOMETHING_MISSING))
    fingerprint = journey_fingerprint(
        draft.journey_date,
        draft.origin_crs or draft.origin,
        draft.destination_crs or draft.destination,
        draft.departure,
    )
    window = timedelta(days=turn.config.claim_window_days)
    sent_before = turn.inbound.user.recent_journeys if turn.inbound.user else ()
    before = [
        when for seen, when in sent_before if seen == fingerprint and turn.now - when <= window
    ]
    if before and not draft.duplicate_warned:
        warned = replace(turn.state, claim=replace(draft, duplicate_warned=True))
        return turn.move(warned, turn.say(R.DUPLICATE_JOURNEY, when=_day_of(before[-1])))
    home = replace(
        turn.state,
        phase=Phase.MENU,
        claim=None,
        proposal=None,
    )
    submitted = SubmitJourney(
        journey_id=draft.journey_id,
        journey_date=draft.journey_date,
        origin=draft.origin,
        destination=draft.destination,
        departure=draft.departure,
        ticket=draft.ticket,
        fingerprint=fingerprint,
        **_resolved_fields(draft),
    )
    return turn.move(
        home,
        turn.say(
            R.SUBMITTED,
            time=claims.describe_time(draft.departure),
            origin=_station_name(draft, ORIGIN),
            destination=_station_name(draft, DESTINATION),
            date=claims.describe_date(draft.journey_date),
        ),
        submitted,
    )


# --- handlers: photos and PDFs ----------------------------------------------------------

# WhatsApp sends stickers as WebP images; cameras and screenshots give JPEG, PNG or HEIC.
STICKER_TYPES = frozenset({"image/webp"})


def _kind(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def is_ticket_type(content_type: str) -> bool:
    kind = _kind(content_type)
    if kind in STICKER_TYPES:
        return False
    return kind.startswith("image/") or kind == "application/pdf"


def _ticket_files(turn: Turn) -> tuple[tuple[Media, ...], int]:
    accepted = tuple(item for item in turn.inbound.media if is_ticket_type(item.content_type))
    return accepted, len(turn.inbound.media) - len(accepted)


def _skipped(turn: Turn, count: int) -> str:
    if not count:
        return ""
    if count == 1:
        return " " + turn.say(R.SKIPPED_ONE)
    return " " + turn.say(R.SKIPPED_MANY, count=count)


def _not_a_ticket(turn: Turn) -> Decision:
    stickers = all(_kind(item.content_type) in STICKER_TYPES for item in turn.inbound.media)
    return _ask_again(turn, turn.say(R.STICKER if stickers else R.NOT_A_TICKET))


def ticket_in_claim(turn: Turn) -> Decision:
    accepted, skipped = _ticket_files(turn)
    if not accepted:
        return _not_a_ticket(turn)
    draft = _draft(turn)
    # Asked again for the ticket after the summary: the new files replace the old.
    replacing = turn.state.phase is Phase.CLAIM_TICKET and draft.reviewed
    kept = () if replacing else draft.ticket
    attached = replace(draft, ticket=(kept + accepted)[:MAX_TICKET_FILES])
    published = PublishTicket(turn.derived_id("ticket"), accepted, draft.journey_id)
    decision = _advance(turn, attached, turn.say(R.GOT_TICKET) + _skipped(turn, skipped))
    return decision._replace(effects=(published,))


def ticket_outside_claim(turn: Turn) -> Decision:
    accepted, skipped = _ticket_files(turn)
    if not accepted:
        return _not_a_ticket(turn)
    files = (turn.state.recent_ticket + accepted)[:MAX_TICKET_FILES]
    kept = replace(turn.state, recent_ticket=files)
    if len(files) > len(accepted):
        text = turn.say(R.TICKET_OUTSIDE_CLAIM_MORE, count=len(files))
    else:
        text = turn.say(R.TICKET_OUTSIDE_CLAIM)
    return turn.move(
        kept,
        f"{text}{_skipped(turn, skipped)}",
        PublishTicket(turn.derived_id("ticket"), accepted),
    )


def ticket_too_early(turn: Turn) -> Decision:
    return turn.stay(f"{turn.say(R.TICKET_TOO_EARLY)} {turn.prompt()}")


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
    (Phase.CLAIM_CONFIRM, Command.NO): offer_changes,
    **{(phase, Command.CANCEL): cancel_claim for phase in CLAIM_PHASES},
    **{(phase, Command.CLAIM): already_claiming for phase in CLAIM_PHASES},
    **{(phase, Command.BACK): go_back for phase in CLAIM_PHASES},
    **{
        (phase, Command.SKIP): keep_answer
        for phase in (Phase.CLAIM_DATE, Phase.CLAIM_STATIONS, Phase.CLAIM_TIME)
    },
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
    Command.ENGLISH: choose_language,
    Command.CYMRAEG: choose_language,
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


def _draft_json(draft: ClaimDraft | None) -> dict[str, Any] | None:
    if draft is None:
        return None
    return {
        "journey_id": str(draft.journey_id),
        "journey_date": draft.journey_date.isoformat() if draft.journey_date else None,
        "origin": draft.origin,
        "destination": draft.destination,
        "departure": draft.departure.isoformat() if draft.departure else None,
        "ticket": _media_json(draft.ticket),
        "reviewed": draft.reviewed,
        "duplicate_warned": draft.duplicate_warned,
        "origin_crs": draft.origin_crs,
        "origin_name": draft.origin_name,
        "destination_crs": draft.destination_crs,
        "destination_name": draft.destination_name,
    }


def state_to_json(state: ConversationState, saved_at: datetime | None = None) -> str:
    """``saved_at``: the time of the message that saved it (else the state's own), kept
    beside the state for the shell's freshness check (shared/services/inbound.py) and the
    core's idle check (``is_idle``). Fields added since version 1 are optional on reading,
    so a state saved before them still loads."""
    body: dict[str, Any] = {
        "v": STATE_VERSION,
        "phase": state.phase.value,
        "conversation_id": str(state.conversation_id),
        "resume_phase": state.resume_phase.value if state.resume_phase else None,
        "recent_ticket": _media_json(state.recent_ticket),
        "claim": _draft_json(state.claim),
        "language": state.language,
        "proposal": _draft_json(state.proposal),
        "resend_after": state.resend_after.isoformat() if state.resend_after else None,
        "replaced_codes": list(state.replaced_codes),
        "choices": [
            {"side": choice.side, "typed": choice.typed, "candidates": choice.candidates}
            for choice in state.choices
        ],
        "pending_hour": list(state.pending_hour) if state.pending_hour else None,
    }
    saved = saved_at or state.saved_at
    if saved is not None:
        body["saved_at"] = saved.isoformat()
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
    if saved_at is not None and saved_at.tzinfo is None:
        saved_at = None
    return _state_from_body(body, saved_at), saved_at


class _Unreadable(ValueError):
    pass


def _aware(raw: Any) -> datetime | None:
    if not raw:
        return None
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise _Unreadable
    return moment


def _draft_from(raw_claim: Any) -> ClaimDraft | None:
    if raw_claim is None:
        return None
    departure = _aware(raw_claim.get("departure"))
    journey_date = raw_claim.get("journey_date")
    return ClaimDraft(
        journey_id=UUID(raw_claim["journey_id"]),
        journey_date=date.fromisoformat(journey_date) if journey_date else None,
        origin=raw_claim.get("origin"),
        destination=raw_claim.get("destination"),
        departure=departure.astimezone(claims.UK) if departure else None,
        ticket=_media_from(raw_claim.get("ticket") or []),
        reviewed=bool(raw_claim.get("reviewed", False)),
        duplicate_warned=bool(raw_claim.get("duplicate_warned", False)),
        origin_crs=_text_or_none(raw_claim.get("origin_crs")),
        origin_name=_text_or_none(raw_claim.get("origin_name")),
        destination_crs=_text_or_none(raw_claim.get("destination_crs")),
        destination_name=_text_or_none(raw_claim.get("destination_name")),
    )


def _text_or_none(raw: Any) -> str | None:
    return None if raw is None else str(raw)


def _choices_from(raw: Any) -> tuple[StationChoice, ...]:
    return tuple(
        StationChoice(
            side=ORIGIN if item["side"] == ORIGIN else DESTINATION,
            typed=str(item["typed"]),
            candidates=tuple((str(crs), str(name)) for crs, name in item["candidates"]),
        )
        for item in raw or ()
    )


def _hour_from(raw: Any) -> tuple[int, int] | None:
    if not raw:
        return None
    hour, minute = (int(part) for part in raw)
    return hour, minute


def _state_from_body(body: Any, saved_at: datetime | None = None) -> ConversationState | None:
    try:
        if body.get("v") != STATE_VERSION:
            return None
        resume = body.get("resume_phase")
        language = body.get("language") or DEFAULT_LANGUAGE
        return ConversationState(
            phase=Phase(body["phase"]),
            conversation_id=UUID(body["conversation_id"]),
            claim=_draft_from(body.get("claim")),
            resume_phase=Phase(resume) if resume else None,
            recent_ticket=_media_from(body.get("recent_ticket") or []),
            language=str(language),
            proposal=_draft_from(body.get("proposal")),
            resend_after=_aware(body.get("resend_after")),
            replaced_codes=tuple(str(item) for item in body.get("replaced_codes") or ()),
            saved_at=saved_at,
            choices=_choices_from(body.get("choices")),
            pending_hour=_hour_from(body.get("pending_hour")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
