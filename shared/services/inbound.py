"""The imperative shell around the conversation: one inbound WhatsApp message, end to end.

The message arrives parsed and checked (``shared/adapters/twilio_form.py``).
1. De-duplicate: the MessageSid is reserved in Redis (``MessageLedger``,
   ``shared/adapters/message_ledger.py``). A second delivery of the same message, also
   one arriving at the same moment elsewhere, finds the reservation and changes nothing.
   Until the commit it is released on any failure, so Twilio's retry of a message that
   failed here is served afresh.
2. Rate limit the number (inbound messages per minute), counted by the same Lua script
   that reserves the MessageSid, which also reads the conversation state: one round trip.
3. In ONE unit of work: lock the user row (the truth) and touch its ``last_active_at``,
   check the state read with the reservation is still the latest (else read it again,
   now that the row is locked), ``conversation.step``, carry out its effects with their
   outbox rows (``EffectRunner``, ``shared/services/conversation_effects.py``), commit.
4. After the commit only: send the OTP SMS, forget an erased person in Redis, save
   the state and mark the MessageSid done (one round trip). None of these may raise any
   more (the work is done and must not be repeated), so each failure is logged and the
   reply adjusted where it matters.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from uuid import UUID

import redis
from pg8000.exceptions import DatabaseError

from shared import conversation, otp
from shared.adapters.conversation_store import ConversationStore, StoredConversation
from shared.adapters.message_ledger import MessageLedger
from shared.adapters.rate_limiter import RateLimiter
from shared.adapters.twilio_form import InboundMessage
from shared.adapters.twilio_messages import TwilioMessages
from shared.conversation import (
    ConversationConfig,
    ConversationState,
    Inbound,
    OtpSendOutcome,
    OtpSendResult,
    Phase,
    UserView,
)
from shared.db import Database, Row, error_field
from shared.errors import BadRequest, DependencyUnavailable
from shared.logs import get_logger, mask_phone
from shared.redis_keys import RedisKeys
from shared.services.conversation_effects import EffectRunner
from shared.settings import Settings

log = get_logger("webhook")


# --- what the shell works with -----------------------------------------------------------


def conversation_config(settings: Settings) -> ConversationConfig:
    return ConversationConfig(
        terms_version=settings.terms_version,
        terms_url=settings.terms_url,
        claim_window_days=settings.claim_window_days,
        otp_ttl_seconds=settings.otp_ttl_seconds,
        support_email=settings.support_email,
        conversation_idle_seconds=settings.conversation_idle_seconds,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebhookServices:
    """Built once per instance by functions/webhook/main.py's ``deps()``."""

    settings: Settings
    database: Database
    client: redis.Redis
    keys: RedisKeys
    store: ConversationStore
    limiter: RateLimiter
    config: ConversationConfig
    pepper: bytes
    ledger: MessageLedger
    # Injectable so tests can move time (OTP expiry, rate-limit windows) without sleeping.
    clock: Callable[[], datetime] = utc_now
    _twilio: TwilioMessages | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, database: Database, client: redis.Redis) -> WebhookServices:
        settings.require("otp_pepper", "twilio_sms_from", "twilio_account_sid")
        assert settings.otp_pepper is not None  # noqa: S101 - checked by require()
        pepper = settings.otp_pepper.get_secret_value().encode()
        keys = RedisKeys(settings.redis_key_prefix, pepper)
        return cls(
            settings=settings,
            database=database,
            client=client,
            keys=keys,
            store=ConversationStore(
                client,
                keys,
                settings.conversation_ttl_seconds,
                settings.claim_marker_ttl_seconds,
            ),
            limiter=RateLimiter(
                client,
                keys,
                inbound_per_minute=settings.rate_limit_inbound_per_minute,
                otp_per_hour=settings.rate_limit_otp_per_hour,
                otp_global_per_hour=settings.rate_limit_otp_global_per_hour,
            ),
            config=conversation_config(settings),
            pepper=pepper,
            ledger=MessageLedger(client, keys, settings.message_dedupe_ttl_seconds),
        )

    def twilio(self) -> TwilioMessages:
        if self._twilio is None:
            self._twilio = TwilioMessages(self.settings)
        return self._twilio


