"""notify: downstream services' notification requests, delivered on WhatsApp (contract 6a).

A CloudEvent function. Pub/Sub delivers each message of ``NOTIFY_TOPIC`` (a push
subscription that functions-framework turns into a CloudEvent, or Eventarc) with data
``{"message": {"data": base64 JSON, "attributes", "messageId"}, "subscription"}``; the
JSON is ``docs/events/notification.request.schema.json``.

The HTTP answer is Pub/Sub's acknowledgement:
- 200 (acknowledged): sent, skipped for a logged reason, a duplicate, failed for good
  (Twilio 4xx), or malformed (it could never succeed; redelivering it would loop).
- 503 (redelivered with backoff, dead-lettered in the end): Twilio 5xx/429/timeout, the
  database unavailable, or another attempt still holding this notification.
- 400 with a JSON reason, before functions-framework parses anything: a body larger than
  ``NOTIFY_BODY_MAX_BYTES`` (refused on its Content-Length unread, or read no further
  than the limit when chunked), or JSON nested too deeply for a parser (D73).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import flask
import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.exceptions import RequestEntityTooLarge, ServiceUnavailable

from shared import startup
from shared.adapters.twilio_messages import TwilioMessages
from shared.db import Database
from shared.errors import DependencyUnavailable
from shared.http import json_response
from shared.logs import configure_logging, correlation_id_var, get_logger
from shared.notification_policy import (
    CORRELATION_ID_PATTERN,
    MalformedNotification,
    parse_notification,
    parse_pubsub_envelope,
)
from shared.services.notifications import NotifierConfig, RetryLater, deliver_notification
from shared.settings import Settings, load_settings

log = get_logger("notifier")
_SAFE_CORRELATION_ID = re.compile(CORRELATION_ID_PATTERN)

# One of our requests is at most MAX_REQUEST_BYTES (32 KB) of data, 43 KB in base64;
# Pub/Sub's attributes (at most 100 of 1.3 KB) and the envelope fit in the rest.
NOTIFY_BODY_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Deps:
    settings: Settings
    database: Database
    messages: TwilioMessages
    config: NotifierConfig

    def close(self) -> None:
        self.database.close()


@lru_cache(maxsize=1)
def deps() -> Deps:
    settings = load_settings("twilio_account_sid", "twilio_auth_token", "twilio_whatsapp_from")
    configure_logging(settings.log_level)
    return Deps(
        settings=settings,
        database=Database(settings),
        messages=TwilioMessages(settings),
        config=NotifierConfig.from_settings(settings),
    )


@functions_framework.cloud_event
def notify(event: CloudEvent) -> None:
    built = deps()  # a missing setting fails the delivery (retried), never drops it
    event_id = re.sub(r"[^A-Za-z0-9._:\-]", "?", str(event["id"]))[:64]  # Pub/Sub's id
    correlation_id_var.set(event_id)
    try:
        message = parse_pubsub_envelope(event.data)
        request = parse_notification(message.data)
    except MalformedNotification as error:
        log.warning(
            "notification request dropped",
            action="notification.malformed",
            reason=error.reason,
            event_id=event_id,
        )
        return  # acknowledged: no redelivery can make it well-formed
    attribute = message.attributes.get("correlation_id", "")
    correlation_id_var.set(
        request.correlation_id
        or (attribute if _SAFE_CORRELATION_ID.match(attribute) else None)
        or message.message_id
        or event_id
    )
    try:
        deliver_notification(
            built.database,
            built.messages,
            request,
            config=built.config,
            now=datetime.now(UTC),
        )
    except DependencyUnavailable as error:
        if not isinstance(error, RetryLater):  # those are logged where they are decided
            log.warning(
                "notification delivery deferred",
                action="notification.deferred",
                reason=error.reason,
                notification_id=request.notification_id,
            )
        raise ServiceUnavailable(description=error.reason) from error


def refuse_unparseable_bodies() -> flask.Response | None:
    """Before functions-framework parses the body (it reads it whole, then json.loads it):
    too big, or nested past the parser's recursion limit (a 500 from the framework)."""
    request = flask.request
    request.max_content_length = NOTIFY_BODY_MAX_BYTES
    try:
        body = request.get_data()  # cached: the framework's get_data() reuses it
    except RequestEntityTooLarge:
        return _refused(f"body larger than {NOTIFY_BODY_MAX_BYTES} bytes")
    try:
        json.loads(body)
    except RecursionError:
        return _refused("body is nested too deeply")
    except ValueError:
        pass  # not JSON: the framework refuses it, or it is a binary CloudEvent's data
    return None


def _refused(reason: str) -> flask.Response:
    # The unread rest of a body too big is never held: gunicorn drains at most 64 KB of
    # it, then closes the connection.
    log.warning("push body refused", action="notification.body_refused", reason=reason)
    return json_response({"error": reason}, status=400)


if flask.has_app_context():  # functions-framework imports this module inside its app
    flask.current_app.before_request(refuse_unparseable_bodies)


@functions_framework.errorhandler(TypeError)  # type: ignore[untyped-decorator]
def push_body_not_an_object(error: TypeError) -> flask.Response:
    """A body that is neither a CloudEvent nor a JSON object: 400 with a reason.

    functions-framework turns a push body that is no CloudEvent into one before our code
    runs, and a non-empty JSON array or a string breaks that conversion with a TypeError
    (a 500). Pub/Sub never sends such a body, so it is refused as the framework refuses
    other malformed bodies, with a 4xx. Any other TypeError is raised again: a 500.
    """
    if isinstance(flask.request.get_json(silent=True), dict):
        raise error
    log.warning("push body refused", action="notification.not_a_push", status=400)
    return json_response({"error": "body must be a Pub/Sub push: a JSON object"}, status=400)


startup.imported()  # last: see shared/startup.py
