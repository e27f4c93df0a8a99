"""Twilio's Messages API through the real twilio library, pointed where settings say.

``TWILIO_API_BASE_URL`` (default https://api.twilio.com) replaces scheme and host of
every request, so tests and `make dev` reach a local stand-in that speaks Twilio's paths
while the library builds, signs and parses everything as it does in production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException

from shared.settings import Settings

if TYPE_CHECKING:
    from twilio.rest import Client

DEFAULT_API_BASE_URL = "https://api.twilio.com"


def _build_client(settings: Settings) -> Client:
    """Import twilio's REST client (and requests) only when a message is first sent: most
    webhook requests send nothing, and the import costs ~150 ms of cold start."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.http.response import Response
    from twilio.rest import Client

    class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
        """Sends every request to ``base_url``'s scheme and host, keeping Twilio's path."""

        def __init__(self, base_url: str, timeout: float) -> None:
            super().__init__(timeout=timeout, pool_connections=True)
            target = urlsplit(base_url)
            self._scheme, self._netloc = target.scheme, target.netloc

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
            parts = urlsplit(url)
            rewritten = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, ""))
            return super().request(method, rewritten, *args, **kwargs)

    assert settings.twilio_auth_token is not None  # noqa: S101 - checked by require()
    http_client = BaseUrlHttpClient(
        settings.twilio_api_base_url or DEFAULT_API_BASE_URL, settings.twilio_timeout_seconds
    )
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client,
    )


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str


class TwilioMessages:
    """The one place that sends messages; everything else asks it."""

    def __init__(self, settings: Settings) -> None:
        settings.require("twilio_account_sid", "twilio_auth_token")
        self._settings = settings
        self._client: Client | None = None
        self._client_lock = threading.Lock()
        self._status_callback = settings.status_callback_url

    def send(
        self,
        *,
        to: str,
        from_: str,
        body: str | None = None,
        content_sid: str | None = None,
        content_variables: str | None = None,
    ) -> SentMessage:
        kwargs: dict[str, Any] = {"to": to, "from_": from_}
        if body is not None:
            kwargs["body"] = body
        if content_sid is not None:
            kwargs["content_sid"] = content_sid
        if content_variables is not None:
            kwargs["content_variables"] = content_variables
        if self._status_callback:
            kwargs["status_callback"] = self._status_callback
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _build_client(self._settings)
        message = self._client.messages.create(**kwargs)
        return SentMessage(sid=str(message.sid), status=str(message.status))


def is_retryable(error: Exception) -> bool:
    """5xx, 429 and transport failures may succeed later; other 4xx never will."""
    if isinstance(error, TwilioRestException):
        return bool(error.status >= 500 or error.status == 429)
    return True
