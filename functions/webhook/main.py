"""webhook: Twilio calls this for every WhatsApp message our number receives.

    POST /          a form-encoded inbound message  -> 200 TwiML (text/xml)
    POST /status    Twilio's StatusCallback for messages we sent -> 204
    GET  /health    200 / 503 JSON (PostgreSQL and Redis)

Here we only read the form, check Twilio's signature and map the answer to HTTP; the
conversation lives in shared/services/inbound.py. Bad input is 4xx with a JSON reason
(413 too big, 415 not a form, 403 not signed by Twilio, 400 bad fields) and writes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

import flask
import functions_framework
import redis
from twilio.request_validator import RequestValidator, add_port, remove_port

from shared import startup, twiml
from shared.adapters.redis_client import redis_client
from shared.adapters.twilio_form import is_message_sid, parse_twilio_form, read_form
from shared.db import Database
from shared.errors import (
    Forbidden,
    WhatsAppHandlerError,
)
from shared.http import bind_request_context, error_response, health_response, json_response
from shared.logs import configure_logging, get_logger
from shared.services.delivery_status import record_delivery_status
from shared.services.inbound import WebhookServices, handle_inbound
from shared.settings import Settings, SettingsError, load_settings

log = get_logger("webhook")


@dataclass(frozen=True)
class Deps:
    settings: Settings
    database: Database
    client: redis.Redis
    services: WebhookServices

    def close(self) -> None:
        self.database.close()
        self.client.close()


@lru_cache(maxsize=1)
def deps() -> Deps:
    settings = load_settings()
    configure_logging(settings.log_level)
    database = Database(settings)
    client = redis_client(settings)
    services = WebhookServices.build(settings, database, client)
    return Deps(settings=settings, database=database, client=client, services=services)


class MethodNotAllowed(WhatsAppHandlerError):
    status_code = 405


class SignatureCheck:
    """X-Twilio-Signature for one public URL, computed by twilio's RequestValidator.

    ``RequestValidator.validate`` parses the URL and computes two signatures on every call
    (with and without the port, as Twilio's back end is inconsistent): ~50 us. The two
    URLs are worked out once here and the second is computed only when the first does not
    match, so a genuine request costs one HMAC.
    """

    def __init__(self, auth_token: str, public_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        parsed = urlparse(public_url)
        self._urls = tuple(dict.fromkeys((remove_port(parsed), add_port(parsed))))

    def valid(self, form: Mapping[str, str], signature: str) -> bool:
        expected = signature.encode()
        return any(
            hmac.compare_digest(self._validator.compute_signature(url, form).encode(), expected)
            for url in self._urls
        )


@lru_cache(maxsize=4)
def signature_check(auth_token: str, public_url: str) -> SignatureCheck:
    return SignatureCheck(auth_token, public_url)


def authenticate(
    settings: Settings, public_url: str | None, form: Mapping[str, str], signature: str
) -> None:
    """Twilio signs the public URL it called; behind Google's front end we see another
    host, so the URL comes from settings, never from the request."""
    token = settings.twilio_auth_token
    if token is None or not public_url:
        log.error("cannot check signatures", action="webhook.signature_unconfigured")
        raise Forbidden("request signature cannot be checked")
    if not signature or not signature_check(token.get_secret_value(), public_url).valid(
        form, signature
    ):
        raise Forbidden("invalid X-Twilio-Signature")


def _health() -> flask.Response:
    try:
        current = deps()
    except SettingsError as error:
        return json_response({"status": "unavailable", "error": str(error)}, status=503)

    def ping_redis() -> None:
        current.client.ping()

    return health_response({"database": current.database.ping, "redis": ping_redis})


def _endpoint(request: flask.Request) -> str:
    return request.path.rstrip("/").rsplit("/", 1)[-1]


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    bind_request_context(request)
    endpoint = _endpoint(request)
    try:
        if endpoint == "health":
            if request.method != "GET":
                raise MethodNotAllowed("use GET")
            return _health()
        if request.method != "POST":
            raise MethodNotAllowed("use POST")
        current = deps()
        settings = current.settings
        form = read_form(request, settings.max_request_bytes)
        message_sid = form.get("MessageSid", "")
        correlation_id = bind_request_context(
            request, fallback=message_sid if is_message_sid(message_sid) else None
        )
        signature = request.headers.get("X-Twilio-Signature", "")
        if endpoint == "status":
            if not settings.status_callback_url:
                # We ask Twilio for no status callbacks, so every POST here is someone
                # else's: refused like any unsigned request, and no ERROR line (D67).
                raise Forbidden("status callbacks are not enabled")
            authenticate(settings, settings.status_callback_url, form, signature)
            record_delivery_status(form)
            return flask.Response(status=204)
        authenticate(settings, settings.webhook_public_url, form, signature)
        message = parse_twilio_form(form, str(settings.twilio_account_sid))
        reply = handle_inbound(message, current.services, correlation_id=correlation_id)
    except WhatsAppHandlerError as error:
        log.warning(
            "request refused",
            action="webhook.refused",
            status=error.status_code,
            reason=error.reason,
        )
        response = error_response(error)
        if isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = "GET" if endpoint == "health" else "POST"
        return response
    except SettingsError as error:
        log.error("misconfigured", action="webhook.misconfigured", reason=str(error))
        return json_response({"error": str(error)}, status=503)
    body = twiml.empty_reply() if reply is None else twiml.message_reply(reply)
    return flask.Response(body, status=200, mimetype=twiml.CONTENT_TYPE)


startup.imported()  # last: see shared/startup.py
