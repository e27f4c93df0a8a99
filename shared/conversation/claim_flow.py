"""Moving through a claim: starting and cancelling it, asking the next missing question
(``advance``), going back or to a named question, keeping an answer, and the question
asked again after a refusal. The answers themselves are in claim_answers.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime

from shared import claim as claims
from shared.conversation.model import (
    STEP_PHASES,
    ClaimDraft,
    ConversationState,
    Decision,
    Effect,
    Phase,
)
from shared.conversation.registration import needs_verification
from shared.conversation.texts import current_value
from shared.conversation.turn import Turn
from shared.replies import R

FIELD_NAMES: Mapping[Phase, R] = {
    Phase.CLAIM_DATE: R.FIELD_DATE,
    Phase.CLAIM_STATIONS: R.FIELD_STATIONS,
    Phase.CLAIM_TIME: R.FIELD_TIME,
    Phase.CLAIM_TICKET: R.FIELD_TICKET,
}


def start_claim(turn: Turn) -> Decision:
    if turn.user is None or not turn.user.verified:
        return needs_verification(turn)
    draft = ClaimDraft(journey_id=turn.derived_id("journey"), ticket=turn.state.recent_ticket)
    claiming = replace(turn.state, phase=Phase.CLAIM_DATE, claim=draft, recent_ticket=())
    kept = f" {turn.say(R.CLAIM_TICKET_ADDED)}" if draft.ticket else ""
    return turn.move(claiming, f"{turn.say(R.CLAIM_STARTED)}{kept} {turn.prompt(claiming)}")


def already_claiming(turn: Turn) -> Decision:
    return turn.stay(f"{turn.say(R.ALREADY_CLAIMING)} {turn.prompt()}")


def cancel_claim(turn: Turn) -> Decision:
    home = replace(turn.state, phase=Phase.MENU, claim=None, proposal=None)
    return turn.move(home, f"{turn.say(R.CLAIM_CANCELLED)} {turn.prompt(home)}")


def advance(
    turn: Turn,
    draft: ClaimDraft,
    said: str,
    *effects: Effect,
    base: ConversationState | None = None,
) -> Decision:
    """Store the answer and ask the next missing thing (the summary once it was shown);
    ``effects``: what the answer asks done (a ticket's PublishTicket); ``base``: the state
    to move from, when the answer changed more than the draft."""
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
    return turn.move(moved, f"{said} {turn.prompt(moved)}".strip(), *effects)


def ask_again(turn: Turn, reason: str) -> Decision:
    options = f" {turn.say(R.CLAIM_OPTIONS)}" if turn.state.phase in STEP_PHASES else ""
    return turn.stay(f"{reason} {turn.prompt()}{options}".strip())


def go_to_field(turn: Turn, phase: Phase, *, back: bool = False) -> Decision:
    """Ask one question again; its answer is kept until a new one replaces it."""
    moved = replace(turn.state, phase=phase, proposal=None)
    field_name = turn.say(FIELD_NAMES[phase])
    text = turn.say(R.BACK_TO if back else R.CHANGE_FIELD, field=field_name)
    value = current_value(turn.draft, phase)
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
    draft = turn.draft
    if current_value(draft, turn.state.phase) is None:
        return ask_again(turn, "")
    return advance(turn, draft, "")


def offer_changes(turn: Turn) -> Decision:
    return turn.move(replace(turn.state, proposal=None), turn.say(R.WHAT_TO_CHANGE))


def moved_departure(
    departure: datetime | None, journey_date: date, now: datetime
) -> datetime | None:
    """The same wall-clock departure on another day, when that time exists and is past."""
    if departure is None:
        return None
    moved = claims.departure_at(journey_date, departure.astimezone(claims.UK).time(), now=now)
    return None if isinstance(moved, claims.Rejected) else moved
