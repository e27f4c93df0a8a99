"""Issue 20 (sections 2 to 5): the conversation as passengers really type, as table tests
over the pure core. Every case below was seen; each failed on the code before it."""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shared import conversation as c
from shared import replies
from shared.adapters.conversation_store import state_from_json, state_to_json
from shared.claim import UK
from shared.events import Media
from shared.otp import OtpCheck, OtpResult
from shared.replies import R
from tests.conversation.test_conversation import (
    CONFIG,
    DRAFT,
    GUEST,
    NOW,
    PHOTO,
    UNVERIFIED,
    VERIFIED,
    kinds,
    state,
    step,
)

STICKER = Media("https://api.twilio.com/m/3", "image/webp")
PHOTO_2 = Media("https://api.twilio.com/m/4", "image/png")
REVIEWED = replace(DRAFT, reviewed=True)


def phase_of(decision: c.Decision) -> c.Phase | None:
    return decision.state.phase if decision.state else None


def claim_of(decision: c.Decision) -> c.ClaimDraft:
    assert decision.state is not None and decision.state.claim is not None
    return decision.state.claim


def summary(**fields: object) -> c.ConversationState:
    return state(c.Phase.CLAIM_CONFIRM, claim=replace(REVIEWED, **fields))  # type: ignore[arg-type]


# --- section 5: one catalogue, by language ------------------------------------------------


def test_english_has_a_text_for_every_reply() -> None:
    assert replies.is_complete("en-GB")
    assert not replies.is_complete("cy-GB")  # no Welsh yet: the catalogue is ready for it


def test_a_missing_key_or_language_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    english = replies.say("en-GB", R.MENU)
    assert replies.say("cy-GB", R.MENU) == english
    assert replies.say("pl", R.MENU) == english
    welsh = {R.NOT_UNDERSTOOD: "Sori, doeddwn i ddim yn deall hynny."}
    monkeypatch.setitem(replies.CATALOGUES, "cy", welsh)
    assert replies.say("cy-GB", R.NOT_UNDERSTOOD) == welsh[R.NOT_UNDERSTOOD]
    assert replies.say("cy-GB", R.MENU) == english


def test_replies_follow_the_users_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(replies.CATALOGUES, "cy", {R.NOT_UNDERSTOOD: "Sori."})
    welsh_user = replace(VERIFIED, language="cy-GB")
    decision = step(state(c.Phase.MENU), "hmm", welsh_user)
    assert decision.state is not None and decision.state.language == "cy-GB"
    assert decision.reply.startswith("Sori.\n")


@pytest.mark.parametrize(
    "module", sorted(path.stem for path in Path(inspect.getfile(c)).parent.glob("*.py"))
)
def test_no_reply_text_is_written_inline_in_the_core(module: str) -> None:
    source = ast.parse(inspect.getsource(importlib.import_module(f"{c.__name__}.{module}")))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(source)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    prose = [
        node.value
        for node in ast.walk(source)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and len(node.value.split()) >= 3
        and node.value[:1].isupper()  # what we say; keywords we read are lower case
        and not node.value.startswith(("(?", "["))
    ]
    assert prose == []


@pytest.mark.parametrize(
    ("text", "language", "words"),
    [("CYMRAEG", "cy-GB", "Welsh"), ("Welsh", "cy-GB", "Welsh"), ("english", "en-GB", "English")],
)
def test_a_keyword_chooses_the_language_and_it_is_saved(
    text: str, language: str, words: str
) -> None:
    decision = step(state(c.Phase.MENU), text, VERIFIED)
    assert decision.effects == (c.SetLanguage(language),)
    assert decision.state is not None and decision.state.language == language
    assert words in decision.reply


def test_a_language_chosen_before_signing_up_is_saved_with_the_user() -> None:
    chosen = step(state(c.Phase.AWAITING_TERMS), "CYMRAEG", GUEST)
    assert chosen.effects == () and chosen.state is not None
    signed_up = step(chosen.state, "YES", GUEST)
    assert kinds(signed_up) == ["RegisterUser", "StartConversation", "SetLanguage", "SendOtpSms"]


