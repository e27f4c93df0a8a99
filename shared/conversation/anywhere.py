"""Handlers for what works in any phase (the ``COMMANDS`` table): HELP, MENU, STOP and
START, the language, STATUS, and the erasure question with its answers; and the menu's
own free text, which may start a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from shared.conversation.claim_answers import claim_from_text
from shared.conversation.model import (
    CLAIM_PHASES,
    ConversationState,
    Decision,
    Effect,
    EraseUser,
    Phase,
    RequestClaimStatus,
    SetLanguage,
    SetNotifications,
)
from shared.conversation.reconcile import home_phase
from shared.conversation.registration import needs_verification, show_terms
from shared.conversation.texts import help_text, menu_text, prompt
from shared.conversation.turn import Turn
from shared.conversation.words import Command, is_affirmative
from shared.replies import R, is_complete, say


def show_help(turn: Turn) -> Decision:
    return turn.stay(help_text(turn.state, turn.user, turn.now, turn.config))


def show_menu(turn: Turn) -> Decision:
    user = turn.user
    if user is None or not user.verified:
        return turn.stay(turn.prompt())
    if turn.state.phase in CLAIM_PHASES:
        return turn.stay(f"{turn.say(R.IN_A_CLAIM)} {turn.prompt()}")
    if turn.state.phase is Phase.CONFIRM_ERASURE:
        return turn.stay(turn.prompt())
    return turn.stay(menu_text(turn.language))


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
    return turn.stay(turn.say(opener) + "\n" + menu_text(turn.language))
