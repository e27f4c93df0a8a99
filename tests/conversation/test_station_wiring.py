"""Issue 20: the station resolver and the answer parsers wired into the conversation, as
table tests over the pure core. Each case failed on the code before the wiring."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time

import pytest

from shared import conversation as c
from shared import replies
from shared.adapters.conversation_store import state_from_json, state_to_json
from shared.claim import UK
from shared.replies import R
from tests.conversation.test_conversation import DRAFT, DRAFTS, VERIFIED, kinds, state, step

STATIONS = state(c.Phase.CLAIM_STATIONS)
REVIEWED = replace(DRAFT, reviewed=True)


def claim_of(decision: c.Decision) -> c.ClaimDraft:
    assert decision.state is not None and decision.state.claim is not None
    return decision.state.claim


def phase_of(decision: c.Decision) -> c.Phase | None:
    return decision.state.phase if decision.state else None


# (answer) -> (origin as typed, origin CRS, destination as typed, destination CRS, read back)
RESOLVED = [
    ("I went from Kings Cross to Leeds", "Kings Cross", "KGX", "Leeds", "LDS",
     "Got it: London Kings Cross to Leeds."),
    ("Kings X to Edinbrugh", "Kings X", "KGX", "Edinbrugh", "EDB",
     "Got it: London Kings Cross to Edinburgh Waverley."),
    ("London Euston to Manc Picc", "London Euston", "EUS", "Manc Picc", "MAN",
     "Got it: London Euston to Manchester Piccadilly."),
    ("Leeds York", "Leeds", "LDS", "York", "YRK", "Got it: Leeds to York."),
    ("Leeds-York", "Leeds", "LDS", "York", "YRK", "Got it: Leeds to York."),
    ("from Leeds to York", "Leeds", "LDS", "York", "YRK", "Got it: Leeds to York."),
]  # fmt: skip


@pytest.mark.parametrize(("text", "origin", "origin_crs", "dest", "dest_crs", "said"), RESOLVED)
def test_each_station_is_resolved_and_read_back_with_the_lists_name(
    text: str, origin: str, origin_crs: str, dest: str, dest_crs: str, said: str
) -> None:
    decision = step(STATIONS, text)
    draft = claim_of(decision)
    assert (draft.origin, draft.origin_crs, draft.destination, draft.destination_crs) == (
        origin,
        origin_crs,
        dest,
        dest_crs,
    )
    assert decision.reply.startswith(said) and phase_of(decision) is c.Phase.CLAIM_TIME


def test_a_time_in_the_stations_answer_is_not_asked_again() -> None:
    decision = step(STATIONS, "Leeds to York at 08:02")
    assert claim_of(decision).destination == "York"
    assert claim_of(decision).departure == datetime(2026, 11, 23, 8, 2, tzinfo=UK)
    assert phase_of(decision) is c.Phase.CLAIM_TICKET and "Got it: 08:02." in decision.reply


def test_a_date_in_the_stations_answer_answers_the_date() -> None:
    decision = step(STATIONS, "Leeds to York on Sunday")
    assert claim_of(decision).journey_date is not None
    assert claim_of(decision).journey_date.isoformat() == "2026-11-22"  # type: ignore[union-attr]
    assert "Sunday 22 November 2026" in decision.reply


def test_several_candidates_are_a_numbered_choice_and_the_other_station_is_kept() -> None:
    offered = step(STATIONS, "Newport to Leeds")
    assert phase_of(offered) is c.Phase.CLAIM_STATIONS
    assert 'Which "Newport" did you mean?' in offered.reply and "\n2 " in offered.reply
    assert claim_of(offered).destination_crs == "LDS" and claim_of(offered).origin is None
    assert offered.state is not None and len(offered.state.choices[0].candidates) >= 2
    picked = step(offered.state, "2")
    second = offered.state.choices[0].candidates[1]
    assert claim_of(picked).origin_crs == second[0] and claim_of(picked).destination_crs == "LDS"
    assert picked.reply.startswith(f"Got it: {second[1]} to Leeds.")
    assert phase_of(picked) is c.Phase.CLAIM_TIME and picked.state is not None
    assert picked.state.choices == ()


def test_a_choice_can_be_answered_by_typing_the_name_again() -> None:
    offered = step(STATIONS, "Newport to Leeds")
    assert offered.state is not None
    typed = step(offered.state, "Newport (South Wales)")
    assert claim_of(typed).origin_crs == "NWP" and phase_of(typed) is c.Phase.CLAIM_TIME


def test_no_match_says_so_and_asks_again_keeping_the_other_station() -> None:
    refused = step(STATIONS, "Leeds to Qxzzqv")
    assert 'I couldn\'t find a station called "Qxzzqv"' in refused.reply
    assert "Which station did you travel to? (From: Leeds.)" in refused.reply
    assert claim_of(refused).origin_crs == "LDS" and claim_of(refused).destination is None
    assert phase_of(refused) is c.Phase.CLAIM_STATIONS and refused.state is not None
    answered = step(refused.state, "York")
    assert claim_of(answered).destination_crs == "YRK"
    assert answered.reply.startswith("Got it: Leeds to York.")
    retyped = step(refused.state, "Harrogate to York")  # a whole new answer still works
    assert (claim_of(retyped).origin_crs, claim_of(retyped).destination_crs) == ("HGT", "YRK")


def test_a_station_pair_typed_at_the_summary_is_offered_with_the_lists_names() -> None:
    at_summary = state(c.Phase.CLAIM_CONFIRM, claim=REVIEWED)
    offered = step(at_summary, "Leeds to Harrogate")
    assert "Change the stations to Leeds to Harrogate? Reply YES or NO." in offered.reply
    assert offered.state is not None
    taken = step(offered.state, "YES")
    assert claim_of(taken).destination_crs == "HGT" and phase_of(taken) is c.Phase.CLAIM_CONFIRM


def test_a_choice_typed_at_the_summary_is_asked_at_the_stations_question() -> None:
    at_summary = state(c.Phase.CLAIM_CONFIRM, claim=REVIEWED)
    offered = step(at_summary, "Leeds to Newport")
    assert phase_of(offered) is c.Phase.CLAIM_STATIONS and 'Which "Newport"' in offered.reply
    assert offered.state is not None
    picked = step(offered.state, "1")
    assert phase_of(picked) is c.Phase.CLAIM_CONFIRM  # the answer returns to the summary


def test_the_summary_and_submission_carry_the_resolved_stations() -> None:
    answered = step(STATIONS, "Kings X to Edinbrugh at 08:00")
    assert answered.state is not None
    summary = step(answered.state, "SKIP")
    assert "From: London Kings Cross" in summary.reply and "To: Edinburgh Waverley" in summary.reply
    assert summary.state is not None
    sent = step(summary.state, "YES")
    (journey,) = sent.effects
    assert isinstance(journey, c.SubmitJourney)
    assert (journey.origin, journey.origin_crs, journey.origin_name) == (
        "Kings X",
        "KGX",
        "London Kings Cross",
    )
    assert (journey.destination_crs, journey.destination_name) == ("EDB", "Edinburgh Waverley")
    assert "London Kings Cross to Edinburgh Waverley" in sent.reply


def test_a_draft_saved_before_the_codes_still_submits_as_typed() -> None:
    sent = step(state(c.Phase.CLAIM_CONFIRM, claim=REVIEWED), "YES")
    assert kinds(sent) == ["SubmitJourney"]
    (journey,) = sent.effects
    assert isinstance(journey, c.SubmitJourney) and journey.origin_crs is None


# --- "Is that 8am or 8pm?" -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "answer", "expected"),
    [
        ("about 8", "pm", time(20, 0)),
        ("8", "PM", time(20, 0)),
        ("quarter past 8", "evening", time(20, 15)),
        ("half 5", "morning", time(5, 30)),
        ("8", "am", time(8, 0)),
        ("8", "8pm", time(20, 0)),
    ],
)
def test_am_or_pm_is_asked_and_the_short_answer_settles_it(
    first: str, answer: str, expected: time
) -> None:
    asked = step(state(c.Phase.CLAIM_TIME), first)
    assert phase_of(asked) is c.Phase.CLAIM_TIME and "am or" in asked.reply
    assert asked.state is not None and asked.state.pending_hour is not None
    settled = step(asked.state, answer)
    departure = claim_of(settled).departure
    assert departure is not None and departure.timetz().replace(tzinfo=None) == expected
    assert phase_of(settled) is c.Phase.CLAIM_TICKET
    assert settled.state is not None and settled.state.pending_hour is None


def test_an_hour_in_the_stations_answer_is_asked_am_or_pm() -> None:
    asked = step(STATIONS, "Leeds to York at 8")
    assert phase_of(asked) is c.Phase.CLAIM_TIME and "Is that 8am or 8pm?" in asked.reply
    assert asked.state is not None
    settled = step(asked.state, "evening")
    assert claim_of(settled).departure == datetime(2026, 11, 23, 20, 0, tzinfo=UK)


def test_choices_and_a_pending_hour_survive_the_json_round_trip() -> None:
    offered = step(STATIONS, "Newport to Leeds")
    asked = step(state(c.Phase.CLAIM_TIME), "about 8")
    assert offered.state is not None and offered.state.choices
    assert asked.state is not None and asked.state.pending_hour == (8, 0)
    for decision in (offered, asked):
        assert decision.state is not None
        assert state_from_json(state_to_json(decision.state)) == decision.state
    assert DRAFTS[c.Phase.CLAIM_STATIONS].origin_crs is None  # old drafts load without codes


# --- one message names the journey ------------------------------------------------------

MENU = state(c.Phase.MENU)

# (first message) -> (phase it leads to, what the reply reads back)
ONE_MESSAGE = [
    ("my train from kings cross to leeds yesterday was 40 mins late", c.Phase.CLAIM_TIME,
     "Got it: Monday 23 November 2026. Got it: London Kings Cross to Leeds. What time"),
    ("I want to make a claim from Leeds to York yesterday at 08:02", c.Phase.CLAIM_TICKET,
     "Got it: Leeds to York. Got it: 08:02. Please send a photo"),
    ("my train yesterday was late", c.Phase.CLAIM_STATIONS,
     "Got it: Monday 23 November 2026. Which stations"),
    ("Kings X to Edinbrugh", c.Phase.CLAIM_DATE,
     "Got it: London Kings Cross to Edinburgh Waverley. Which day"),
    ("my train from Leeds to York yesterday at 8 was late", c.Phase.CLAIM_TIME,
     "Got it: Leeds to York. Is that 8am or 8pm?"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "phase", "said"), ONE_MESSAGE)
def test_one_message_starts_a_claim_with_what_it_gives(
    text: str, phase: c.Phase, said: str
) -> None:
    decision = step(MENU, text)
    assert phase_of(decision) is phase and said in decision.reply
    assert decision.reply.startswith("Let's claim for your delayed train")


def test_what_one_message_left_out_is_asked_and_nothing_else() -> None:
    started = step(MENU, "Kings X to Edinbrugh")
    assert started.state is not None
    dated = step(started.state, "yesterday")
    assert phase_of(dated) is c.Phase.CLAIM_TIME
    assert claim_of(dated).origin_crs == "KGX" and claim_of(dated).destination_crs == "EDB"
    for text in ("hello there", "Leeds to Qxzzqv yesterday", "what is this"):  # no journey
        not_one = step(MENU, text)
        assert phase_of(not_one) is c.Phase.MENU and "didn't follow" in not_one.reply


# --- the parsers' refusal reasons come from the catalogue ---------------------------------


def test_every_refusal_of_the_parsers_is_worded_by_the_catalogue() -> None:
    """D126: no module of shared/claim/ builds reason text of its own: each refusal is
    ``refused(R.<key>, ...)`` (or the am/pm question, keyed too)."""
    import ast
    import inspect
    from pathlib import Path

    from shared import claim

    trees = {
        path.name: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(Path(inspect.getfile(claim)).parent.glob("*.py"))
    }
    assert {"answers.py", "dates.py", "times.py", "station_answer.py"} <= trees.keys()
    worded_here = [
        (module, node.lineno)
        for module, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) in ("Rejected", "AmbiguousHour")
        and node.args
        and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))
    ]
    assert worded_here == []
    keyed = [
        node
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "refused"
    ]
    assert len(keyed) >= 15  # the scan found the parsers (18 refusals since parse_stations went)


@pytest.mark.parametrize(
    ("phase", "text", "key", "template", "welsh", "english"),
    [
        (
            c.Phase.CLAIM_TIME,
            "blah",
            R.REASON_TIME_UNREAD,
            "Doeddwn i ddim yn gallu darllen yr amser yna.",
            "Doeddwn i ddim yn gallu darllen yr amser yna.",
            "I couldn't read that time.",
        ),
        (  # the date read back, in a translation's words (issue 20: value-bearing reasons)
            c.Phase.CLAIM_DATE,
            "12/01/2026",
            R.REASON_DATE_TOO_OLD,
            "Mae {typed} yn golygu {date}, dros {days} diwrnod yn ôl.",
            "Mae 12/01/2026 yn golygu Monday 12 January 2026, dros 28 diwrnod yn ôl.",
            "12/01/2026 reads as Monday 12 January 2026, more than 28 days ago",
        ),
    ],
)
def test_a_refusal_reason_is_said_in_the_passengers_language(
    monkeypatch: pytest.MonkeyPatch,
    phase: c.Phase,
    text: str,
    key: R,
    template: str,
    welsh: str,
    english: str,
) -> None:
    monkeypatch.setitem(replies.CATALOGUES, "cy", {key: template})
    asked = step(state(phase, language="cy-GB"), text, replace(VERIFIED, language="cy-GB"))
    assert asked.reply.startswith(welsh)
    assert step(state(phase), text).reply.startswith(english)