def test_the_language_choice_is_offered_in_help() -> None:
    for user in (GUEST, UNVERIFIED, VERIFIED):
        assert "CYMRAEG" in step(state(c.home_phase(user, CONFIG)), "HELP", user).reply


# --- section 3: ordinary replies ------------------------------------------------------------

YES_ANSWERS = ["Yes please", "yeah", "ok", "Y", "👍", "👍🏽", "correct", "yes!", "Yep."]


@pytest.mark.parametrize("text", YES_ANSWERS)
def test_everyday_yes_accepts_the_terms(text: str) -> None:
    decision = step(state(c.Phase.AWAITING_TERMS), text, GUEST)
    assert phase_of(decision) is c.Phase.AWAITING_CODE
    assert kinds(decision) == ["RegisterUser", "StartConversation", "SendOtpSms"]


@pytest.mark.parametrize("text", YES_ANSWERS)
def test_everyday_yes_sends_the_claim_at_the_summary(text: str) -> None:
    decision = step(summary(), text, VERIFIED)
    assert kinds(decision) == ["SubmitJourney"]


@pytest.mark.parametrize("text", ["no thanks", "Nope", "no thank you"])
def test_everyday_no(text: str) -> None:
    declined = step(state(c.Phase.AWAITING_TERMS), text, GUEST)
    assert declined.effects == () and "whenever you're ready" in declined.reply
    at_summary = step(summary(), text, VERIFIED)
    assert at_summary.effects == () and "What would you like to change?" in at_summary.reply


@pytest.mark.parametrize("text", ["ok", "👍", "Y", "yeah", "sure"])
def test_a_loose_yes_never_erases_anyone(text: str) -> None:
    decision = step(state(c.Phase.CONFIRM_ERASURE, resume_phase=c.Phase.MENU), text, VERIFIED)
    assert decision.effects == ()
    assert phase_of(decision) is c.Phase.CONFIRM_ERASURE
    assert "reply with the word YES" in decision.reply


@pytest.mark.parametrize("text", ["YES", "yes please", "Yes, please"])
def test_a_yes_erases_at_the_confirmation(text: str) -> None:
    decision = step(state(c.Phase.CONFIRM_ERASURE, resume_phase=c.Phase.MENU), text, VERIFIED)
    assert kinds(decision) == ["EraseUser"]


@pytest.mark.parametrize("text", ["YES", "yes please", "ok"])
def test_a_first_yes_from_a_new_number_signs_up_at_once(text: str) -> None:
    decision = step(None, text, GUEST)
    assert phase_of(decision) is c.Phase.AWAITING_CODE
    assert kinds(decision) == ["RegisterUser", "StartConversation", "SendOtpSms"]
    assert CONFIG.terms_url in decision.reply  # where the terms are, never shown before
    sent = c.resolve(decision.state, c.OtpSendOutcome(c.OtpSendResult.SENT), decision.reply, CONFIG)  # type: ignore[arg-type]
    assert "6-digit code" in sent.reply


@pytest.mark.parametrize(
    "text", ["code is 224641", "my code is 224 641", "224-641", "It's 224641 thanks", "224641"]
)
def test_the_code_is_read_from_a_sentence(text: str) -> None:
    decision = step(state(c.Phase.AWAITING_CODE), text, UNVERIFIED)
    assert decision.effects == (c.VerifyOtp("224641"),)


@pytest.mark.parametrize("text", ["my number is 07700 900123", "224641 or 224642", "12 34 56 78"])
def test_a_sentence_with_other_digits_is_no_code(text: str) -> None:
    decision = step(state(c.Phase.AWAITING_CODE), text, UNVERIFIED)
    assert decision.effects == ()


@pytest.mark.parametrize(
    "text", ["I want to make a claim", "Claim please", "I'd like to claim", "make a claim"]
)
def test_a_sentence_asking_for_a_claim_starts_one(text: str) -> None:
    decision = step(state(c.Phase.MENU), text, VERIFIED)
    assert phase_of(decision) is c.Phase.CLAIM_DATE