def _user_view(row: Row | None) -> UserView | None:
    if row is None:
        return None
    return UserView(
        user_id=UUID(str(row["id"])),
        verified=row["verified_at"] is not None,
        blocked=row["blocked_at"] is not None,
        terms_version=row["terms_version"],
        notifications_enabled=row["notification_enabled"] is not False,
        language=str(row["language"] or conversation.DEFAULT_LANGUAGE),
    )


# --- one message -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Committed:
    state: ConversationState | None
    reply: str
    base_reply: str
    runner: EffectRunner
    phase_before: str | None


def handle_inbound(
    message: InboundMessage, services: WebhookServices, *, correlation_id: str
) -> str | None:
    """The reply text for this message, or None for a repeated delivery (say nothing)."""
    now = services.clock()
    ledger = services.ledger
    counter_key, counter_ttl = services.limiter.inbound_counter(message.phone_number, now)
    # The number's state and claim marker keys (each a keyed hash of the number).
    conversation_keys = (
        services.store.key(message.phone_number),
        services.store.marker_key(message.phone_number),
    )
    conversation_key = conversation_keys[0]
    try:
        reservation = ledger.reserve(
            message.message_sid, counter_key, counter_ttl, conversation_keys
        )
    except redis.RedisError as error:
        raise DependencyUnavailable("redis unreachable") from error
    if reservation is None:
        log.info(
            "repeated delivery ignored",
            action="webhook.duplicate",
            message_sid=message.message_sid,
        )
        return None
    try:
        if not services.limiter.inbound_allowed(reservation.count_this_minute):
            log.warning(
                "inbound rate limit",
                action="webhook.rate_limited",
                message_sid=message.message_sid,
                phone=mask_phone(message.phone_number),
            )
            _complete_quietly(ledger, message.message_sid)
            return conversation.RATE_LIMITED_REPLY
        committed = _decide_and_commit(
            message, services, now, correlation_id, reservation.conversation
        )
    except BaseException as error:
        # Nothing was committed: let Twilio's retry of this message be served afresh.
        _release_quietly(ledger, message.message_sid, reservation.token)
        if isinstance(error, redis.RedisError):
            raise DependencyUnavailable("redis unreachable") from error
        if isinstance(error, DatabaseError) and (error_field(error, "C") or "").startswith("22"):
            _refuse_data_error(error, message, services, conversation_key)
        raise
    if committed is None:
        log.info(
            "replayed message ignored",
            action="webhook.replay",
            message_sid=message.message_sid,
        )
        _complete_quietly(ledger, message.message_sid)
        return None
    reply = _after_commit(committed, message, services, conversation_keys)
    if log.is_enabled(logging.INFO):  # the fields cost ~10 us to build: not for nothing
        _log_handled(message, committed)
    return reply


def _refuse_data_error(
    error: DatabaseError,
    message: InboundMessage,
    services: WebhookServices,
    conversation_key: str,
) -> NoReturn:
    """PostgreSQL refused a value of this message (SQLSTATE class 22, data exception):
    the input's fault, so a 400, never a 500. The error's text and context can quote the
    message, so only its SQLSTATE is logged, and the 400 carries no cause (no traceback).
    The conversation state that led here is dropped (D65): the next message starts again
    from the user row instead of meeting the same refusal."""
    log.warning(
        "message refused by the database",
        action="webhook.data_error",
        message_sid=message.message_sid,
        sqlstate=error_field(error, "C"),
    )
    try:
        services.client.delete(conversation_key)
    except redis.RedisError as redis_error:
        log.warning(
            "conversation state not dropped",
            action="conversation.drop_failed",
            message_sid=message.message_sid,
            error_type=type(redis_error).__name__,
        )
    raise BadRequest("the message holds a value that cannot be stored") from None


