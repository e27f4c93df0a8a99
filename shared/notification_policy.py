"""The notification core (contract 6a): read a request, decide what may be sent.

Pure: no I/O, no clock, no settings. The shell (``shared/services/notifications.py``)
leases the notification, reads the user's rows, asks ``decide`` and does what it says.

    decide(user, preferences, request, now=now, window=timedelta(hours=24))
      -> Send(text) | SendTemplate(content_sid, variables) | Skip(reason)

The request's JSON Schema is ``docs/events/notification.request.schema.json``; the
pydantic model below is the same contract, and the tests check that both agree.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic import model_validator as _model_validator

# Twilio's limit for one WhatsApp message body.
MAX_TEXT_CHARS = 1600
# A request is a few hundred bytes; anything near Pub/Sub's 10 MB is not one of ours.
MAX_REQUEST_BYTES = 32 * 1024
DEFAULT_TEMPLATE_KEY = "default"
DEFAULT_LANGUAGE = "en-GB"  # RFC 3.2: the column default, for a user without preferences

NOTIFICATION_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CONTENT_SID_PATTERN = r"^HX[0-9a-fA-F]{32}$"
# BCP 47 in the shape user_preferences.language holds (en-GB, cy-GB, pl), or the fallback.
TEMPLATE_KEY_PATTERN = r"^(default|[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3})$"
VARIABLE_NAME_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
CORRELATION_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
MAX_VARIABLES = 100

_SAFE_LOCATION = re.compile(r"[^A-Za-z0-9_.\-]")


class MalformedNotification(ValueError):
    """The message can never be delivered; ``reason`` is safe to log (no values quoted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the request ----------------------------------------------------------------------


@dataclass(frozen=True)
class PubSubMessage:
    message_id: str
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotificationRequest:
    notification_id: str
    user_id: UUID
    text: str | None = None
    # language tag (lower case) or "default" -> ContentSid; empty when no template.
    templates: Mapping[str, str] = field(default_factory=dict)
    content_variables: Mapping[str, str] | None = None
    correlation_id: str | None = None


NotificationId = Annotated[str, StringConstraints(pattern=NOTIFICATION_ID_PATTERN)]
UserIdText = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
ContentSid = Annotated[str, StringConstraints(pattern=CONTENT_SID_PATTERN)]
TemplateKey = Annotated[str, StringConstraints(pattern=TEMPLATE_KEY_PATTERN)]
VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_NAME_PATTERN)]
VariableValue = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
CorrelationIdText = Annotated[str, StringConstraints(pattern=CORRELATION_ID_PATTERN)]


