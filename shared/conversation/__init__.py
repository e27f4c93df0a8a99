"""The WhatsApp conversation as a pure state machine (issues 4 and 7).

    step(state, inbound, now, config) -> Decision(new_state, effects, reply)

No I/O, clock, randomness or globals: the shell (shared/services/inbound.py) loads the
state from Redis and the user row from PostgreSQL, calls ``step``, carries out the
effects in one unit of work and saves the new state. Two effects need an answer from
the outside world before the reply can be written (was the OTP right? could we send
one?); the shell reports it back through ``resolve``. The state's JSON form belongs to
its store (shared/adapters/conversation_store.py), not to the core.

One idea a module:
  model.py          the values: phases, the state and its claim draft, effects, outcomes
  words.py          what typed words mean: commands, yes and no, codes, times
  texts.py          the texts built from the catalogue (shared/replies): prompts, summary
  turn.py           a turn as handlers see it, and what a handler is
  reconcile.py      the state made to agree with the user row (the truth)
  registration.py   terms, the OTP code, RESEND, and the OTP outcomes
  anywhere.py       commands that work in any phase, the erasure question, the menu
  claim_flow.py     moving through a claim's questions
  claim_answers.py  the answers to them: date, stations, time, a claim in one message
  claim_summary.py  corrections at the summary and the submission
  tickets.py        photos and PDFs
  step.py           step, resolve, and the tables that name each phase's handlers

This file is the package's public surface: what the shell and the tests use.
"""

from __future__ import annotations

from shared.conversation.model import (
    CLAIM_PHASES,
    DEFAULT_LANGUAGE,
    AcceptTerms,
    ClaimDraft,
    ConversationConfig,
    ConversationState,
    Decision,
    Effect,
    EraseUser,
    Inbound,
    MarkVerified,
    OtpCheckOutcome,
    OtpSendOutcome,
    OtpSendResult,
    Outcome,
    Phase,
    PublishTicket,
    RegisterUser,
    RequestClaimStatus,
    SendOtpSms,
    SetLanguage,
    SetNotifications,
    StartConversation,
    SubmitJourney,
    UserView,
    VerifyOtp,
)
from shared.conversation.reconcile import allowed_phases, claim_open, home_phase
from shared.conversation.step import ANSWERS, MEDIA, resolve, step
from shared.conversation.texts import RATE_LIMITED_REPLY, prompt
from shared.conversation.tickets import is_ticket_type
from shared.conversation.words import KEYWORDS, YES_WORDS

__all__ = [
    "ANSWERS",
    "CLAIM_PHASES",
    "DEFAULT_LANGUAGE",
    "KEYWORDS",
    "MEDIA",
    "RATE_LIMITED_REPLY",
    "YES_WORDS",
    "AcceptTerms",
    "ClaimDraft",
    "ConversationConfig",
    "ConversationState",
    "Decision",
    "Effect",
    "EraseUser",
    "Inbound",
    "MarkVerified",
    "OtpCheckOutcome",
    "OtpSendOutcome",
    "OtpSendResult",
    "Outcome",
    "Phase",
    "PublishTicket",
    "RegisterUser",
    "RequestClaimStatus",
    "SendOtpSms",
    "SetLanguage",
    "SetNotifications",
    "StartConversation",
    "SubmitJourney",
    "UserView",
    "VerifyOtp",
    "allowed_phases",
    "claim_open",
    "home_phase",
    "is_ticket_type",
    "prompt",
    "resolve",
    "step",
]