@pytest.mark.parametrize("text", ["Please delete my data", "delete all my data please"])
def test_a_sentence_asking_for_erasure_still_asks_to_confirm(text: str) -> None:
    decision = step(state(c.Phase.MENU), text, VERIFIED)
    assert phase_of(decision) is c.Phase.CONFIRM_ERASURE
    assert decision.effects == () and "Reply YES" in decision.reply


# --- section 2: one answer fixed without starting again --------------------------------------


@pytest.mark.parametrize(
    ("text", "phase"),
    [
        ("change date", c.Phase.CLAIM_DATE),
        ("1", c.Phase.CLAIM_DATE),
        ("change station", c.Phase.CLAIM_STATIONS),
        ("2", c.Phase.CLAIM_STATIONS),
        ("change time", c.Phase.CLAIM_TIME),
        ("the time is wrong", c.Phase.CLAIM_TIME),
        ("3", c.Phase.CLAIM_TIME),
        ("change ticket", c.Phase.CLAIM_TICKET),
        ("4", c.Phase.CLAIM_TICKET),
    ],
)
def test_at_the_summary_change_asks_just_that(text: str, phase: c.Phase) -> None:
    decision = step(summary(), text, VERIFIED)
    assert phase_of(decision) is phase
    assert claim_of(decision) == REVIEWED


@pytest.mark.parametrize(
    ("field", "answer", "changed"),
    [
        ("change date", "22/11/2026", {"journey_date": date(2026, 11, 22)}),
        ("change stations", "York to Leeds", {"origin": "York", "destination": "Leeds"}),
        ("change time", "9am", {"departure": datetime(2026, 11, 23, 9, 0, tzinfo=UK)}),
    ],
)
def test_a_changed_answer_returns_to_the_summary(
    field: str, answer: str, changed: dict[str, object]
) -> None:
    asked = step(summary(), field, VERIFIED)
    assert asked.state is not None
    decision = step(asked.state, answer, VERIFIED)
    assert phase_of(decision) is c.Phase.CLAIM_CONFIRM  # not on to the ticket step again
    claim = claim_of(decision)
    for name, value in changed.items():
        assert getattr(claim, name) == value
    assert claim.journey_date is not None and claim.departure is not None
    assert claim.departure.date() == claim.journey_date  # a new date keeps the same time
    assert claim.departure.strftime("%H:%M") in ("08:02", "09:00")
    assert "Please check your claim" in decision.reply


def test_a_new_ticket_asked_for_at_the_summary_replaces_the_old() -> None:
    asked = step(summary(ticket=(PHOTO,)), "change ticket", VERIFIED)
    assert asked.state is not None and "replaces" in asked.reply
    decision = step(asked.state, "", VERIFIED, media=(PHOTO_2,))
    assert phase_of(decision) is c.Phase.CLAIM_CONFIRM
    assert claim_of(decision).ticket == (PHOTO_2,)


@pytest.mark.parametrize(
    ("text", "question", "field", "value"),
    [
        (
            "17:15",
            "Change the time to 17:15?",
            "departure",
            datetime(2026, 11, 23, 17, 15, tzinfo=UK),
        ),
        (
            "the time is wrong, it was 17:15",
            "Change the time to 17:15?",
            "departure",
            datetime(2026, 11, 23, 17, 15, tzinfo=UK),
        ),
        (
            "5.15pm",
            "Change the time to 17:15?",
            "departure",
            datetime(2026, 11, 23, 17, 15, tzinfo=UK),
        ),
        (
            "Leeds to Harrogate",
            "Change the stations to Leeds to Harrogate?",
            "destination",
            "Harrogate",
        ),
        (
            "22/11/2026",
            "Change the date to Sunday 22 November 2026?",
            "journey_date",
            date(2026, 11, 22),
        ),
    ],
)
def test_a_value_typed_at_the_summary_is_offered_as_a_correction(
    text: str, question: str, field: str, value: object
) -> None:
    offered = step(summary(), text, VERIFIED)
    assert offered.effects == () and question in offered.reply
    assert phase_of(offered) is c.Phase.CLAIM_CONFIRM and claim_of(offered) == REVIEWED
    assert offered.state is not None
    accepted = step(offered.state, "YES", VERIFIED)
    assert accepted.effects == ()  # YES takes the correction; it does not send the claim
    assert getattr(claim_of(accepted), field) == value
    assert "Changed." in accepted.reply and "Please check your claim" in accepted.reply
    declined = step(offered.state, "no", VERIFIED)
    assert claim_of(declined) == REVIEWED and "left as it was" in declined.reply
    assert declined.state is not None and declined.state.proposal is None


