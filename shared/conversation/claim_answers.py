"""The answers to a claim's questions and what each stores: the date, the stations
(resolved against the GB list, issue 20), the time (with its am/pm question), and a claim
told in one message (``claim_from_text``). An answer may carry another question's value
too ("Leeds to York at 8am"): ``take_when`` takes it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from shared import claim as claims
from shared.conversation.claim_flow import advance, ask_again, moved_departure
from shared.conversation.model import (
    DESTINATION,
    ORIGIN,
    ClaimDraft,
    ConversationState,
    Decision,
    Phase,
    StationChoice,
)
from shared.conversation.texts import station_name
from shared.conversation.turn import Turn
from shared.conversation.words import mentions_a_delay, normalise_text
from shared.replies import R

if TYPE_CHECKING:  # the station list loads on the first stations answer (D87)
    from shared import stations as gb


def answer_date(turn: Turn) -> Decision:
    found = claims.parse_journey_date(
        turn.inbound.text, now=turn.now, window_days=turn.config.claim_window_days
    )
    if isinstance(found, claims.Rejected):
        return ask_again(turn, turn.reason(found))
    draft = turn.draft
    draft = replace(
        draft, journey_date=found, departure=moved_departure(draft.departure, found, turn.now)
    )
    return advance(turn, draft, turn.say(R.GOT_DATE, date=claims.describe_date(found)))


# --- stations, resolved against the GB list (issue 20) -----------------------------------


def with_side(
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


def take_stations(
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
    draft = state.claim or turn.draft
    answered = {side for side, _, _ in sides}
    choices = [choice for choice in state.choices if choice.side not in answered]
    notes: list[str] = []
    for side, typed, found in sides:
        if isinstance(found, gb.Match):
            draft = with_side(draft, side, typed, found.station)
        elif isinstance(found, gb.Choice):
            draft = with_side(draft, side, None)
            candidates = tuple((station.crs, station.name) for station in found.candidates)
            choices.append(StationChoice(side, typed, candidates))
        else:
            draft = with_side(draft, side, None)
            notes.append(turn.say(R.STATION_NOT_FOUND, typed=typed))
    if draft.origin_crs is not None and draft.origin_crs == draft.destination_crs:
        draft = with_side(draft, sides[-1][0], None)
        notes.append(turn.say(R.REASON_SAME_STATIONS))
    choices.sort(key=lambda choice: choice.side != ORIGIN)
    state = replace(state, claim=draft, choices=tuple(choices))
    if draft.origin is not None and draft.destination is not None:
        notes.append(
            turn.say(
                R.GOT_STATIONS,
                origin=station_name(draft, ORIGIN),
                destination=station_name(draft, DESTINATION),
            )
        )
        draft, state, more = take_when(turn, draft, state, answer)
        notes.extend(more)
    return advance(turn, draft, " ".join(notes), base=state)


def take_when(
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
        moved = moved_departure(draft.departure, answer.journey_date, turn.now)
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
            return take_stations(turn, ((side, " ".join(text.split()), single),))
    found = claims.parse_station_answer(
        text, now=turn.now, window_days=turn.config.claim_window_days
    )
    if isinstance(found, claims.StationAnswer):
        sides = (
            (ORIGIN, found.origin, found.origin_match),
            (DESTINATION, found.destination, found.destination_match),
        )
        return take_stations(turn, sides, found, base=replace(state, choices=()))
    if side is not None and len(text) <= claims.MAX_STATION_CHARS:
        typed = " ".join(text.split())
        return take_stations(turn, ((side, typed, gb.resolve(typed)),))
    return ask_again(turn, turn.reason(found))


# --- the time, with its am/pm question ---------------------------------------------------


def _take_time(turn: Turn, draft: ClaimDraft, found: time) -> Decision:
    if draft.journey_date is None:  # pragma: no cover - the phases ask for the date first
        return advance(turn, draft, "")
    departure = claims.departure_at(draft.journey_date, found, now=turn.now)
    if isinstance(departure, claims.Rejected):
        return ask_again(turn, turn.reason(departure))
    said = turn.say(R.GOT_TIME, time=claims.describe_time(departure))
    cleared = replace(turn.state, pending_hour=None)
    return advance(turn, replace(draft, departure=departure), said, base=cleared)


def answer_time(turn: Turn) -> Decision:
    draft, pending = turn.draft, turn.state.pending_hour
    if pending is not None:
        settled = claims.resolve_half_day(pending[0], turn.inbound.text, minute=pending[1])
        if settled is not None:
            return _take_time(turn, draft, settled)
    found = claims.parse_departure_time(turn.inbound.text)
    if isinstance(found, claims.AmbiguousHour):
        asking = replace(turn.state, pending_hour=(found.hour, found.minute))
        return turn.move(asking, turn.prompt(asking))
    if isinstance(found, claims.Rejected):
        return ask_again(turn, turn.reason(found))
    return _take_time(turn, draft, found)


# --- a claim told in one message -----------------------------------------------------------


def claim_from_text(turn: Turn) -> Decision | None:
    """A claim started by one free-text message ("my train from kings cross to leeds
    yesterday was 40 mins late"): take what it gives, ask only for what is missing. None
    when it names no journey (both stations resolved, or a date and a word of delay)."""
    user, text = turn.user, turn.inbound.text
    if user is None or not user.verified or len(text) > 4 * claims.MAX_ANSWER_CHARS:
        return None
    found = claims.extract_journey(text, now=turn.now, window_days=turn.config.claim_window_days)
    dated = isinstance(found.journey_date, date)
    if found.stations is None and not (dated and mentions_a_delay(text)):
        return None
    draft = ClaimDraft(journey_id=turn.derived_id("journey"), ticket=turn.state.recent_ticket)
    claiming = replace(turn.state, phase=Phase.CLAIM_DATE, claim=draft, recent_ticket=())
    notes = [turn.say(R.CLAIM_STARTED)]
    if draft.ticket:
        notes.append(turn.say(R.CLAIM_TICKET_ADDED))
    if isinstance(found.journey_date, claims.Rejected):
        notes.append(turn.reason(found.journey_date))
    if found.stations is None:
        draft, claiming, said = take_when(turn, draft, claiming, found)
        notes.extend(said)
        return advance(replace(turn, state=claiming), draft, " ".join(notes), base=claiming)
    # The date first; the time once the stations are read back.
    draft, claiming, said = take_when(turn, draft, claiming, replace(found, departure=None))
    notes.extend(said)
    started = replace(turn, state=claiming)
    answer = found.stations
    sides = (
        (ORIGIN, answer.origin, answer.origin_match),
        (DESTINATION, answer.destination, answer.destination_match),
    )
    later = replace(found, journey_date=None, stations=None)
    decision = take_stations(started, sides, later, base=claiming)
    return decision._replace(reply=f"{' '.join(notes)} {decision.reply}")