def _log_handled(message: InboundMessage, committed: _Committed) -> None:
    runner = committed.runner
    for event_type, count in sorted(Counter(runner.written).items()):
        log.info(
            "outbox events written",
            action="outbox.created",
            event_type=event_type,
            whatsapp_outbox_events_created_total=count,
        )
    log.info(
        "message handled",
        action="webhook.message_handled",
        message_sid=message.message_sid,
        phone=mask_phone(message.phone_number),
        user_id=str(runner.user_id) if runner.user_id else None,
        phase_before=committed.phase_before,
        phase_after=committed.state.phase.value if committed.state else None,
        effects=runner.done,
        media_count=len(message.media),
    )


# A state lives conversation_ttl_seconds after its last save; this margin covers the time
# from a message's clock reading to its save, and clock differences between instances.
_EXPIRY_MARGIN = timedelta(minutes=5)


def reserved_state_is_latest(
    read_early: StoredConversation, row: Row | None, now: datetime, ttl_seconds: int
) -> bool:
    """Whether the state read with the reservation, before the user row was locked, is still
    the latest, so it need not be read again now that the row is locked.

    The messages of one registered user take turns on the row lock, and each one writes
    its time to last_active_at and then saves its state stamped with that same time. So
    a state read early is the latest when its stamp is the time the row had before this
    message touched it; and no state is the latest when the row's last message is older
    than any state it saved can live. Anything else is read again: a blocked user (whose
    row is not touched), a number with no user but a state, a state with no stamp.
    """
    if row is None:
        return not read_early.present
    if row["blocked_at"] is not None:
        return False
    last_active: datetime | None = row["last_active_at"]
    if last_active is None:
        return False
    if read_early.present:
        return read_early.saved_at is not None and read_early.saved_at == last_active
    return last_active < now - timedelta(seconds=ttl_seconds) - _EXPIRY_MARGIN


def _decide_and_commit(
    message: InboundMessage,
    services: WebhookServices,
    now: datetime,
    correlation_id: str,
    read_early: StoredConversation,
) -> _Committed | None:
    """The message decided and committed; None when it is a replay (changes nothing)."""
    config, store = services.config, services.store
    with services.database.unit_of_work() as uow:
        found = uow.fetch_one(
            "lock_and_touch_user",
            phone_number=message.phone_number,
            now=now,
            message_sid=message.message_sid,
        )
        if found is None or not found["first_delivery"]:
            # The replay record has this MessageSid: it changed state before, however long
            # ago (the Redis key may have expired). No effect; the block rolls back.
            return None
        row = found if found["id"] is not None else None
        user = _user_view(row)
        if reserved_state_is_latest(read_early, row, now, store.ttl_seconds):
            read = read_early
        else:
            read = store.load(message.phone_number)
        stored = read.state
        if user is not None and stored is not None and stored.phase is Phase.CLAIM_CONFIRM:
            # A YES here sends the journey: the core warns if it went before (D125).
            sent = uow.fetch_all(
                "recent_journeys",
                user_id=user.user_id,
                since=now - timedelta(days=config.claim_window_days),
            )
            journeys = tuple((journey["fingerprint"], journey["submitted_at"]) for journey in sent)
            user = replace(user, recent_journeys=journeys)
        # No state, but a marker: an unfinished claim's state expired (D106).
        dropped = stored is None and user is not None and user.verified and read.claim_marked
        inbound = Inbound(
            message_sid=message.message_sid,
            text=message.text,
            media=message.media,
            user=user,
            claim_dropped=dropped,
        )
        decision = conversation.step(stored, inbound, now, config)
        runner = EffectRunner(
            uow=uow,
            services=services,
            message=message,
            now=now,
            correlation_id=correlation_id,
            user_id=user.user_id if user else None,
        )
        state, reply = decision.state, decision.reply
        pending = list(decision.effects)
        while pending:
            outcome = runner.run(pending.pop(0))
            if outcome is not None and state is not None:
                state, more, reply = conversation.resolve(state, outcome, decision.reply, config)
                pending.extend(more)
        uow.commit()
    return _Committed(
        state=state,
        reply=reply,
        base_reply=decision.reply,
        runner=runner,
        phase_before=stored.phase.value if stored else None,
    )