def test_an_offered_correction_lapses_when_the_passenger_says_something_else() -> None:
    offered = step(summary(), "17:15", VERIFIED)
    assert offered.state is not None
    cancelled = step(offered.state, "CANCEL", VERIFIED)
    assert phase_of(cancelled) is c.Phase.MENU and kinds(cancelled) == []
    other = step(offered.state, "Leeds to Harrogate", VERIFIED)
    assert other.state is not None and other.state.proposal is not None
    assert other.state.proposal.destination == "Harrogate"
    assert other.state.proposal.departure == DRAFT.departure


@pytest.mark.parametrize("text", ["NO", "wrong", "back", "it's wrong"])
def test_no_at_the_summary_offers_what_to_change_and_keeps_everything(text: str) -> None:
    decision = step(summary(), text, VERIFIED)
    assert phase_of(decision) is c.Phase.CLAIM_CONFIRM and claim_of(decision) == REVIEWED
    assert "What would you like to change?" in decision.reply
    assert decision.effects == ()


@pytest.mark.parametrize(
    ("phase", "previous", "kept"),
    [
        (c.Phase.CLAIM_STATIONS, c.Phase.CLAIM_DATE, "Monday 23 November 2026"),
        (c.Phase.CLAIM_TIME, c.Phase.CLAIM_STATIONS, "Leeds to York"),
        (c.Phase.CLAIM_TICKET, c.Phase.CLAIM_TIME, "08:02"),
    ],
)
def test_back_returns_to_the_previous_question_with_its_answer_kept(
    phase: c.Phase, previous: c.Phase, kept: str
) -> None:
    before = state(phase)
    decision = step(before, "back", VERIFIED)
    assert phase_of(decision) is previous
    assert decision.state is not None and decision.state.claim == before.claim
    assert kept in decision.reply


def test_back_at_the_first_question_says_so() -> None:
    decision = step(state(c.Phase.CLAIM_DATE), "go back", VERIFIED)
    assert phase_of(decision) is c.Phase.CLAIM_DATE and "first question" in decision.reply


def test_a_question_answered_after_back_goes_on_to_the_next_missing_one() -> None:
    back = step(state(c.Phase.CLAIM_TIME), "back", VERIFIED)
    assert back.state is not None
    answered = step(back.state, "York to Leeds", VERIFIED)
    assert phase_of(answered) is c.Phase.CLAIM_TIME
    assert claim_of(answered).origin == "York"


@pytest.mark.parametrize("text", ["change date", "change the date", "wrong date"])
def test_change_date_during_the_steps_asks_the_date_again(text: str) -> None:
    decision = step(state(c.Phase.CLAIM_STATIONS), text, VERIFIED)
    assert phase_of(decision) is c.Phase.CLAIM_DATE
    assert claim_of(decision).origin is None  # not read as a station answer
    assert "Monday 23 November 2026" in decision.reply


# --- section 4: never lose work, never a dead end ----------------------------------------------


