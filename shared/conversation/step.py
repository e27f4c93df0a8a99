"""One turn of the conversation: ``step`` reconciles the state with the user row, reads
the command, and hands the turn to the handler the tables name; ``resolve`` finishes a
turn whose effects needed an answer from outside (an OTP sent or checked).

What is said in which state is data: ``TRANSITIONS`` maps (phase, command) to a handler,
``COMMANDS`` are the handlers that work anywhere, ``ANSWERS`` handle free text per phase
and ``MEDIA`` photos and PDFs per phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from shared.conversation.anywhere import (
    ask_erasure,
    choose_language,
    erase,
    keep_data,
    menu_answer,
    notifications_off,
    notifications_on,
    request_status,
    show_help,
    show_menu,
)
from shared.conversation.claim_answers import answer_date, answer_stations, answer_time
from shared.conversation.claim_flow import (
    already_claiming,
    cancel_claim,
    go_back,
    go_to_field,
    keep_answer,
    offer_changes,
    start_claim,
)
from shared.conversation.claim_summary import (
    accept_proposal,
    answer_confirmation,
    decline_proposal,
    submit_claim,
)
from shared.conversation.model import (
    CLAIM_PHASES,
    STEP_PHASES,
    ConversationConfig,
    ConversationState,
    Decision,
    Inbound,
    OtpSendOutcome,
    Outcome,
    Phase,
    StartConversation,
)
from shared.conversation.reconcile import is_idle, reconcile
from shared.conversation.registration import (
    accept_terms,
    answer_code,
    code_checked,
    code_sent,
    decline_terms,
    resend_code,
    resend_elsewhere,
    show_terms,
)
from shared.conversation.texts import welcome
from shared.conversation.tickets import (
    answer_ticket,
    skip_ticket,
    ticket_in_claim,
    ticket_outside_claim,
    ticket_too_early,
)
from shared.conversation.turn import Handler, Turn
from shared.conversation.words import Command, parse_command, requested_field
from shared.replies import R, say

TRANSITIONS: Mapping[tuple[Phase, Command], Handler] = {
    (Phase.AWAITING_TERMS, Command.YES): accept_terms,
    (Phase.AWAITING_TERMS, Command.NO): decline_terms,
    (Phase.AWAITING_TERMS, Command.START): show_terms,
    (Phase.AWAITING_CODE, Command.RESEND): resend_code,
    (Phase.CONFIRM_ERASURE, Command.YES): erase,
    (Phase.CONFIRM_ERASURE, Command.DELETE_MY_DATA): ask_erasure,
    (Phase.CLAIM_TICKET, Command.SKIP): skip_ticket,
    (Phase.CLAIM_CONFIRM, Command.YES): submit_claim,
    (Phase.CLAIM_CONFIRM, Command.NO): offer_changes,
    **{(phase, Command.CANCEL): cancel_claim for phase in CLAIM_PHASES},
    **{(phase, Command.CLAIM): already_claiming for phase in CLAIM_PHASES},
    **{(phase, Command.BACK): go_back for phase in CLAIM_PHASES},
    **{
        (phase, Command.SKIP): keep_answer
        for phase in (Phase.CLAIM_DATE, Phase.CLAIM_STATIONS, Phase.CLAIM_TIME)
    },
}

COMMANDS: Mapping[Command, Handler] = {
    Command.HELP: show_help,
    Command.MENU: show_menu,
    Command.STOP: notifications_off,
    Command.START: notifications_on,
    Command.DELETE_MY_DATA: ask_erasure,
    Command.CLAIM: start_claim,
    Command.STATUS: request_status,
    Command.RESEND: resend_elsewhere,
    Command.ENGLISH: choose_language,
    Command.CYMRAEG: choose_language,
}

# Where only some of COMMANDS apply; elsewhere all do. A pending erasure is answered
# YES or not-YES; HELP and MENU still explain without deciding.
ALL_COMMANDS = frozenset(Command)
PHASE_COMMANDS: Mapping[Phase, frozenset[Command]] = {
    Phase.CONFIRM_ERASURE: frozenset({Command.HELP, Command.MENU}),
}

ANSWERS: Mapping[Phase, Handler] = {
    Phase.AWAITING_TERMS: show_terms,
    Phase.AWAITING_CODE: answer_code,
    Phase.MENU: menu_answer,
    Phase.CONFIRM_ERASURE: keep_data,
    Phase.CLAIM_DATE: answer_date,
    Phase.CLAIM_STATIONS: answer_stations,
    Phase.CLAIM_TIME: answer_time,
    Phase.CLAIM_TICKET: answer_ticket,
    Phase.CLAIM_CONFIRM: answer_confirmation,
}

MEDIA: Mapping[Phase, Handler] = {
    Phase.AWAITING_TERMS: show_terms,
    Phase.AWAITING_CODE: ticket_too_early,
    Phase.MENU: ticket_outside_claim,
    Phase.CONFIRM_ERASURE: keep_data,
    **{phase: ticket_in_claim for phase in CLAIM_PHASES},
}


def step(
    state: ConversationState | None,
    inbound: Inbound,
    now: datetime,
    config: ConversationConfig,
) -> Decision:
    """One inbound message: the new state, what the shell must do, and the reply."""
    user = inbound.user
    if user is not None and user.blocked:
        return Decision(None, (), say(user.language, R.BLOCKED, email=config.support_email))
    dropped = False
    if state is not None and is_idle(state, now, config):
        dropped = state.phase in CLAIM_PHASES and state.claim is not None
        state = None  # a new conversation, as if the state had expired
    elif state is None and inbound.claim_dropped and user is not None and user.verified:
        dropped = True  # the state expired; its marker said a claim was in progress
    current = reconcile(state, user, config, inbound.message_sid)
    command = parse_command(inbound.text, current.phase)
    turn = Turn(
        state=current,
        inbound=inbound,
        now=now,
        config=config,
        command=command,
        returning=state is None and user is not None,
    )
    if state is None and user is None:
        if command is Command.YES and not inbound.media:
            return accept_terms(turn, unseen=True)  # the terms were never shown: say where
        return Decision(current, (), welcome(config))
    if dropped:
        decision = _after_a_dropped_claim(turn)
    else:
        decision = _dispatch(turn)
    if turn.returning:
        # A new conversation for a known user: its start comes before what the turn asks,
        # so its event is first in the outbox.
        started = StartConversation(current.conversation_id)
        return decision._replace(effects=(started, *decision.effects))
    return decision


def _after_a_dropped_claim(turn: Turn) -> Decision:
    hours = max(1, turn.config.conversation_idle_seconds // 3600)
    notice = turn.say(R.CLAIM_DROPPED, hours=hours)
    if turn.command is None and not turn.inbound.media:
        return turn.stay(f"{notice} {turn.say(R.CLAIM_AGAIN)}")
    decision = _dispatch(turn)
    return decision._replace(reply=f"{notice}\n{decision.reply}")


def _dispatch(turn: Turn) -> Decision:
    phase = turn.state.phase
    if turn.inbound.media:
        return MEDIA[phase](turn)
    command = turn.command
    if phase is Phase.CLAIM_CONFIRM and turn.state.proposal is not None:
        if command is Command.YES:
            return accept_proposal(turn)
        if command is Command.NO:
            return decline_proposal(turn)
        turn = replace(turn, state=replace(turn.state, proposal=None))
    if command is not None:
        handler = TRANSITIONS.get((phase, command))
        if handler is None and command in PHASE_COMMANDS.get(phase, ALL_COMMANDS):
            handler = COMMANDS.get(command)
        if handler is not None:
            return handler(turn)
    if phase in STEP_PHASES:
        wanted = requested_field(turn.inbound.text, phase)
        if wanted is not None:
            return go_to_field(turn, wanted)
    return ANSWERS[phase](turn)


def resolve(
    state: ConversationState,
    outcome: Outcome,
    base_reply: str,
    config: ConversationConfig,
) -> Decision:
    """The rest of a turn once the shell knows how an OTP send or check went (the
    registration handlers say what each outcome means)."""
    if isinstance(outcome, OtpSendOutcome):
        return code_sent(state, outcome, base_reply, config)
    return code_checked(state, outcome, config)
