"""One turn: the message and the state it met, as every handler sees it, with the small
verbs handlers answer in (``say``, ``prompt``, ``stay``, ``move``). A handler is a
function from a ``Turn`` to a ``Decision``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared import claim as claims
from shared.conversation.model import (
    ClaimDraft,
    ConversationConfig,
    ConversationState,
    Decision,
    Effect,
    Inbound,
    UserView,
    derived_id,
)
from shared.conversation.texts import prompt
from shared.conversation.words import Command
from shared.replies import R, say


@dataclass(frozen=True)
class Turn:
    state: ConversationState
    inbound: Inbound
    now: datetime
    config: ConversationConfig
    command: Command | None
    returning: bool  # a known user whose previous conversation had expired

    @property
    def user(self) -> UserView | None:
        return self.inbound.user

    @property
    def language(self) -> str:
        return self.state.language

    @property
    def draft(self) -> ClaimDraft:
        """The claim being drafted; only asked for in a claim's phases."""
        assert self.state.claim is not None  # noqa: S101 - reconcile() guarantees it in a claim
        return self.state.claim

    def say(self, key: R, **values: object) -> str:
        return say(self.state.language, key, **values)

    def reason(self, refused: claims.Rejected) -> str:
        """A parser's refusal reason in the passenger's language (D126)."""
        if refused.key is None:
            return refused.reason
        return say(self.state.language, refused.key, **dict(refused.values))

    def prompt(self, state: ConversationState | None = None) -> str:
        return prompt(state or self.state, self.config, self.now)

    def stay(self, reply: str, *effects: Effect) -> Decision:
        return Decision(self.state, effects, reply)

    def move(self, state: ConversationState, reply: str, *effects: Effect) -> Decision:
        return Decision(state, effects, reply)

    def derived_id(self, kind: str) -> UUID:
        return derived_id(kind, self.inbound.message_sid)


Handler = Callable[[Turn], Decision]