class _RequestModel(BaseModel):
    """The edge: strict (no coercion), unknown fields refused, like the JSON Schema."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    notification_id: NotificationId
    user_id: UserIdText
    text: Text | None = None
    content_sid: ContentSid | dict[TemplateKey, ContentSid] | None = None
    content_variables: dict[VariableName, VariableValue] | None = Field(
        default=None, max_length=MAX_VARIABLES
    )
    correlation_id: CorrelationIdText | None = None

    @_model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # The JSON Schema has no null: an optional field is left out, never null.
        if isinstance(data, dict):
            for name in cls.model_fields:
                if name in data and data[name] is None:
                    raise ValueError(f"{name} is null; leave it out instead")
        return data

    @_model_validator(mode="after")
    def _consistent(self) -> _RequestModel:
        if self.text is not None and not self.text.strip():
            raise ValueError("text is blank")
        if self.text is None and self.content_sid is None:
            raise ValueError("text or content_sid is required")
        if self.content_variables is not None and self.content_sid is None:
            raise ValueError("content_variables needs content_sid")
        if isinstance(self.content_sid, dict):
            if DEFAULT_TEMPLATE_KEY not in self.content_sid:
                raise ValueError('content_sid by language needs a "default" entry')
            lowered = {key.lower() for key in self.content_sid}
            if len(lowered) != len(self.content_sid):
                raise ValueError("content_sid names a language twice")
        return self

    def to_request(self) -> NotificationRequest:
        if isinstance(self.content_sid, str):
            templates = {DEFAULT_TEMPLATE_KEY: self.content_sid}
        elif self.content_sid is not None:
            templates = {key.lower(): sid for key, sid in self.content_sid.items()}
        else:
            templates = {}
        return NotificationRequest(
            notification_id=self.notification_id,
            user_id=UUID(self.user_id),
            text=self.text,
            templates=templates,
            content_variables=self.content_variables,
            correlation_id=self.correlation_id,
        )


def parse_pubsub_envelope(event_data: Any) -> PubSubMessage:
    """CloudEvent data of a Pub/Sub delivery: {"message": {"data", "attributes",
    "messageId"}, "subscription"} (Eventarc, or a push that functions-framework converted)."""
    if isinstance(event_data, bytes | str):
        try:
            event_data = json.loads(event_data)
        except (ValueError, RecursionError):
            raise MalformedNotification("event data is not JSON") from None
    if not isinstance(event_data, dict):
        raise MalformedNotification("event data is not a Pub/Sub envelope")
    message = event_data.get("message")
    if not isinstance(message, dict):
        raise MalformedNotification("envelope has no message")
    message_id = message.get("messageId") or message.get("message_id") or ""
    message_id = _SAFE_LOCATION.sub("?", str(message_id))[:64]
    raw = message.get("data")
    if not isinstance(raw, str) or not raw:
        raise MalformedNotification("message has no data")
    if len(raw) > MAX_REQUEST_BYTES * 4 // 3 + 4:
        raise MalformedNotification(f"message data larger than {MAX_REQUEST_BYTES} bytes")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedNotification("message data is not base64") from None
    attributes = message.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
    clean = {str(key): value for key, value in attributes.items() if isinstance(value, str)}
    return PubSubMessage(message_id=message_id, data=data, attributes=clean)


def parse_notification(data: bytes) -> NotificationRequest:
    """The request in a message's data, or MalformedNotification naming what is wrong."""
    if len(data) > MAX_REQUEST_BYTES:
        raise MalformedNotification(f"message data larger than {MAX_REQUEST_BYTES} bytes")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedNotification("message data is not UTF-8") from None
    except (ValueError, RecursionError):
        raise MalformedNotification("message data is not JSON") from None
    if not isinstance(parsed, dict):
        raise MalformedNotification("message data is not a JSON object")
    try:
        return _RequestModel.model_validate(parsed).to_request()
    except ValidationError as error:
        raise MalformedNotification(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    """The first problem, by field name and pydantic's message, never the input value."""
    first = error.errors(include_url=False, include_input=False)[0]
    location = ".".join(_SAFE_LOCATION.sub("?", str(part))[:64] for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    reason = f"{location}: {message}" if location else message
    return reason[:240]


# --- the decision ---------------------------------------------------------------------


class SkipReason(StrEnum):
    UNKNOWN_USER = "unknown_user"
    ERASED = "erased"
    BLOCKED = "blocked"
    UNVERIFIED = "unverified"
    NOTIFICATIONS_OFF = "notifications_off"
    # WhatsApp allows free text only within 24 h of the user's last message.
    OUTSIDE_SESSION_WINDOW = "outside_session_window_without_template"


@dataclass(frozen=True)
class Send:
    text: str


@dataclass(frozen=True)
class SendTemplate:
    content_sid: str
    variables: Mapping[str, str] | None = None

    def variables_json(self) -> str | None:
        """Twilio's ContentVariables: a JSON object of strings."""
        if self.variables is None:
            return None
        return json.dumps(dict(self.variables), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


Decision = Send | SendTemplate | Skip


def decide(
    user: Mapping[str, Any] | None,
    preferences: Mapping[str, Any] | None,
    request: NotificationRequest,
    *,
    now: datetime,
    window: timedelta,
) -> Decision:
    """What to send for ``request`` to ``user`` (a users row), or why nothing.

    A user without a preferences row has the table's defaults (notifications on, en-GB):
    RFC 3.2 says every user has one, and STOP always writes one (an upsert).
    """
    if user is None:
        return Skip(SkipReason.UNKNOWN_USER)
    if user.get("anonymized_at") is not None:
        return Skip(SkipReason.ERASED)
    if user.get("blocked_at") is not None:
        return Skip(SkipReason.BLOCKED)
    if user.get("verified_at") is None:
        return Skip(SkipReason.UNVERIFIED)
    if preferences is not None and not preferences.get("notification_enabled", True):
        return Skip(SkipReason.NOTIFICATIONS_OFF)
    if request.text is not None and in_session_window(user.get("last_active_at"), now, window):
        return Send(request.text)
    language = str((preferences or {}).get("language") or DEFAULT_LANGUAGE)
    content_sid = choose_template(request.templates, language)
    if content_sid is not None:
        return SendTemplate(content_sid, request.content_variables)
    return Skip(SkipReason.OUTSIDE_SESSION_WINDOW)


def in_session_window(last_active_at: datetime | None, now: datetime, window: timedelta) -> bool:
    """WhatsApp's customer service window: free text within ``window`` of their message."""
    if last_active_at is None:
        return False
    return now - last_active_at < window


def choose_template(templates: Mapping[str, str], language: str) -> str | None:
    """The variant for ``language`` (en-GB): that tag, else its language (en), else another
    region of it (en-US), else "default". Keys and tag compare case-insensitively."""
    if not templates:
        return None
    by_key = {key.lower(): sid for key, sid in templates.items()}
    tag = language.strip().lower()
    if tag in by_key:
        return by_key[tag]
    primary = tag.split("-", 1)[0]
    if primary in by_key:
        return by_key[primary]
    for key in sorted(by_key):
        if key != DEFAULT_TEMPLATE_KEY and key.split("-", 1)[0] == primary:
            return by_key[key]
    return by_key.get(DEFAULT_TEMPLATE_KEY)