@pytest.mark.parametrize(
    ("phase", "text", "options"),
    [
        (c.Phase.CLAIM_DATE, "the other day", ("CANCEL",)),
        (c.Phase.CLAIM_STATIONS, "hmm", ("BACK", "CANCEL")),
        (c.Phase.CLAIM_TIME, "dunno", ("BACK", "CANCEL")),
        (c.Phase.CLAIM_TICKET, "no ticket", ("SKIP", "BACK", "CANCEL")),
        (c.Phase.CLAIM_CONFIRM, "hmm", ("YES", "number", "CANCEL")),
        (c.Phase.MENU, "hmm", ("CLAIM", "STATUS", "HELP")),
    ],
)
def test_an_unrecognised_message_lists_what_can_be_done_here(
    phase: c.Phase, text: str, options: tuple[str, ...]
) -> None:
    reply = step(state(phase), text, VERIFIED).reply
    for option in options:
        assert option in reply


def test_status_with_notifications_off_says_so_and_how_to_turn_them_on() -> None:
    quiet = replace(VERIFIED, notifications_enabled=False)
    decision = step(state(c.Phase.MENU), "STATUS", quiet)
    assert decision.effects == ()
    assert "notifications are off" in decision.reply and "START" in decision.reply
    assert kinds(step(state(c.Phase.MENU), "STATUS", VERIFIED)) == ["RequestClaimStatus"]


def test_two_photos_before_claim_both_belong_to_the_claim() -> None:
    first = step(state(c.Phase.MENU), "", VERIFIED, media=(PHOTO,))
    assert first.state is not None
    second = step(first.state, "", VERIFIED, media=(PHOTO_2,))
    assert second.state is not None and second.state.recent_ticket == (PHOTO, PHOTO_2)
    assert "2 ticket files" in second.reply
    claim = step(second.state, "CLAIM", VERIFIED)
    assert claim_of(claim).ticket == (PHOTO, PHOTO_2)


@pytest.mark.parametrize("phase", [c.Phase.MENU, c.Phase.CLAIM_TICKET])
def test_a_sticker_is_not_a_ticket(phase: c.Phase) -> None:
    assert not c.is_ticket_type("image/webp")
    before = state(phase)
    decision = step(before, "", VERIFIED, media=(STICKER,))
    assert decision.effects == () and "sticker" in decision.reply
    assert decision.state == before


def test_a_photo_before_verification_must_be_sent_again_and_the_reply_says_so() -> None:
    decision = step(state(c.Phase.AWAITING_CODE), "", UNVERIFIED, media=(PHOTO,))
    assert decision.effects == () and "send it again" in decision.reply


RETRY_AT = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def test_a_refused_resend_says_when_it_works_again_and_where_to_get_help() -> None:
    refused = c.resolve(
        state(c.Phase.AWAITING_CODE),
        c.OtpSendOutcome(c.OtpSendResult.RATE_LIMITED, retry_at=RETRY_AT),
        "",
        CONFIG,
    )
    assert "after 13:00" in refused.reply and CONFIG.support_email in refused.reply
    assert refused.state is not None and refused.state.resend_after == RETRY_AT
    help_text = step(refused.state, "HELP", UNVERIFIED).reply
    assert "RESEND - " not in help_text and "or RESEND" not in help_text
    assert "RESEND works again after 13:00" in help_text
    again = step(refused.state, "RESEND", UNVERIFIED)
    assert again.effects == () and "after 13:00" in again.reply
    later = c.step(refused.state, c.Inbound("SM1", "RESEND", user=UNVERIFIED), RETRY_AT, CONFIG)
    assert kinds(later) == ["SendOtpSms"]
    sent = c.resolve(later.state, c.OtpSendOutcome(c.OtpSendResult.SENT), "", CONFIG)  # type: ignore[arg-type]
    assert sent.state is not None and sent.state.resend_after is None


def test_a_claim_left_24_hours_is_dropped_and_the_next_message_says_so() -> None:
    stale = state(c.Phase.CLAIM_TIME, saved_at=NOW - timedelta(hours=25))
    decision = step(stale, "8am", VERIFIED)
    assert phase_of(decision) is c.Phase.MENU
    assert decision.state is not None and decision.state.claim is None
    assert kinds(decision) == ["StartConversation"]
    assert "unfinished claim was dropped" in decision.reply and "CLAIM" in decision.reply
    restarted = step(stale, "CLAIM", VERIFIED)
    assert phase_of(restarted) is c.Phase.CLAIM_DATE and claim_of(restarted).departure is None
    assert "dropped" in restarted.reply and "Which day" in restarted.reply


