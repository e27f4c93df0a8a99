"""The conversation's effects carried out: what ``conversation.step`` asked for, done
inside the message's unit of work (rows, outbox events, the OTP hash) by the
``EffectRunner``; an effect's outcome (a code sent or refused, a code checked) goes back
to ``conversation.resolve``. The OTP SMS and the Redis clean-up of an erasure wait in the
runner for the commit (shared/services/inbound.py). One ``match`` over the ``Effect``
union, closed by ``assert_never``: a new effect without its case fails mypy.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, assert_never
from uuid import UUID

from shared import events, otp
from shared.adapters.rate_limiter import OtpAllowance, RateLimiter
from shared.adapters.twilio_form import InboundMessage
from shared.conversation import (
    AcceptTerms,
    Effect,
    EraseUser,
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
    VerifyOtp,
)
from shared.db import UnitOfWork
from shared.logs import get_logger
from shared.services.erasure import Erased, ErasureReason, erase_user

if TYPE_CHECKING:
    from shared.services.inbound import WebhookServices

log = get_logger("webhook")


@dataclass
class EffectRunner:
    """Carries out the effects of one message inside its unit of work, and keeps what
    is left for after the commit (the OTP to send, the erased number to forget)."""

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

    # Statements whose outcome nothing here reads go with ``execute_later``: they ride with
    # the next statement or the COMMIT (D46), a round trip fewer each; an error still fails
    # the transaction (a class-22 one is the webhook's 400 at the commit).
    def run(self, effect: Effect) -> Outcome | None:
        self.done.append(type(effect).__name__)
        uow, now, correlation_id = self.uow, self.now, self.correlation_id
        match effect:
            case RegisterUser(terms_version=version):
                self.user_id = self._register(version)
            case AcceptTerms(terms_version=version):
                uow.execute_later(
                    "accept_terms", user_id=self._user(), terms_version=version, now=now
                )
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
                uow.execute_later("mark_verified", user_id=self._user(), now=now)
                self._publish(
                    events.user_verified(
                        self._user(), correlation_id=correlation_id, verified_at=now
                    )
                )
            case SetNotifications(enabled=enabled):
                uow.execute_later(
                    "set_notification_enabled", user_id=self._user(), enabled=enabled, now=now
                )
            case SetLanguage(language=language):
                uow.execute_later("set_language", user_id=self._user(), language=language, now=now)
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
            case _:
                # mypy fails here when an Effect has no case above.
                assert_never(effect)
        return None

    def _register(self, terms_version: str) -> UUID:
        phone_number = self.message.phone_number
        try:
            row = self.uow.fetch_one(
                "insert_user",
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
            existing = self.uow.fetch_one("find_user_by_phone", phone_number=phone_number)
            if existing is None:  # pragma: no cover - the conflict proves it exists
                raise RuntimeError("user vanished during registration")
            return UUID(str(existing["id"]))
        user_id = UUID(str(row["id"]))
        self.uow.execute_later("insert_default_preferences", user_id=user_id)
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
            self.uow.execute_later("clear_otp", user_id=user_id, now=self.now)
        log.info(
            "otp checked",
            action="otp.checked",
            user_id=str(user_id),
            result=check.result.value,
            whatsapp_otp_verified_total=1,
            status="success" if check.result is otp.OtpResult.VERIFIED else "failure",
        )
        return OtpCheckOutcome(check)
