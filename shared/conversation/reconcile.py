"""The user row is the truth, the Redis state only remembers where we are in a dialogue:
before anything else, ``reconcile`` makes the state agree with the row, so a lost or stale
state never loses or contradicts what the database knows. Also which phase is home for a
user, and whether a state ended in silence.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from shared.conversation.model import (
    CLAIM_PHASES,
    ConversationConfig,
    ConversationState,
    Phase,
    UserView,
    derived_id,
)


def home_phase(user: UserView | None, config: ConversationConfig) -> Phase:
    if user is None:
        return Phase.AWAITING_TERMS
    if user.verified:
        return Phase.MENU
    if user.terms_version != config.terms_version:
        return Phase.AWAITING_TERMS
    return Phase.AWAITING_CODE


def allowed_phases(user: UserView | None) -> frozenset[Phase]:
    if user is None:
        return frozenset({Phase.AWAITING_TERMS})
    if not user.verified:
        return frozenset({Phase.AWAITING_TERMS, Phase.AWAITING_CODE, Phase.CONFIRM_ERASURE})
    return frozenset({Phase.MENU, Phase.CONFIRM_ERASURE}) | CLAIM_PHASES


def reconcile(
    state: ConversationState | None,
    user: UserView | None,
    config: ConversationConfig,
    message_sid: str,
) -> ConversationState:
    """A state that agrees with the user row: kept where it does, reset where it cannot."""
    agreed = _reconcile_phase(state, user, config, message_sid)
    if user is not None and agreed.language != user.language:
        agreed = replace(agreed, language=user.language)
    if agreed.proposal is not None and agreed.phase is not Phase.CLAIM_CONFIRM:
        agreed = replace(agreed, proposal=None)
    if agreed.choices and agreed.phase is not Phase.CLAIM_STATIONS:
        agreed = replace(agreed, choices=())
    if agreed.pending_hour is not None and agreed.phase is not Phase.CLAIM_TIME:
        agreed = replace(agreed, pending_hour=None)
    return agreed


def _reconcile_phase(
    state: ConversationState | None,
    user: UserView | None,
    config: ConversationConfig,
    message_sid: str,
) -> ConversationState:
    home = home_phase(user, config)
    if state is None:
        return ConversationState(
            phase=home, conversation_id=derived_id("conversation", message_sid)
        )
    allowed = allowed_phases(user)
    if state.phase not in allowed or (state.phase in CLAIM_PHASES and state.claim is None):
        return ConversationState(
            phase=home, conversation_id=state.conversation_id, language=state.language
        )
    if state.phase is Phase.CONFIRM_ERASURE and (
        state.resume_phase not in allowed
        or (state.resume_phase in CLAIM_PHASES and state.claim is None)
    ):
        state = replace(state, resume_phase=home)
    # A pending erasure keeps the claim it interrupted: a NO returns to it (D71).
    holds_claim = state.phase in CLAIM_PHASES or (
        state.phase is Phase.CONFIRM_ERASURE and state.resume_phase in CLAIM_PHASES
    )
    if not holds_claim and state.claim is not None:
        return replace(state, claim=None)
    return state


def claim_open(state: ConversationState | None) -> bool:
    """Whether ``state`` holds an unfinished claim (the shell keeps a marker of it)."""
    return state is not None and state.claim is not None


def is_idle(state: ConversationState, now: datetime, config: ConversationConfig) -> bool:
    """Whether the conversation ended in silence (its state outlived it in Redis)."""
    idle = timedelta(seconds=config.conversation_idle_seconds)
    return state.saved_at is not None and now - state.saved_at >= idle
