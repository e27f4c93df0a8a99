"""Conversation state in Redis: one JSON value per phone number, with a TTL (RFC 1.1).

The key names a keyed hash of the number (shared/redis_keys.py), and the value holds a
dialogue position, never anything the database does not also know how to rebuild. Each
value records when it was saved (the time of the message that saved it), so a state read
early, with the message's claim, can be checked against the user row for freshness.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID

import msgspec
import redis

from shared import claim as claims
from shared.conversation import (
    DEFAULT_LANGUAGE,
    ClaimDraft,
    ConversationState,
    Phase,
    claim_open,
)
from shared.conversation.model import DESTINATION, ORIGIN, StationChoice
from shared.events import Media
from shared.redis_keys import RedisKeys

STATE_VERSION = 1


@dataclass(frozen=True)
class StoredConversation:
    state: ConversationState | None  # None: none, expired, or unreadable (start afresh)
    saved_at: datetime | None = None  # the saving message's time; None when unknown
    present: bool = False  # a value was there (readable or not)
    # The claim marker was set: an unfinished claim's state expired here (D106).
    claim_marked: bool = False


@dataclass(frozen=True)
class SavedConversation:
    state_json: str | None  # None: delete the state
    state_ttl: int
    marker_ttl: int | None  # None: delete the claim marker (no claim in progress)


ABSENT = StoredConversation(state=None)
UNREADABLE = StoredConversation(state=None, present=True)


def decode(raw: str | bytes | None, *, claim_marked: bool = False) -> StoredConversation:
    if raw is None:
        return StoredConversation(state=None, claim_marked=claim_marked)
    text = raw.decode() if isinstance(raw, bytes) else raw
    state, saved_at = stored_state_from_json(text)
    return StoredConversation(
        state=state, saved_at=saved_at, present=True, claim_marked=claim_marked
    )


class ConversationStore:
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        ttl_seconds: int,
        marker_ttl_seconds: int,
    ) -> None:
        self._client = client
        self._keys = keys
        self.ttl_seconds = ttl_seconds
        self.marker_ttl_seconds = marker_ttl_seconds

    def key(self, phone_number: str) -> str:
        return self._keys.conversation(phone_number)

    def marker_key(self, phone_number: str) -> str:
        return self._keys.claim_marker(phone_number)

    def load(self, phone_number: str) -> StoredConversation:
        """The state and whether the claim marker is set, in one round trip. A GET, not an
        MGET: a value that is no string fails the read (WRONGTYPE) instead of passing for
        no state."""
        pipeline = self._client.pipeline(transaction=False)
        pipeline.get(self.key(phone_number))
        pipeline.exists(self.marker_key(phone_number))
        raw, marked = cast(tuple[str | None, int], tuple(pipeline.execute()))
        return decode(raw, claim_marked=marked == 1)

    def to_save(self, state: ConversationState | None, *, saved_at: datetime) -> SavedConversation:
        """What saving ``state`` writes: its JSON at ``key()`` for ``ttl_seconds`` (every save
        restarts it; None deletes it), and the claim marker at ``marker_key()`` for
        ``marker_ttl_seconds`` while a claim is unfinished (None deletes it), so after the
        state expires the next message can say the claim was dropped (D106). The webhook
        writes both with its MessageSid's "done" mark, in one round trip
        (``MessageLedger.complete_saving``)."""
        return SavedConversation(
            state_json=None if state is None else state_to_json(state, saved_at),
            state_ttl=self.ttl_seconds,
            marker_ttl=self.marker_ttl_seconds if claim_open(state) else None,
        )


# --- the state's JSON form --------------------------------------------------------------
# Here, not in the core: the conversation works on values, and only its store needs to
# know how they are written down.


def _media_json(items: tuple[Media, ...]) -> list[dict[str, str]]:
    return [{"url": item.url, "content_type": item.content_type} for item in items]


def _media_from(raw: Any) -> tuple[Media, ...]:
    return tuple(
        Media(url=str(item["url"]), content_type=str(item["content_type"])) for item in raw
    )


# The JSON json.dumps(sort_keys=True, compact) writes, in a tenth of the time (every
# message saves its state); non-ASCII characters are written as UTF-8, not escaped.
_STATE_JSON = msgspec.json.Encoder(order="sorted")


def _draft_json(draft: ClaimDraft | None) -> dict[str, Any] | None:
    if draft is None:
        return None
    return {
        "journey_id": str(draft.journey_id),
        "journey_date": draft.journey_date.isoformat() if draft.journey_date else None,
        "origin": draft.origin,
        "destination": draft.destination,
        "departure": draft.departure.isoformat() if draft.departure else None,
        "ticket": _media_json(draft.ticket),
        "reviewed": draft.reviewed,
        "duplicate_warned": draft.duplicate_warned,
        "origin_crs": draft.origin_crs,
        "origin_name": draft.origin_name,
        "destination_crs": draft.destination_crs,
        "destination_name": draft.destination_name,
    }


def state_to_json(state: ConversationState, saved_at: datetime | None = None) -> str:
    """``saved_at``: the time of the message that saved it (else the state's own), kept
    beside the state for the shell's freshness check (shared/services/inbound.py) and the
    core's idle check (``is_idle``). Fields added since version 1 are optional on reading,
    so a state saved before them still loads."""
    body: dict[str, Any] = {
        "v": STATE_VERSION,
        "phase": state.phase.value,
        "conversation_id": str(state.conversation_id),
        "resume_phase": state.resume_phase.value if state.resume_phase else None,
        "recent_ticket": _media_json(state.recent_ticket),
        "claim": _draft_json(state.claim),
        "language": state.language,
        "proposal": _draft_json(state.proposal),
        "resend_after": state.resend_after.isoformat() if state.resend_after else None,
        "replaced_codes": list(state.replaced_codes),
        "choices": [
            {"side": choice.side, "typed": choice.typed, "candidates": choice.candidates}
            for choice in state.choices
        ],
        "pending_hour": list(state.pending_hour) if state.pending_hour else None,
    }
    saved = saved_at or state.saved_at
    if saved is not None:
        body["saved_at"] = saved.isoformat()
    return _STATE_JSON.encode(body).decode()


def state_from_json(text: str) -> ConversationState | None:
    """None for anything unreadable (an old version, a corrupted value): start afresh."""
    return stored_state_from_json(text)[0]


def stored_state_from_json(text: str) -> tuple[ConversationState | None, datetime | None]:
    """The state and when it was saved (None for either when unreadable or absent)."""
    try:
        body = json.loads(text)
        raw_saved_at = body.get("saved_at")
        saved_at = datetime.fromisoformat(raw_saved_at) if raw_saved_at else None
    except (ValueError, TypeError, AttributeError):
        return None, None
    if saved_at is not None and saved_at.tzinfo is None:
        saved_at = None
    return _state_from_body(body, saved_at), saved_at


class _Unreadable(ValueError):
    pass


def _aware(raw: Any) -> datetime | None:
    if not raw:
        return None
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise _Unreadable
    return moment


def _draft_from(raw_claim: Any) -> ClaimDraft | None:
    if raw_claim is None:
        return None
    departure = _aware(raw_claim.get("departure"))
    journey_date = raw_claim.get("journey_date")
    return ClaimDraft(
        journey_id=UUID(raw_claim["journey_id"]),
        journey_date=date.fromisoformat(journey_date) if journey_date else None,
        origin=raw_claim.get("origin"),
        destination=raw_claim.get("destination"),
        departure=departure.astimezone(claims.UK) if departure else None,
        ticket=_media_from(raw_claim.get("ticket") or []),
        reviewed=bool(raw_claim.get("reviewed", False)),
        duplicate_warned=bool(raw_claim.get("duplicate_warned", False)),
        origin_crs=_text_or_none(raw_claim.get("origin_crs")),
        origin_name=_text_or_none(raw_claim.get("origin_name")),
        destination_crs=_text_or_none(raw_claim.get("destination_crs")),
        destination_name=_text_or_none(raw_claim.get("destination_name")),
    )


def _text_or_none(raw: Any) -> str | None:
    return None if raw is None else str(raw)


def _choices_from(raw: Any) -> tuple[StationChoice, ...]:
    return tuple(
        StationChoice(
            side=ORIGIN if item["side"] == ORIGIN else DESTINATION,
            typed=str(item["typed"]),
            candidates=tuple((str(crs), str(name)) for crs, name in item["candidates"]),
        )
        for item in raw or ()
    )


def _hour_from(raw: Any) -> tuple[int, int] | None:
    if not raw:
        return None
    hour, minute = (int(part) for part in raw)
    return hour, minute


def _state_from_body(body: Any, saved_at: datetime | None = None) -> ConversationState | None:
    try:
        if body.get("v") != STATE_VERSION:
            return None
        resume = body.get("resume_phase")
        language = body.get("language") or DEFAULT_LANGUAGE
        return ConversationState(
            phase=Phase(body["phase"]),
            conversation_id=UUID(body["conversation_id"]),
            claim=_draft_from(body.get("claim")),
            resume_phase=Phase(resume) if resume else None,
            recent_ticket=_media_from(body.get("recent_ticket") or []),
            language=str(language),
            proposal=_draft_from(body.get("proposal")),
            resend_after=_aware(body.get("resend_after")),
            replaced_codes=tuple(str(item) for item in body.get("replaced_codes") or ()),
            saved_at=saved_at,
            choices=_choices_from(body.get("choices")),
            pending_hour=_hour_from(body.get("pending_hour")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
