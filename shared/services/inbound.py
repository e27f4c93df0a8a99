"""The imperative shell around the conversation: one inbound WhatsApp message, end to end.

1. De-duplicate: ``SET NX`` on the MessageSid (with a TTL). A second delivery of the
   same message, also one arriving at the same moment elsewhere, finds the key and
   changes nothing. Until the commit the key is released on any failure, so Twilio's
   retry of a message that failed here is served afresh.
2. Rate limit the number (inbound messages per minute), counted by the same Lua script
   that claims the MessageSid, which also reads the conversation state: one round trip.
3. In ONE unit of work: lock the user row (the truth) and touch its ``last_active_at``,
   check the state read with the claim is still the latest (else read it again, now that
   the row is locked), ``conversation.step``, carry out its effects with their outbox
   rows, commit.
4. After the commit only: send the OTP SMS, forget an erased person in Redis, save
   the state and mark the MessageSid done (one pipeline). None of these may raise any
   more (the work is done and must not be repeated), so each failure is logged and the
   reply adjusted where it matters.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn, cast
from uuid import UUID

import redis
from pg8000.exceptions import DatabaseError

from shared import conversation, events, otp
from shared.adapters.conversation_store import (
    UNREADABLE,
    ConversationStore,
    StoredConversation,
    decode,
)
from shared.adapters.rate_limiter import OtpAllowance, RateLimiter
from shared.adapters.twilio_messages import TwilioMessages
from shared.conversation import (
    AcceptTerms,
    ConversationConfig,
    ConversationState,
    Effect,
    EraseUser,
    Inbound,
    MarkVerified,
    OtpCheckOutcome,
    OtpSendOutcome,
    OtpSendResult,
    Outcome,
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
from shared.db import Database, Row, UnitOfWork, error_field
from shared.errors import BadRequest, DependencyUnavailable
from shared.events import Media
from shared.ids import PhoneNumber
from shared.logs import get_logger, mask_phone
from shared.phone import InvalidPhoneNumber, from_whatsapp_address
from shared.redis_keys import RedisKeys
from shared.services.erasure import Erased, ErasureReason, erase_user, forget_in_redis
from shared.settings import Settings

log = get_logger("webhook")

MAX_MEDIA = 10  # Twilio delivers at most 10 media per WhatsApp message
MAX_MEDIA_URL_CHARS = 2048
MAX_CONTENT_TYPE_CHARS = 255
MAX_BODY_CHARS = 4096  # WhatsApp's own limit for one message

# Twilio's signature is an HMAC over the URL and the sorted name + value pairs glued
# together with no separator, so the same signed bytes can be split into other fields
# (issue 19). Every field whose value we act on therefore has one exact shape, checked
# whole (fullmatch), so that no boundary can move into or out of it unnoticed; the
# MessageSid (never reused by Twilio, kept in the replay record) then names the message.
_MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-f]{32}")
_WHATSAPP_ADDRESS = re.compile(r"whatsapp:\+[1-9][0-9]{1,14}")
_NUM_MEDIA = re.compile(r"0|[1-9][0-9]?")
# https with a host name and a path of printable ASCII; plain http only to this machine
# (the local Twilio stand-in of `make dev` and the soak), which Twilio never sends.
_MEDIA_URL = re.compile(
    r"(?:https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"|http://(?:127\.0\.0\.1|localhost))(?::[0-9]{1,5})?/[!-~]*"
)
_MIME_NAME = r"[A-Za-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(rf"{_MIME_NAME}/{_MIME_NAME}(?:; ?{_MIME_NAME}={_MIME_NAME})*")
# C0 controls other than tab, newline and carriage return, and the non-characters
# U+FFFE/U+FFFF: not allowed in XML 1.0 (our TwiML echoes text) and \x00 not in JSONB.
_UNWANTED_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- the message as Twilio posts it ------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    phone_number: PhoneNumber
    message_sid: str
    text: str
    media: tuple[Media, ...] = ()


def is_message_sid(value: str) -> bool:
    return _MESSAGE_SID.fullmatch(value) is not None


def clean_text(text: str) -> str:
    """``text`` without the characters XML 1.0 and JSONB cannot carry (stripped, D65)."""
    return _UNWANTED_CHARACTERS.sub("", text)


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def parse_twilio_form(form: Mapping[str, str], account_sid: str) -> InboundMessage:
    """Twilio's form fields to a message; BadRequest (400, with a reason) otherwise.

    ``account_sid`` is ours (TWILIO_ACCOUNT_SID): Twilio sends it on every webhook.
    Fields we do not act on are ignored, whatever they hold.
    """
    message_sid = _required(form, "MessageSid")
    if not is_message_sid(message_sid):
        raise BadRequest("MessageSid is malformed: SM or MM and 32 lower-case hex digits")
    for alias in ("SmsMessageSid", "SmsSid"):
        if alias in form and form[alias] != message_sid:
            raise BadRequest(f"{alias} differs from MessageSid")
    if _required(form, "AccountSid") != account_sid:
        raise BadRequest("AccountSid is not this service's account")
    sender = _required(form, "From")
    try:
        phone_number = from_whatsapp_address(sender)
    except InvalidPhoneNumber as error:
        raise BadRequest(f"From: {error}") from None
    if sender != f"whatsapp:{phone_number}":
        raise BadRequest("From must be exactly whatsapp:+ and the E.164 number")
    if not _WHATSAPP_ADDRESS.fullmatch(_required(form, "To")):
        raise BadRequest("To must be whatsapp:+ and an E.164 number")
    text = form.get("Body") or ""
    if len(text) > MAX_BODY_CHARS:
        raise BadRequest(f"Body is longer than {MAX_BODY_CHARS} characters")
    return InboundMessage(
        phone_number=phone_number,
        message_sid=message_sid,
        text=clean_text(text),
        media=_media(form),
    )


def _media(form: Mapping[str, str]) -> tuple[Media, ...]:
    raw_count = form.get("NumMedia")
    if raw_count is None or not _NUM_MEDIA.fullmatch(raw_count) or int(raw_count) > MAX_MEDIA:
        raise BadRequest(f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    count = int(raw_count)
    expected = {f"MediaUrl{index}" for index in range(count)}
    expected |= {f"MediaContentType{index}" for index in range(count)}
    for name in form:
        # Beyond NumMedia, or no canonical index (MediaUrl01): exactly NumMedia of each.
        if name.startswith(("MediaUrl", "MediaContentType")) and name not in expected:
            raise BadRequest(f"{name} does not match NumMedia")
    items = []
    for index in range(count):
        url = form.get(f"MediaUrl{index}") or ""
        if len(url) > MAX_MEDIA_URL_CHARS or not _MEDIA_URL.fullmatch(url):
            raise BadRequest(f"MediaUrl{index} must be an https URL")
        content_type = form.get(f"MediaContentType{index}") or ""
        if len(content_type) > MAX_CONTENT_TYPE_CHARS or not _CONTENT_TYPE.fullmatch(content_type):
            raise BadRequest(f"MediaContentType{index} is not a content type")
        items.append(Media(url=url, content_type=content_type.lower()))
    return tuple(items)


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


# --- de-duplication ----------------------------------------------------------------------

_RELEASE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the MessageSid's key, the number's inbound counter for this minute, the number's
# conversation state. ARGV: the pending token, the de-duplication TTL, the counter's TTL.
# A first delivery is claimed, counted and given the conversation state in one round
# trip; a repeat is none of these ({-1}). A state that cannot be read (not a string) is
# reported as such ({count, false, 1}) rather than failing the script, which would leave
# the MessageSid claimed: it is then read again after the row lock, and fails there.
_CLAIM_COUNT_AND_READ = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {-1} end
local count = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local state = redis.pcall('GET', KEYS[3])
if type(state) == 'table' and state.err then return {count, false, 1} end
return {count, state}
"""