def test_a_claim_whose_state_expired_is_said_to_be_dropped_from_its_marker() -> None:
    inbound = c.Inbound("SM1", "8am", user=VERIFIED, claim_dropped=True)
    decision = c.step(None, inbound, NOW, CONFIG)
    assert phase_of(decision) is c.Phase.MENU and kinds(decision) == ["StartConversation"]
    assert "unfinished claim was dropped" in decision.reply and "CLAIM" in decision.reply
    assert not c.claim_open(decision.state) and c.claim_open(state(c.Phase.CLAIM_TIME))
    guest = c.step(None, c.Inbound("SM1", "hi", claim_dropped=True), NOW, CONFIG)
    assert "dropped" not in guest.reply


def test_a_claim_answered_within_24_hours_goes_on() -> None:
    fresh = state(c.Phase.CLAIM_TIME, saved_at=NOW - timedelta(hours=23))
    decision = step(fresh, "8am", VERIFIED)
    assert phase_of(decision) is c.Phase.CLAIM_TICKET and decision.effects == ()


def test_a_state_saved_before_these_fields_still_loads() -> None:
    old = (
        '{"claim":{"departure":null,"destination":"York","journey_date":"2026-11-23",'
        '"journey_id":"00000000-0000-0000-0000-000000000007","origin":"Leeds","ticket":[]},'
        '"conversation_id":"00000000-0000-0000-0000-000000000063","phase":"claim_time",'
        '"recent_ticket":[],"resume_phase":null,"saved_at":"2026-11-24T11:00:00+00:00","v":1}'
    )
    loaded = state_from_json(old)
    assert loaded is not None and loaded.language == "en-GB" and loaded.proposal is None
    assert loaded.claim is not None and loaded.claim.reviewed is False
    assert loaded.saved_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert state_from_json(state_to_json(loaded)) == loaded


def test_new_fields_round_trip_through_json() -> None:
    full = replace(
        summary(),
        language="cy-GB",
        proposal=replace(REVIEWED, origin="Harrogate"),
        resend_after=RETRY_AT,
        replaced_codes=("ab" * 32,),
        saved_at=NOW,
    )
    assert state_from_json(state_to_json(full)) == full


def test_an_older_code_is_checked_against_the_codes_a_resend_replaced() -> None:
    waiting = state(c.Phase.AWAITING_CODE)
    sent = c.resolve(waiting, c.OtpSendOutcome(c.OtpSendResult.SENT, replaced="h1"), "", CONFIG)
    again = c.resolve(sent.state, c.OtpSendOutcome(c.OtpSendResult.SENT, replaced="h2"), "", CONFIG)  # type: ignore[arg-type]
    assert again.state is not None and again.state.replaced_codes == ("h1", "h2")
    typed = step(again.state, "224641", UNVERIFIED)
    assert typed.effects == (c.VerifyOtp("224641", ("h1", "h2")),)
    assert "h1" not in repr(typed.effects) and "h1" not in repr(again.state)
    told = c.resolve(again.state, c.OtpCheckOutcome(OtpCheck(OtpResult.REPLACED)), "", CONFIG)
    assert "newer one replaced it" in told.reply and "no try used" in told.reply
    assert told.state == again.state
    verified = c.resolve(again.state, c.OtpCheckOutcome(OtpCheck(OtpResult.VERIFIED)), "", CONFIG)
    assert verified.state is not None and verified.state.replaced_codes == ()


def sent_with(decision: c.Decision, when: datetime) -> c.UserView:
    """VERIFIED as the database reads it back once the submitted journey is recorded."""
    (submitted,) = decision.effects
    assert isinstance(submitted, c.SubmitJourney)
    return replace(VERIFIED, recent_journeys=((submitted.fingerprint, when),))


