"""The summary: corrections typed at it (offered as a proposal, YES or NO), and YES to
submit, with the warning before the same journey goes twice (D125).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, datetime, timedelta

from shared import claim as claims
from shared.conversation.claim_answers import take_stations, with_side
from shared.conversation.claim_flow import advance, go_to_field, moved_departure, offer_changes
from shared.conversation.model import (
    DESTINATION,
    ORIGIN,
    ClaimDraft,
    Decision,
    Phase,
    SubmitJourney,
)
from shared.conversation.texts import station_name
from shared.conversation.turn import Turn
from shared.conversation.words import asks_for_a_change, requested_field, time_in
from shared.replies import R


def _propose(turn: Turn, changed: ClaimDraft, key: R, value: str) -> Decision:
    if changed == turn.draft:
        return turn.stay(f"{turn.say(R.UNCHANGED)} {turn.prompt()}")
    return turn.move(replace(turn.state, proposal=changed), turn.say(key, value=value))


def answer_confirmation(turn: Turn) -> Decision:
    """Free text at the summary: a number or "change X" asks that again; a value that
    plainly answers one question is offered as a correction; anything else, the choices."""
    text, draft = turn.inbound.text, turn.draft
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
                departure=moved_departure(draft.departure, given_date, turn.now),
            )
            value = claims.describe_date(given_date)
            return _propose(turn, changed, R.PROPOSE_DATE, value)
        if wanted is not None:
            return go_to_field(turn, wanted)
        if asks_for_a_change(text):
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
        changed = with_side(turn.draft, ORIGIN, found.origin, origin.station)
        changed = with_side(changed, DESTINATION, found.destination, destination.station)
        value = f"{origin.station.name} to {destination.station.name}"
        return _propose(turn, changed, R.PROPOSE_STATIONS, value)
    asking = replace(turn.state, phase=Phase.CLAIM_STATIONS, proposal=None, choices=())
    sides = ((ORIGIN, found.origin, origin), (DESTINATION, found.destination, destination))
    return take_stations(replace(turn, state=asking), sides, base=asking)


def accept_proposal(turn: Turn) -> Decision:
    proposal = turn.state.proposal
    assert proposal is not None  # noqa: S101 - step routes here only with one
    return advance(turn, proposal, turn.say(R.CHANGED))


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
    draft = turn.draft
    if (
        draft.journey_date is None
        or draft.origin is None
        or draft.destination is None
        or draft.departure is None
    ):
        return advance(turn, draft, turn.say(R.SOMETHING_MISSING))
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
            origin=station_name(draft, ORIGIN),
            destination=station_name(draft, DESTINATION),
            date=claims.describe_date(draft.journey_date),
        ),
        submitted,
    )