# KEYS: the conversation state, the MessageSid, the claim marker. ARGV: the state's JSON
# ('' deletes it), its TTL, the marker's TTL ('' deletes it: no claim in progress). After
# the commit: the state saved, the marker kept or dropped and the MessageSid marked done,
# one round trip.
_SAVE_AND_COMPLETE = """
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[3])
else
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
end
redis.call('SET', KEYS[2], 'done', 'XX', 'KEEPTTL')
return 1
"""


@dataclass(frozen=True)
class Claim:
    token: str
    count_this_minute: int  # messages of this number in the current rate-limit window
    conversation: StoredConversation  # as read with the claim, before the row lock


class MessageLedger:
    """MessageSids being handled ("pending:<token>") or handled ("done")."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_seconds = ttl_seconds
        # EVALSHA: Redis neither receives nor hashes the script's text on every message.
        self._claim = client.register_script(_CLAIM_COUNT_AND_READ)
        self._release = client.register_script(_RELEASE_IF_OURS)
        self._save_and_complete = client.register_script(_SAVE_AND_COMPLETE)

    def claim(
        self, message_sid: str, counter_key: str, counter_ttl: int, conversation_key: str
    ) -> Claim | None:
        """The claim when this delivery is the first (counted at ``counter_key``, with
        the state at ``conversation_key``); None for a repeat."""
        token = f"pending:{secrets.token_hex(8)}"
        reply = cast(
            list[object],
            self._claim(
                keys=[self._keys.message_sid(message_sid), counter_key, conversation_key],
                args=[token, self._ttl_seconds, counter_ttl],
            ),
        )
        count = int(cast(int, reply[0]))
        if count < 0:
            return None
        conversation = UNREADABLE if len(reply) > 2 else decode(cast(str | None, reply[1]))
        return Claim(token=token, count_this_minute=count, conversation=conversation)

    def release(self, message_sid: str, token: str) -> None:
        self._release(keys=[self._keys.message_sid(message_sid)], args=[token])

    def complete(self, message_sid: str) -> None:
        """Mark handled."""
        self._client.set(self._keys.message_sid(message_sid), "done", xx=True, keepttl=True)

    def complete_saving(
        self,
        message_sid: str,
        conversation_key: str,
        conversation: str | None,
        ttl: int,
        marker: tuple[str, int | None],
    ) -> None:
        """Mark handled and save the conversation's JSON at ``conversation_key`` (None
        deletes it), with ``ttl``; ``marker``: the claim marker's key and TTL (None
        deletes it)."""
        marker_key, marker_ttl = marker
        self._save_and_complete(
            keys=[conversation_key, self._keys.message_sid(message_sid), marker_key],
            args=[conversation or "", ttl, "" if marker_ttl is None else marker_ttl],
        )


# --- carrying out effects ----------------------------------------------------------------


@dataclass
class _Execution:
    """The effects of one message inside its unit of work, and what is left for later."""

    uow: UnitOfWork
    services: WebhookServices
    message: InboundMessage
    now: datetime
    correlation_id: str
    user_id: UUID | None
    otp_code: str | None = field(default=None, repr=False)  # to SMS after the commit
    erased: Erased | None = None
    done: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # event types, for the metric

    def _publish(self, event: events.OutboxEvent) -> None:
        self.uow.outbox.add(event)
        self.written.append(event.event_type)

    def _user(self) -> UUID:
        if self.user_id is None:
            raise RuntimeError("effect needs a registered user")
        return self.user_id

    def run(self, effect: Effect) -> Outcome | None:
        self.done.append(type(effect).__name__)
        uow, now, correlation_id = self.uow, self.now, self.correlation_id
        match effect:
            case RegisterUser(terms_version=version):
                self.user_id = self._register(version)
            case AcceptTerms(terms_version=version):
                uow.execute("accept_terms", user_id=self._user(), terms_version=version, now=now)
            case StartConversation(conversation_id=conversation_id):
                self._publish(
                    events.conversation_started(
                        self._user(),
                        correlation_id=correlation_id,
                        started_at=now,
                        conversation_id=conversation_id,
                    )
                )
            case SendOtpSms():
                return self._issue_code()
            case VerifyOtp(code=code, replaced=replaced):
                return self._check_code(code, replaced)
            case MarkVerified():
                uow.fetch_one("mark_verified", user_id=self._user(), now=now)
                self._publish(
                    events.user_verified(
                        self._user(), correlation_id=correlation_id, verified_at=now
                    )
                )
            case SetNotifications(enabled=enabled):
                uow.preferences.set_notification_enabled(self._user(), enabled=enabled, now=now)
            case SetLanguage(language=language):
                uow.preferences.set_language(self._user(), language=language, now=now)
            case EraseUser():
                self.erased = erase_user(
                    uow,
                    self._user(),
                    reason=ErasureReason.REQUEST,
                    now=now,
                    correlation_id=correlation_id,
                )
                if self.erased is not None:
                    self.written.append("user.gdpr.erased")  # its row is added by erase_user
            case PublishTicket(ticket_id=ticket_id, media=media, journey_id=journey_id):
                self._publish(
                    events.ticket_uploaded(
                        self._user(),
                        correlation_id=correlation_id,
                        message_sid=self.message.message_sid,
                        media=media,
                        uploaded_at=now,
                        journey_id=journey_id,
                        ticket_id=ticket_id,
                    )
                )
            case SubmitJourney():
                # With the outbox row, in its round trip: the warning next time (D125).
                uow.execute_later(
                    "record_submitted_journey",
                    user_id=self._user(),
                    fingerprint=effect.fingerprint,
                    submitted_at=now,
                )
                self._publish(
                    events.journey_submitted(
                        self._user(),
                        correlation_id=correlation_id,
                        journey_id=effect.journey_id,
                        journey_date=effect.journey_date.isoformat(),
                        origin=effect.origin,
                        destination=effect.destination,
                        departure=effect.departure.isoformat(),
                        media=effect.ticket,
                        submitted_at=now,
                        origin_crs=effect.origin_crs,
                        destination_crs=effect.destination_crs,
                        origin_name=effect.origin_name,
                        destination_name=effect.destination_name,
                    )
                )
            case RequestClaimStatus():
                self._publish(
                    events.claim_status_requested(
                        self._user(), correlation_id=correlation_id, requested_at=now
                    )
                )
        return None

    def _register(self, terms_version: str) -> UUID:
        phone_number = self.message.phone_number
        try:
            row = self.uow.users.insert(
                phone_number=phone_number,
                terms_version=terms_version,
                terms_accepted_at=self.now,
                now=self.now,
            )
        except Exception:
            # RFC 8.3's warning alert counts these (whatsapp_user_registrations_total).
            log.warning(
                "user registration failed",
                action="user.registration_failed",
                whatsapp_user_registrations_total=1,
                status="failure",
            )
            raise
        if row is None:
            # Registered a moment ago by another message of this number: use that row.
            existing = self.uow.users.find_by_phone(phone_number)
            if existing is None:  # pragma: no cover - the conflict proves it exists
                raise RuntimeError("user vanished during registration")
            return UUID(str(existing["id"]))
        user_id = UUID(str(row["id"]))
        self.uow.preferences.create_defaults(user_id)
        self._publish(
            events.user_registered(
                user_id,
                correlation_id=self.correlation_id,
                terms_version=terms_version,
                registered_at=self.now,
            )
        )
        log.info(
            "user registered",
            action="user.registered",
            user_id=str(user_id),
            whatsapp_user_registrations_total=1,
            status="success",
        )
        return user_id

    def _issue_code(self) -> OtpSendOutcome:
        services, user_id = self.services, self._user()
        allowance = services.limiter.allow_otp(self.message.phone_number, self.now)
        if allowance is not OtpAllowance.ALLOWED:
            log.warning(
                "otp refused by rate limit",
                action="otp.rate_limited",
                user_id=str(user_id),
                limit=allowance.value,
            )
            return OtpSendOutcome(
                OtpSendResult.RATE_LIMITED, retry_at=RateLimiter.otp_window_ends(self.now)
            )
        code = otp.generate_code()
        secret = otp.hash_code(services.pepper, self.message.phone_number, code)
        row = self.uow.fetch_one(
            "store_otp",
            user_id=user_id,
            otp_secret=secret,
            expires_at=otp.expiry(self.now, services.settings.otp_ttl_seconds),
            now=self.now,
        )
        previous = row["previous_secret"] if row is not None else None
        self.otp_code = code
        return OtpSendOutcome(
            OtpSendResult.SENT, replaced=previous if previous and previous != secret else None
        )

    def _check_code(self, code: str, replaced: tuple[str, ...] = ()) -> OtpCheckOutcome:
        settings, user_id = self.services.settings, self._user()
        if replaced:
            typed = otp.hash_code(self.services.pepper, self.message.phone_number, code)
            if any(hmac.compare_digest(typed.encode(), old.encode()) for old in replaced):
                log.info(
                    "otp checked", action="otp.checked", user_id=str(user_id), result="replaced"
                )
                return OtpCheckOutcome(otp.OtpCheck(otp.OtpResult.REPLACED))
        row = self.uow.fetch_one(
            "take_otp_attempt", user_id=user_id, max_attempts=settings.otp_max_attempts
        )
        stored = (
            None
            if row is None
            else otp.StoredOtp(
                otp_hash=str(row["otp_secret"]),
                expires_at=row["otp_expires_at"],
                attempts=int(row["otp_attempts"]),
            )
        )
        check = otp.check_code(
            stored,
            code=code,
            phone_number=self.message.phone_number,
            pepper=self.services.pepper,
            now=self.now,
            max_attempts=settings.otp_max_attempts,
        )
        if check.result in (otp.OtpResult.EXHAUSTED, otp.OtpResult.EXPIRED):
            self.uow.execute("clear_otp", user_id=user_id, now=self.now)
        log.info(
            "otp checked",
            action="otp.checked",
            user_id=str(user_id),
            result=check.result.value,
            whatsapp_otp_verified_total=1,
            status="success" if check.result is otp.OtpResult.VERIFIED else "failure",
        )
        return OtpCheckOutcome(check)


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
        recent_journeys=tuple(
            zip(row["journey_fingerprints"] or (), row["journey_submitted_ats"] or (), strict=True)
        ),
    )


# --- one message -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Committed:
    state: ConversationState | None
    reply: str
    base_reply: str
    execution: _Execution
    phase_before: str | None


def handle_inbound(
    message: InboundMessage, services: WebhookServices, *, correlation_id: str
) -> str | None:
    """The reply text for this message, or None for a repeated delivery (say nothing)."""
    now = services.clock()
    ledger = services.ledger
    counter_key, counter_ttl = services.limiter.inbound_counter(message.phone_number, now)
    conversation_key = services.store.key(message.phone_number)
    try:
        claim = ledger.claim(message.message_sid, counter_key, counter_ttl, conversation_key)
    except redis.RedisError as error:
        raise DependencyUnavailable("redis unreachable") from error
    if claim is None:
        log.info(
            "repeated delivery ignored",
            action="webhook.duplicate",
            message_sid=message.message_sid,
        )
        return None
    try:
        if not services.limiter.inbound_allowed(claim.count_this_minute):
            log.warning(
                "inbound rate limit",
                action="webhook.rate_limited",
                message_sid=message.message_sid,
                phone=mask_phone(message.phone_number),
            )
            _complete_quietly(ledger, message.message_sid)
            return conversation.RATE_LIMITED_REPLY
        committed = _decide_and_commit(message, services, now, correlation_id, claim.conversation)
    except BaseException as error:
        # Nothing was committed: let Twilio's retry of this message be served afresh.
        _release_quietly(ledger, message.message_sid, claim.token)
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
    reply = _after_commit(committed, message, services, ledger, conversation_key)
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
    execution = committed.execution
    for event_type, count in sorted(Counter(execution.written).items()):
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
        user_id=str(execution.user_id) if execution.user_id else None,
        phase_before=committed.phase_before,
        phase_after=committed.state.phase.value if committed.state else None,
        effects=execution.done,
        media_count=len(message.media),
    )


# A state lives conversation_ttl_seconds after its last save; this margin covers the time
# from a message's clock reading to its save, and clock differences between instances.
_EXPIRY_MARGIN = timedelta(minutes=5)


def claimed_state_is_latest(
    claimed: StoredConversation, row: Row | None, now: datetime, ttl_seconds: int
) -> bool:
    """Whether the state read with the claim, before the user row was locked, is still
    the latest, so it need not be read again now that the row is locked.

    The messages of one registered user take turns on the row lock, and each one writes
    its time to last_active_at and then saves its state stamped with that same time. So
    a claimed state is the latest when its stamp is the time the row had before this
    message touched it; and no state is the latest when the row's last message is older
    than any state it saved can live. Anything else is read again: a blocked user (whose
    row is not touched), a number with no user but a state, a state with no stamp.
    """
    if row is None:
        return not claimed.present
    if row["blocked_at"] is not None:
        return False
    last_active: datetime | None = row["last_active_at"]
    if last_active is None:
        return False
    if claimed.present:
        return claimed.saved_at is not None and claimed.saved_at == last_active
    return last_active < now - timedelta(seconds=ttl_seconds) - _EXPIRY_MARGIN


def _decide_and_commit(
    message: InboundMessage,
    services: WebhookServices,
    now: datetime,
    correlation_id: str,
    claimed: StoredConversation,
) -> _Committed | None:
    """The message decided and committed; None when it is a replay (changes nothing)."""
    config, store = services.config, services.store
    with services.database.unit_of_work() as uow:
        found = uow.fetch_one(
            "lock_and_touch_user",
            phone_number=message.phone_number,
            now=now,
            message_sid=message.message_sid,
            journeys_since=now - timedelta(days=config.claim_window_days),
        )
        if found is None or not found["first_delivery"]:
            # The replay record has this MessageSid: it changed state before, however long
            # ago (the Redis key may have expired). No effect; the block rolls back.
            return None
        row = found if found["id"] is not None else None
        user = _user_view(row)
        if claimed_state_is_latest(claimed, row, now, store.ttl_seconds):
            stored = claimed.state
        else:
            stored = store.load(message.phone_number).state
        # No state: one more read, for the marker of a claim whose state expired (D106).
        dropped = (
            stored is None
            and user is not None
            and user.verified
            and store.claim_was_open(message.phone_number)
        )
        inbound = Inbound(
            message_sid=message.message_sid,
            text=message.text,
            media=message.media,
            user=user,
            claim_dropped=dropped,
        )
        decision = conversation.step(stored, inbound, now, config)
        execution = _Execution(
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
            outcome = execution.run(pending.pop(0))
            if outcome is not None and state is not None:
                state, more, reply = conversation.resolve(state, outcome, decision.reply, config)
                pending.extend(more)
        uow.commit()
    return _Committed(
        state=state,
        reply=reply,
        base_reply=decision.reply,
        execution=execution,
        phase_before=stored.phase.value if stored else None,
    )


def _after_commit(
    committed: _Committed,
    message: InboundMessage,
    services: WebhookServices,
    ledger: MessageLedger,
    conversation_key: str,
) -> str:
    state, reply, execution = committed.state, committed.reply, committed.execution
    phone_number = message.phone_number
    if execution.otp_code is not None:
        settings = services.settings
        try:
            sent = services.twilio().send(
                to=phone_number,
                from_=str(settings.twilio_sms_from),
                body=otp.sms_body(execution.otp_code, settings.otp_ttl_seconds),
            )
            log.info(
                "otp sent",
                action="otp.sent",
                user_id=str(execution.user_id),
                sms_sid=sent.sid,
                whatsapp_otp_sent_total=1,
                status="success",
            )
        except Exception as error:
            log.warning(
                "otp sms failed",
                action="otp.sms_failed",
                user_id=str(execution.user_id),
                error_type=type(error).__name__,
                whatsapp_otp_sent_total=1,
                status="failure",
            )
            if state is not None:
                failed = OtpSendOutcome(OtpSendResult.FAILED)
                state, _, reply = conversation.resolve(
                    state, failed, committed.base_reply, services.config
                )
    try:
        if execution.erased is not None:
            forget_in_redis(services.client, services.keys, execution.erased.phone_number)
            log.info("user erased", action="user.erased", user_id=str(execution.user_id))
        # The state and the MessageSid's "done" mark travel in one round trip.
        store = services.store
        ledger.complete_saving(
            message.message_sid,
            conversation_key,
            None if state is None else store.encode(state, saved_at=execution.now),
            store.ttl_seconds,
            (
                store.marker_key(phone_number),
                store.marker_ttl_seconds if store.marks_a_claim(state) else None,
            ),
        )
    except redis.RedisError as error:
        # The database has it all; the next message rebuilds the state from the user row.
        # A MessageSid left "pending" makes Twilio's retry of it an empty reply.
        log.warning(
            "conversation state not saved",
            action="conversation.save_failed",
            message_sid=message.message_sid,
            error_type=type(error).__name__,
        )
    return reply


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