def test_the_same_journey_sent_twice_is_warned_about_before_it_goes_again() -> None:
    sent = step(summary(), "YES", VERIFIED)
    assert kinds(sent) == ["SubmitJourney"] and sent.state is not None
    again = replace(
        sent.state, phase=c.Phase.CLAIM_CONFIRM, claim=replace(REVIEWED, origin="LEEDS")
    )
    warned = step(again, "YES", sent_with(sent, NOW))
    assert warned.effects == () and phase_of(warned) is c.Phase.CLAIM_CONFIRM
    assert "already sent a claim for this journey on Tuesday 24 November 2026" in warned.reply
    assert warned.state is not None
    assert kinds(step(warned.state, "YES", sent_with(sent, NOW))) == ["SubmitJourney"]


def test_the_journey_record_is_a_digest_of_day_stations_and_time() -> None:
    sent = step(summary(), "YES", VERIFIED)
    (submitted,) = sent.effects
    assert isinstance(submitted, c.SubmitJourney)
    assert len(submitted.fingerprint) == 64 and set(submitted.fingerprint) <= set(
        "0123456789abcdef"
    )
    assert "leeds" not in submitted.fingerprint.casefold()
    retyped = step(summary(origin=" leeds ", destination="YORK"), "YES", VERIFIED)
    assert retyped.effects[0].fingerprint == submitted.fingerprint  # type: ignore[union-attr]


def test_another_journey_or_one_sent_outside_the_window_goes_without_a_warning() -> None:
    sent = step(summary(), "YES", VERIFIED)
    assert sent.state is not None
    later_train = replace(
        sent.state,
        phase=c.Phase.CLAIM_CONFIRM,
        claim=replace(REVIEWED, departure=datetime(2026, 11, 23, 9, 2, tzinfo=UK)),
    )
    assert kinds(step(later_train, "YES", sent_with(sent, NOW))) == ["SubmitJourney"]
    same = replace(sent.state, phase=c.Phase.CLAIM_CONFIRM, claim=REVIEWED)
    long_ago = sent_with(sent, NOW - timedelta(days=29))
    assert kinds(step(same, "YES", long_ago)) == ["SubmitJourney"]
    within = sent_with(sent, NOW - timedelta(days=20))
    assert kinds(step(same, "YES", within)) == []


def test_journeys_sent_are_remembered_after_the_conversation_expired() -> None:
    """The record is the user's (the database), not the 24 h state: a claim sent days ago
    and retyped in a new conversation is still warned about."""
    sent = step(summary(), "YES", VERIFIED)
    days_later = replace(VERIFIED, recent_journeys=sent_with(sent, NOW).recent_journeys)
    fresh = step(None, "CLAIM", days_later)
    assert fresh.state is not None
    retyped = replace(fresh.state, phase=c.Phase.CLAIM_CONFIRM, claim=REVIEWED)
    warned = step(retyped, "YES", days_later)
    assert warned.effects == () and "already sent a claim for this journey" in warned.reply


def test_codes_used_up_while_resend_is_refused_say_when_it_works_again() -> None:
    refused = state(c.Phase.AWAITING_CODE, resend_after=RETRY_AT)
    used_up = c.resolve(refused, c.OtpCheckOutcome(OtpCheck(OtpResult.EXHAUSTED)), "", CONFIG)
    assert "RESEND works again after 13:00" in used_up.reply
    assert CONFIG.support_email in used_up.reply


def test_skip_keeps_an_answer_asked_again() -> None:
    back = step(state(c.Phase.CLAIM_TICKET), "back", VERIFIED)
    assert back.state is not None and "SKIP keeps it" in back.reply
    kept = step(back.state, "SKIP", VERIFIED)
    assert phase_of(kept) is c.Phase.CLAIM_TICKET and claim_of(kept) == DRAFT
    unanswered = step(state(c.Phase.CLAIM_TIME), "skip", VERIFIED)
    assert phase_of(unanswered) is c.Phase.CLAIM_TIME and "What time" in unanswered.reply
