"""The conversation state machine as plain functions: no Redis, no database, no clock."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import conversation as c
from shared.adapters.conversation_store import state_from_json, state_to_json
from shared.claim import UK
from shared.events import Media
from shared.otp import OtpCheck, OtpResult
from shared.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def settings_config(**overrides: object) -> c.ConversationConfig:
    """The config the webhook builds from settings left at their defaults (shared/settings.py
    owns them), with ``overrides``."""
    defaults = {field.name: field.default for field in msgspec.structs.fields(Settings)}
    taken = {field.name: defaults[field.name] for field in dataclasses.fields(c.ConversationConfig)}
    return c.ConversationConfig(**{**taken, **overrides})  # type: ignore[arg-type]


CONFIG = settings_config(terms_version="v2")
GUEST = None
UNVERIFIED = c.UserView(UUID(int=1), verified=False, blocked=False, terms_version="v2")
OLD_TERMS = c.UserView(UUID(int=1), verified=False, blocked=False, terms_version="v1")
VERIFIED = c.UserView(UUID(int=1), verified=True, blocked=False, terms_version="v2")
BLOCKED = c.UserView(UUID(int=1), verified=True, blocked=True, terms_version="v2")
USERS = {"guest": GUEST, "unverified": UNVERIFIED, "verified": VERIFIED}
PHOTO = Media("https://api.twilio.com/m/1", "image/jpeg")
VOICE = Media("https://api.twilio.com/m/2", "audio/ogg")
JOURNEY = UUID(int=7)
DRAFT = c.ClaimDraft(
    journey_id=JOURNEY,
    journey_date=date(2026, 11, 23),
    origin="Leeds",
    destination="York",
    departure=datetime(2026, 11, 23, 8, 2, tzinfo=UK),
)


# What a claim holds on reaching each phase.
DRAFTS = {
    c.Phase.CLAIM_DATE: c.ClaimDraft(journey_id=JOURNEY),
    c.Phase.CLAIM_STATIONS: replace(DRAFT, origin=None, destination=None, departure=None),
    c.Phase.CLAIM_TIME: replace(DRAFT, departure=None),
    c.Phase.CLAIM_TICKET: DRAFT,
    c.Phase.CLAIM_CONFIRM: DRAFT,
}


def state(phase: c.Phase, **fields: object) -> c.ConversationState:
    base = c.ConversationState(phase=phase, conversation_id=UUID(int=99))
    if phase in c.CLAIM_PHASES and "claim" not in fields:
        fields["claim"] = DRAFTS[phase]
    return replace(base, **fields)  # type: ignore[arg-type]


def step(
    current: c.ConversationState | None,
    text: str = "",
    user: c.UserView | None = VERIFIED,
    media: tuple[Media, ...] = (),
) -> c.Decision:
    inbound = c.Inbound(message_sid="SM" + "0" * 32, text=text, media=media, user=user)
    return c.step(current, inbound, NOW, CONFIG)


def kinds(decision: c.Decision) -> list[str]:
    return [type(effect).__name__ for effect in decision.effects]


# (starting phase, user, text) -> (phase after, effects, words in the reply)
TRANSITIONS = [
    (
        c.Phase.AWAITING_TERMS,
        "guest",
        "YES",
        c.Phase.AWAITING_CODE,
        ["RegisterUser", "StartConversation", "SendOtpSms"],
        "Thanks for accepting",
    ),
    (
        c.Phase.AWAITING_TERMS,
        "guest",
        " yEs ",
        c.Phase.AWAITING_CODE,
        ["RegisterUser", "StartConversation", "SendOtpSms"],
        "Thanks",
    ),
    (c.Phase.AWAITING_TERMS, "guest", "no", c.Phase.AWAITING_TERMS, [], "reply YES"),
    (c.Phase.AWAITING_TERMS, "guest", "what is this", c.Phase.AWAITING_TERMS, [], "terms"),
    (
        c.Phase.AWAITING_TERMS,
        "unverified",
        "YES",
        c.Phase.AWAITING_CODE,
        ["AcceptTerms", "SendOtpSms"],
        "Thanks",
    ),
    (c.Phase.AWAITING_CODE, "unverified", "123456", c.Phase.AWAITING_CODE, ["VerifyOtp"], ""),
    (c.Phase.AWAITING_CODE, "unverified", "123 456", c.Phase.AWAITING_CODE, ["VerifyOtp"], ""),
    (c.Phase.AWAITING_CODE, "unverified", "12345", c.Phase.AWAITING_CODE, [], "6 digits"),
    (c.Phase.AWAITING_CODE, "unverified", "RESEND", c.Phase.AWAITING_CODE, ["SendOtpSms"], ""),
    (c.Phase.AWAITING_CODE, "unverified", "hello", c.Phase.AWAITING_CODE, [], "6-digit code"),
    (c.Phase.AWAITING_CODE, "unverified", "CLAIM", c.Phase.AWAITING_CODE, [], "verified"),
    (
        c.Phase.AWAITING_CODE,
        "unverified",
        "STOP",
        c.Phase.AWAITING_CODE,
        ["SetNotifications"],
        "off",
    ),
    (c.Phase.MENU, "verified", "RESEND", c.Phase.MENU, [], "already verified"),
    (c.Phase.MENU, "verified", "CLAIM", c.Phase.CLAIM_DATE, [], "Which day"),
    (c.Phase.MENU, "verified", "delay", c.Phase.CLAIM_DATE, [], "Which day"),
    (c.Phase.MENU, "verified", "1", c.Phase.CLAIM_DATE, [], "Which day"),
    (c.Phase.MENU, "verified", "2", c.Phase.MENU, ["RequestClaimStatus"], "message you"),
    (c.Phase.MENU, "verified", "STATUS", c.Phase.MENU, ["RequestClaimStatus"], "message you"),
    (c.Phase.MENU, "verified", "STOP", c.Phase.MENU, ["SetNotifications"], "START"),
    (c.Phase.MENU, "verified", "START", c.Phase.MENU, ["SetNotifications"], "on"),
    (c.Phase.MENU, "verified", "DELETE MY DATA", c.Phase.CONFIRM_ERASURE, [], "YES"),
    (c.Phase.MENU, "verified", "hello", c.Phase.MENU, [], "CLAIM"),
    (c.Phase.MENU, "verified", "YES", c.Phase.MENU, [], "CLAIM"),
    (c.Phase.CONFIRM_ERASURE, "verified", "YES", None, ["EraseUser"], "deleted"),
    (c.Phase.CONFIRM_ERASURE, "verified", "STOP", c.Phase.MENU, [], "haven't deleted"),
    (c.Phase.CONFIRM_ERASURE, "verified", "HELP", c.Phase.CONFIRM_ERASURE, [], "YES"),
    (c.Phase.CONFIRM_ERASURE, "verified", "DELETE MY DATA", c.Phase.CONFIRM_ERASURE, [], "YES"),
    (c.Phase.CLAIM_DATE, "verified", "yesterday", c.Phase.CLAIM_STATIONS, [], "stations"),
    (c.Phase.CLAIM_DATE, "verified", "CANCEL", c.Phase.MENU, [], "cancelled"),
    (c.Phase.CLAIM_DATE, "verified", "CLAIM", c.Phase.CLAIM_DATE, [], "already making"),
    (
        c.Phase.CLAIM_DATE,
        "verified",
        "STATUS",
        c.Phase.CLAIM_DATE,
        ["RequestClaimStatus"],
        "Which day",
    ),
    (c.Phase.CLAIM_STATIONS, "verified", "Leeds to York", c.Phase.CLAIM_TIME, [], "What time"),
    (c.Phase.CLAIM_TIME, "verified", "8am", c.Phase.CLAIM_TICKET, [], "photo or PDF"),
    (c.Phase.CLAIM_TICKET, "verified", "SKIP", c.Phase.CLAIM_CONFIRM, [], "Reply YES"),
    (c.Phase.CLAIM_TICKET, "verified", "no ticket", c.Phase.CLAIM_TICKET, [], "SKIP"),
    (c.Phase.CLAIM_CONFIRM, "verified", "YES", c.Phase.MENU, ["SubmitJourney"], "matched"),
    (c.Phase.CLAIM_CONFIRM, "verified", "NO", c.Phase.CLAIM_CONFIRM, [], "like to change"),
    (c.Phase.CLAIM_CONFIRM, "verified", "maybe", c.Phase.CLAIM_CONFIRM, [], "Reply YES"),
]


@pytest.mark.parametrize(
    ("phase", "who", "text", "after", "effects", "words"),
    TRANSITIONS,
    ids=[f"{row[0]}-{row[1]}-{row[2].strip()}" for row in TRANSITIONS],
)
def test_transitions(
    phase: c.Phase,
    who: str,
    text: str,
    after: c.Phase | None,
    effects: list[str],
    words: str,
) -> None:
    decision = step(state(phase), text, USERS[who])
    assert (decision.state.phase if decision.state else None) == after
    assert kinds(decision) == effects
    assert words in decision.reply


def test_a_first_message_from_a_new_number_gets_the_welcome_whatever_it_says() -> None:
    for text in ("HELP", "DELETE MY DATA", "hi", "NO"):
        decision = step(None, text, GUEST)
        assert decision.state is not None and decision.state.phase is c.Phase.AWAITING_TERMS
        assert decision.effects == () and "reply YES" in decision.reply


def test_a_known_user_whose_state_expired_starts_a_conversation() -> None:
    decision = step(None, "hi", VERIFIED)
    assert kinds(decision) == ["StartConversation"]
    assert decision.reply.startswith("Welcome back")
    decision = step(None, "CLAIM", VERIFIED)
    assert kinds(decision) == ["StartConversation"]
    assert decision.state is not None and decision.state.phase is c.Phase.CLAIM_DATE


def test_a_returning_user_with_old_terms_is_asked_again() -> None:
    decision = step(None, "YES", OLD_TERMS)
    assert kinds(decision) == ["StartConversation", "AcceptTerms", "SendOtpSms"]


def test_blocked_users_get_a_short_reply_and_nothing_else() -> None:
    for phase in c.Phase:
        for text in ("YES", "DELETE MY DATA", "CLAIM", "hi"):
            decision = step(state(phase), text, BLOCKED, media=(PHOTO,))
            assert decision == c.Decision(None, (), decision.reply)
            assert "can't use RailRepay" in decision.reply


def test_a_state_that_contradicts_the_user_row_is_reset() -> None:
    assert step(state(c.Phase.MENU), "hi", GUEST).state.phase is c.Phase.AWAITING_TERMS  # type: ignore[union-attr]
    assert step(state(c.Phase.CLAIM_TIME), "8am", UNVERIFIED).state.phase is (  # type: ignore[union-attr]
        c.Phase.AWAITING_CODE
    )
    assert step(state(c.Phase.AWAITING_CODE), "123456", VERIFIED).effects == ()
    orphan = state(c.Phase.CLAIM_TIME, claim=None)
    assert step(orphan, "8am", VERIFIED).state.phase is c.Phase.MENU  # type: ignore[union-attr]


@pytest.mark.parametrize("phase", sorted(c.CLAIM_PHASES))
@pytest.mark.parametrize("text", ["", "???", "31/02", "to", "25:99", "HELP", "MENU", "STOP"])
def test_bad_input_in_a_claim_keeps_what_was_collected(phase: c.Phase, text: str) -> None:
    before = state(phase)
    decision = step(before, text, VERIFIED)
    assert decision.state is not None and decision.state.claim is not None
    assert decision.state.claim == before.claim
    assert decision.state.phase is phase
    assert decision.reply


def test_media_in_a_claim_is_attached_and_published_with_the_journey() -> None:
    decision = step(state(c.Phase.CLAIM_TICKET), "", VERIFIED, media=(PHOTO, VOICE))
    assert decision.state is not None and decision.state.phase is c.Phase.CLAIM_CONFIRM
    assert decision.state.claim is not None and decision.state.claim.ticket == (PHOTO,)
    (published,) = decision.effects
    assert isinstance(published, c.PublishTicket)
    assert published.journey_id == JOURNEY and published.media == (PHOTO,)
    assert "1 file skipped" in decision.reply


def test_media_outside_a_claim_is_published_and_kept_for_a_claim() -> None:
    decision = step(state(c.Phase.MENU), "", VERIFIED, media=(PHOTO,))
    (published,) = decision.effects
    assert isinstance(published, c.PublishTicket) and published.journey_id is None
    assert decision.state is not None and decision.state.recent_ticket == (PHOTO,)
    claim = step(decision.state, "CLAIM", VERIFIED)
    assert claim.state is not None and claim.state.claim is not None
    assert claim.state.claim.ticket == (PHOTO,) and claim.state.recent_ticket == ()


def test_only_images_and_pdfs_are_tickets() -> None:
    assert c.is_ticket_type("image/jpeg") and c.is_ticket_type("application/pdf")
    assert c.is_ticket_type("IMAGE/PNG; charset=binary")
    assert not c.is_ticket_type("audio/ogg") and not c.is_ticket_type("text/vcard")
    decision = step(state(c.Phase.MENU), "", VERIFIED, media=(VOICE,))
    assert decision.effects == () and "only take photos or PDFs" in decision.reply


def test_ids_are_derived_from_the_message_sid() -> None:
    first = step(state(c.Phase.MENU), "CLAIM", VERIFIED)
    again = step(state(c.Phase.MENU), "CLAIM", VERIFIED)
    assert first.state == again.state


@pytest.mark.parametrize(
    ("outcome", "phase", "effects", "words"),
    [
        (c.OtpSendOutcome(c.OtpSendResult.SENT), c.Phase.AWAITING_CODE, [], "within 5 minutes"),
        (c.OtpSendOutcome(c.OtpSendResult.RATE_LIMITED), c.Phase.AWAITING_CODE, [], "an hour"),
        (c.OtpSendOutcome(c.OtpSendResult.FAILED), c.Phase.AWAITING_CODE, [], "RESEND"),
        (
            c.OtpCheckOutcome(OtpCheck(OtpResult.VERIFIED)),
            c.Phase.MENU,
            ["MarkVerified"],
            "verified",
        ),
        (c.OtpCheckOutcome(OtpCheck(OtpResult.WRONG, 2)), c.Phase.AWAITING_CODE, [], "2 tries"),
        (c.OtpCheckOutcome(OtpCheck(OtpResult.WRONG, 1)), c.Phase.AWAITING_CODE, [], "1 try left"),
        (c.OtpCheckOutcome(OtpCheck(OtpResult.EXHAUSTED)), c.Phase.AWAITING_CODE, [], "RESEND"),
        (c.OtpCheckOutcome(OtpCheck(OtpResult.EXPIRED)), c.Phase.AWAITING_CODE, [], "expired"),
        (c.OtpCheckOutcome(OtpCheck(OtpResult.NO_CODE)), c.Phase.AWAITING_CODE, [], "RESEND"),
    ],
)
def test_resolve(outcome: c.Outcome, phase: c.Phase, effects: list[str], words: str) -> None:
    decision = c.resolve(state(c.Phase.AWAITING_CODE), outcome, "Thanks.", CONFIG)
    assert decision.state is not None and decision.state.phase is phase
    assert kinds(decision) == effects
    assert words in decision.reply


def test_the_code_never_appears_in_an_effects_repr() -> None:
    assert "654321" not in repr(c.VerifyOtp("654321"))


def test_every_phase_has_an_answer_a_media_handler_and_a_prompt() -> None:
    for phase in c.Phase:
        assert phase in c.ANSWERS and phase in c.MEDIA
        assert c.prompt(state(phase), CONFIG)


# --- properties -----------------------------------------------------------------------------

_media = st.builds(
    Media,
    url=st.just("https://api.twilio.com/m"),
    content_type=st.sampled_from(["image/jpeg", "application/pdf", "audio/ogg", "video/mp4"]),
)
_drafts = st.builds(
    c.ClaimDraft,
    journey_id=st.uuids(),
    journey_date=st.one_of(st.none(), st.dates(date(2026, 10, 1), date(2026, 11, 30))),
    origin=st.one_of(st.none(), st.text(max_size=20)),
    destination=st.one_of(st.none(), st.text(max_size=20)),
    departure=st.one_of(
        st.none(),
        st.datetimes(datetime(2026, 10, 1), datetime(2026, 11, 30)).map(
            lambda moment: moment.replace(tzinfo=UK)
        ),
    ),
    ticket=st.lists(_media, max_size=3).map(tuple),
    reviewed=st.booleans(),
    duplicate_warned=st.booleans(),
)
_aware_moments = st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
_states = st.one_of(
    st.none(),
    st.builds(
        c.ConversationState,
        phase=st.sampled_from(c.Phase),
        conversation_id=st.uuids(),
        claim=st.one_of(st.none(), _drafts),
        resume_phase=st.one_of(st.none(), st.sampled_from(c.Phase)),
        recent_ticket=st.lists(_media, max_size=2).map(tuple),
        language=st.sampled_from(["en-GB", "cy-GB", "pl"]),
        proposal=st.one_of(st.none(), _drafts),
        resend_after=st.one_of(st.none(), _aware_moments),
        replaced_codes=st.lists(st.just("ab" * 32), max_size=2).map(tuple),
        saved_at=st.one_of(st.none(), _aware_moments),
    ),
)
_users = st.one_of(
    st.none(),
    st.builds(
        c.UserView,
        user_id=st.uuids(),
        verified=st.booleans(),
        blocked=st.booleans(),
        terms_version=st.sampled_from([None, "v1", "v2"]),
        notifications_enabled=st.booleans(),
        language=st.sampled_from(["en-GB", "cy-GB"]),
        recent_journeys=st.lists(st.tuples(st.just("ab" * 32), _aware_moments), max_size=2).map(
            tuple
        ),
    ),
)
_texts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            *sorted(c.KEYWORDS),
            *sorted(c.YES_WORDS),
            "123456",
            "1",
            "2",
            "3",
            "4",
            "today",
            "Leeds to York",
            "8am",
            "17:15",
            "change time",
            "back",
            "I want to make a claim",
        ]
    ),
)
_moments = st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(
    current=_states,
    user=_users,
    text=_texts,
    media=st.lists(_media, max_size=3).map(tuple),
    now=_moments,
)
def test_any_text_in_any_state_gets_a_reply_never_an_exception(
    current: c.ConversationState | None,
    user: c.UserView | None,
    text: str,
    media: tuple[Media, ...],
    now: datetime,
) -> None:
    inbound = c.Inbound(message_sid="SMx", text=text, media=media, user=user)
    decision = c.step(current, inbound, now, CONFIG)
    asks = [e for e in decision.effects if isinstance(e, c.SendOtpSms | c.VerifyOtp)]
    if asks:  # the shell answers these, and resolve() writes the reply
        assert decision.state is not None
        outcome: c.Outcome = (
            c.OtpSendOutcome(c.OtpSendResult.SENT)
            if isinstance(asks[0], c.SendOtpSms)
            else c.OtpCheckOutcome(OtpCheck(OtpResult.WRONG, 2))
        )
        assert c.resolve(decision.state, outcome, decision.reply, CONFIG).reply.strip()
    else:
        assert decision.reply.strip()
    if decision.state is not None:
        registered = any(isinstance(effect, c.RegisterUser) for effect in decision.effects)
        after = UNVERIFIED if registered else user  # who the user is once effects are done
        assert decision.state.phase in c.allowed_phases(after)
        assert state_from_json(state_to_json(decision.state)) == decision.state
        for outcome in (
            c.OtpSendOutcome(c.OtpSendResult.FAILED),
            c.OtpCheckOutcome(OtpCheck(OtpResult.WRONG, 1)),
        ):
            assert c.resolve(decision.state, outcome, decision.reply, CONFIG).reply.strip()


@settings(max_examples=200, deadline=None)
@given(current=_states.filter(lambda found: found is not None))
def test_state_json_round_trips(current: c.ConversationState) -> None:
    assert state_from_json(state_to_json(current)) == current


@settings(max_examples=100, deadline=None)
@given(current=_states.filter(lambda found: found is not None), saved_at=_moments)
def test_state_json_is_what_json_dumps_writes(
    current: c.ConversationState, saved_at: datetime
) -> None:
    # msgspec writes it; the standard library must read back and write the same text.
    text = state_to_json(current, saved_at)
    assert text == json.dumps(
        json.loads(text), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )


@given(raw=st.text(max_size=200))
def test_unreadable_state_is_none(raw: str) -> None:
    assert state_from_json(raw) is None or isinstance(state_from_json(raw), c.ConversationState)


@pytest.mark.parametrize(
    "raw", ["", "{}", "[]", '{"v": 99}', '{"v": 1, "phase": "nope"}', "null", '"x"']
)
def test_known_bad_states_are_none(raw: str) -> None:
    assert state_from_json(raw) is None


@pytest.mark.parametrize("phase", sorted(c.CLAIM_PHASES))
@pytest.mark.parametrize("answer", ["NO", "no thanks", "keep it"])
def test_declining_an_erasure_returns_to_the_claim_with_its_draft(
    phase: c.Phase, answer: str
) -> None:
    claiming = state(phase)
    asked = step(claiming, "DELETE MY DATA")
    assert asked.state is not None and asked.state.phase is c.Phase.CONFIRM_ERASURE

    declined = step(asked.state, answer)

    assert declined.state == claiming
    assert declined.effects == ()
    assert "haven't deleted" in declined.reply and c.prompt(claiming, CONFIG) in declined.reply


def test_a_claim_interrupted_by_an_erasure_question_goes_on_after_no() -> None:
    current: c.ConversationState | None = state(c.Phase.MENU)
    for text in ("CLAIM", "yesterday", "Leeds to York", "DELETE MY DATA", "NO", "08:02"):
        decision = step(current, text)
        current = decision.state
    assert current is not None and current.phase is c.Phase.CLAIM_TICKET
    assert current.claim is not None
    assert (current.claim.origin, current.claim.destination) == ("Leeds", "York")
    assert current.claim.journey_date == date(2026, 11, 23)
    assert current.claim.departure == datetime(2026, 11, 23, 8, 2, tzinfo=UK)
    assert "08:02" in decision.reply


def test_a_pending_erasure_without_its_claim_returns_home() -> None:
    orphan = state(c.Phase.CONFIRM_ERASURE, resume_phase=c.Phase.CLAIM_TIME)
    declined = step(orphan, "NO")
    assert declined.state is not None and declined.state.phase is c.Phase.MENU
    assert declined.state.claim is None