def _after_commit(
    committed: _Committed,
    message: InboundMessage,
    services: WebhookServices,
    conversation_keys: tuple[str, str],
) -> str:
    """The state saved first, then the OTP SMS sent: the next message of this number takes
    the row lock at our COMMIT and may read the state at once, so the save does not wait
    for Twilio. A send that fails saves the state again, saying so."""
    state, reply, runner = committed.state, committed.reply, committed.runner
    if runner.erased is not None:
        # The save below deletes the state and claim marker (the state is None): the keys
        # erasure deletes (RedisKeys.state_keys; a test holds the two lists together).
        log.info("user erased", action="user.erased", user_id=str(runner.user_id))
    _save_quietly(services, message.message_sid, conversation_keys, state, runner.now)
    if runner.otp_code is not None and not _send_code(services, message, runner):
        if state is not None:
            failed = OtpSendOutcome(OtpSendResult.FAILED)
            state, _, reply = conversation.resolve(
                state, failed, committed.base_reply, services.config
            )
            _save_quietly(services, message.message_sid, conversation_keys, state, runner.now)
    return reply


def _send_code(services: WebhookServices, message: InboundMessage, runner: EffectRunner) -> bool:
    """The OTP SMS sent; False (logged) when Twilio refused it or could not be reached."""
    settings = services.settings
    assert runner.otp_code is not None  # noqa: S101 - the caller checked
    try:
        sent = services.twilio().send(
            to=message.phone_number,
            from_=str(settings.twilio_sms_from),
            body=otp.sms_body(runner.otp_code, settings.otp_ttl_seconds),
        )
    except Exception as error:
        log.warning(
            "otp sms failed",
            action="otp.sms_failed",
            user_id=str(runner.user_id),
            error_type=type(error).__name__,
            whatsapp_otp_sent_total=1,
            status="failure",
        )
        return False
    log.info(
        "otp sent",
        action="otp.sent",
        user_id=str(runner.user_id),
        sms_sid=sent.sid,
        whatsapp_otp_sent_total=1,
        status="success",
    )
    return True


def _save_quietly(
    services: WebhookServices,
    message_sid: str,
    conversation_keys: tuple[str, str],
    state: ConversationState | None,
    saved_at: datetime,
) -> None:
    """The state, the claim marker and the MessageSid's "done" mark, in one round trip."""
    saved = services.store.to_save(state, saved_at=saved_at)
    try:
        services.ledger.complete_saving(message_sid, conversation_keys, saved)
    except redis.RedisError as error:
        # The database has it all; the next message rebuilds the state from the user row.
        # A MessageSid left "pending" frees Twilio's retry after RESERVATION_TTL_SECONDS,
        # and the durable record (D64) then answers it as a replay.
        log.warning(
            "conversation state not saved",
            action="conversation.save_failed",
            message_sid=message_sid,
            error_type=type(error).__name__,
        )


def _release_quietly(ledger: MessageLedger, message_sid: str, token: str) -> None:
    try:
        ledger.release(message_sid, token)
    except redis.RedisError as error:
        log.warning(
            "message ledger not released",
            action="webhook.release_failed",
            message_sid=message_sid,
            error_type=type(error).__name__,
        )


def _complete_quietly(ledger: MessageLedger, message_sid: str) -> None:
    try:
        ledger.complete(message_sid)
    except redis.RedisError as error:
        log.warning(
            "message ledger not completed",
            action="webhook.complete_failed",
            message_sid=message_sid,
            error_type=type(error).__name__,
        )
