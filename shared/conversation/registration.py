"""Signing up: the terms, the one-time code by SMS, RESEND, and what each OTP outcome
means once the shell knows it (``code_sent``, ``code_checked``, through ``resolve``).
"""

from __future__ import annotations

from dataclasses import replace

from shared.conversation.model import (
    DEFAULT_LANGUAGE,
    AcceptTerms,
    ConversationConfig,
    ConversationState,
    Decision,
    Effect,
    MarkVerified,
    OtpCheckOutcome,
    OtpSendOutcome,
    OtpSendResult,
    Phase,
    RegisterUser,
    SendOtpSms,
    SetLanguage,
    StartConversation,
    VerifyOtp,
)
from shared.conversation.texts import menu_text, prompt, resend_refused, retry_text, welcome
from shared.conversation.turn import Turn
from shared.conversation.words import code_in
from shared.otp import OtpResult
from shared.replies import R, say

MAX_REPLACED_CODES = 3


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
    if turn.state.resend_after is not None and resend_refused(turn.state, turn.now):
        return turn.stay(
            retry_text(
                turn.language, R.OTP_RATE_LIMITED_UNTIL, turn.state.resend_after, turn.config
            )
        )
    return turn.stay("", SendOtpSms())


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


def needs_verification(turn: Turn) -> Decision:
    return turn.stay(f"{turn.say(R.NEEDS_VERIFICATION)} {turn.prompt()}")


# --- the outcomes, once the shell knows them ---------------------------------------------


def code_sent(
    state: ConversationState, outcome: OtpSendOutcome, base_reply: str, config: ConversationConfig
) -> Decision:
    """After a SendOtpSms: said after the turn's own reply (``base_reply``)."""
    language = state.language
    if outcome.result is OtpSendResult.SENT:
        text = say(language, R.OTP_SENT, minutes=max(1, config.otp_ttl_seconds // 60))
        replaced = state.replaced_codes
        if outcome.replaced is not None:
            replaced = (*replaced, outcome.replaced)[-MAX_REPLACED_CODES:]
        state = replace(state, resend_after=None, replaced_codes=replaced)
    elif outcome.result is OtpSendResult.RATE_LIMITED and outcome.retry_at is not None:
        text = retry_text(language, R.OTP_RATE_LIMITED_UNTIL, outcome.retry_at, config)
        state = replace(state, resend_after=outcome.retry_at)
    elif outcome.result is OtpSendResult.RATE_LIMITED:
        text = say(language, R.OTP_RATE_LIMITED)
    else:
        text = say(language, R.OTP_FAILED)
    return Decision(state, (), f"{base_reply} {text}".strip())


_CODE_REFUSED: dict[OtpResult, R] = {
    OtpResult.EXHAUSTED: R.OTP_EXHAUSTED,
    OtpResult.EXPIRED: R.OTP_EXPIRED,
    OtpResult.NO_CODE: R.OTP_NO_CODE,
}


def code_checked(
    state: ConversationState, outcome: OtpCheckOutcome, config: ConversationConfig
) -> Decision:
    """After a VerifyOtp: verified goes to the menu; otherwise say why and what next."""
    language, check = state.language, outcome.check
    if check.result is OtpResult.VERIFIED:
        verified = replace(
            state, phase=Phase.MENU, resume_phase=None, resend_after=None, replaced_codes=()
        )
        return Decision(
            verified,
            (MarkVerified(),),
            say(language, R.VERIFIED) + "\n" + menu_text(language),
        )
    if check.result is OtpResult.WRONG:
        if check.attempts_left == 1:
            text = say(language, R.OTP_WRONG_ONE)
        else:
            text = say(language, R.OTP_WRONG_MANY, count=check.attempts_left)
        return Decision(state, (), f"{text} {prompt(state, config)}")
    if check.result is OtpResult.REPLACED:
        return Decision(state, (), f"{say(language, R.OTP_REPLACED)} {prompt(state, config)}")
    text = say(language, _CODE_REFUSED[check.result])
    if state.resend_after is not None:  # the last RESEND was refused: say until when
        hint = retry_text(language, R.HELP_RESEND_LATER, state.resend_after, config)
    else:
        hint = say(language, R.OTP_RESEND_HINT)
    return Decision(state, (), f"{text} {hint}")
