"""The texts the bot builds from the catalogue (shared/replies): the prompt for each phase,
the claim's summary, the menu, help, the station choice and the am/pm question. Every
text is a catalogue entry in the passenger's language; this module only fills them in.
"""

from __future__ import annotations

from datetime import datetime

from shared import claim as claims
from shared.conversation.model import (
    DEFAULT_LANGUAGE,
    DESTINATION,
    ORIGIN,
    ClaimDraft,
    ConversationConfig,
    ConversationState,
    Phase,
    StationChoice,
    UserView,
)
from shared.replies import R, say


def welcome(config: ConversationConfig, language: str = DEFAULT_LANGUAGE) -> str:
    return say(language, R.WELCOME, terms_url=config.terms_url)


def menu_text(language: str) -> str:
    return say(language, R.MENU)


def clock(moment: datetime) -> str:
    return f"{moment.astimezone(claims.UK):%H:%M}"


def summary(draft: ClaimDraft, language: str) -> str:
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
        origin=station_name(draft, ORIGIN) or "?",
        destination=station_name(draft, DESTINATION) or "?",
        time=claims.describe_time(draft.departure) if draft.departure else "?",
        ticket=ticket,
    )


def station_name(draft: ClaimDraft, side: str) -> str | None:
    """The station list's name for a side, else the name as typed."""
    if side == ORIGIN:
        return draft.origin_name or draft.origin
    return draft.destination_name or draft.destination


def choice_text(choice: StationChoice, language: str) -> str:
    options = "\n".join(
        say(language, R.STATION_OPTION, number=number, name=name)
        for number, (_, name) in enumerate(choice.candidates, start=1)
    )
    return say(language, R.STATION_CHOICE, typed=choice.typed, options=options)


def stations_prompt(state: ConversationState) -> str:
    language, draft = state.language, state.claim
    if state.choices:
        return choice_text(state.choices[0], language)
    if draft is not None and draft.origin is not None and draft.destination is None:
        return say(language, R.PROMPT_DESTINATION, origin=station_name(draft, ORIGIN))
    if draft is not None and draft.destination is not None and draft.origin is None:
        return say(language, R.PROMPT_ORIGIN, destination=station_name(draft, DESTINATION))
    return say(language, R.PROMPT_STATIONS)


def am_or_pm(hour: int, minute: int, language: str) -> str:
    shown = f"{hour}" if minute == 0 else f"{hour}:{minute:02d}"
    return say(language, R.AM_OR_PM, time=shown)


def resend_refused(state: ConversationState, now: datetime | None) -> bool:
    return now is not None and state.resend_after is not None and now < state.resend_after


def retry_text(language: str, key: R, retry_at: datetime, config: ConversationConfig) -> str:
    """``key`` said with the time a new code can be sent and where to write meanwhile."""
    return say(language, key, time=clock(retry_at), email=config.support_email)


def current_value(draft: ClaimDraft, phase: Phase) -> str | None:
    """The answer the draft holds for ``phase``'s question, as read back; None if none."""
    if phase is Phase.CLAIM_DATE and draft.journey_date is not None:
        return claims.describe_date(draft.journey_date)
    if phase is Phase.CLAIM_STATIONS and draft.origin and draft.destination:
        return f"{station_name(draft, ORIGIN)} to {station_name(draft, DESTINATION)}"
    if phase is Phase.CLAIM_TIME and draft.departure is not None:
        return claims.describe_time(draft.departure)
    return None


def prompt(
    state: ConversationState, config: ConversationConfig, now: datetime | None = None
) -> str:
    """What the user can do next, in this phase (``now``: to leave out what is refused)."""
    phase, language = state.phase, state.language
    if phase is Phase.AWAITING_TERMS:
        return say(language, R.PROMPT_TERMS, terms_url=config.terms_url)
    if phase is Phase.AWAITING_CODE:
        if state.resend_after is not None and resend_refused(state, now):
            later = retry_text(language, R.HELP_RESEND_LATER, state.resend_after, config)
            return f"{say(language, R.PROMPT_CODE_NO_RESEND)} {later}"
        return say(language, R.PROMPT_CODE)
    if phase is Phase.MENU:
        return say(language, R.PROMPT_MENU)
    if phase is Phase.CONFIRM_ERASURE:
        return say(language, R.PROMPT_ERASURE)
    if phase is Phase.CLAIM_DATE:
        return say(language, R.PROMPT_DATE)
    if phase is Phase.CLAIM_STATIONS:
        return stations_prompt(state)
    if phase is Phase.CLAIM_TIME:
        if state.pending_hour is not None:
            return am_or_pm(*state.pending_hour, language)
        return say(language, R.PROMPT_TIME)
    draft = state.claim or ClaimDraft(journey_id=state.conversation_id)
    if phase is Phase.CLAIM_TICKET:
        replacing = draft.reviewed and draft.ticket
        return say(language, R.PROMPT_TICKET_REPLACE if replacing else R.PROMPT_TICKET)
    return summary(draft, language)


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


def help_text(
    state: ConversationState, user: UserView | None, now: datetime, config: ConversationConfig
) -> str:
    """The commands this user can type (RESEND left out while refused), then, outside the
    menu, where they are."""
    audience, language = _audience(user), state.language
    refused = resend_refused(state, now)
    lines = [
        say(language, key)
        for key, who in HELP_LINES
        if audience in who and not (key is R.HELP_RESEND and refused)
    ]
    if audience == "verified":
        lines.append(say(language, R.HELP_TICKET))
    text = say(language, R.HELP_INTRO) + "\n" + "\n".join(lines)
    if state.phase is not Phase.MENU:
        text += "\n\n" + prompt(state, config, now)
    return text


# Said by the shell before a state is read (the user's language is not known yet).
RATE_LIMITED_REPLY = say(DEFAULT_LANGUAGE, R.RATE_LIMITED)
