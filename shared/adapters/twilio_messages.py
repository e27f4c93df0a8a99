"""Twilio's Messages API through the real twilio library, pointed where settings say.

``TWILIO_API_BASE_URL`` (default https://api.twilio.com) replaces scheme and host of
every request, so tests and `make dev` reach a local stand-in that speaks Twilio's paths
while the library builds, signs and parses everything as it does in production.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException

from shared.settings import Settings

if TYPE_CHECKING:
    from twilio.http import HttpClient
    from twilio.rest import Client

DEFAULT_API_BASE_URL = "https://api.twilio.com"


def _build_client(settings: Settings) -> Client:
    """Import twilio's REST client (and requests) only when a message is first sent: most
    webhook requests send nothing, and the import costs ~150 ms of cold start."""
    from twilio.rest import Client

    assert settings.twilio_auth_token is not None  # noqa: S101 - checked by require()
    base_url = settings.twilio_api_base_url or DEFAULT_API_BASE_URL
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=_http_client(base_url, settings.twilio_timeout_seconds),
    )


def _http_client(base_url: str, timeout: float) -> HttpClient:
    """twilio's HttpClient for ``base_url``: a lean one on urllib3 when no proxy applies
    (Cloud Functions), else twilio's own on requests with the environment read once."""
    from requests.utils import get_environ_proxies, select_proxy

    # requests reads the proxy and CA-bundle variables on every request (trust_env),
    # walking os.environ twice a message: read once here, for the one host we talk to.
    proxies = get_environ_proxies(base_url)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if select_proxy(base_url, proxies) is None:
        return _urllib3_http_client(base_url, timeout, ca_bundle)
    return _requests_http_client(base_url, timeout, proxies, ca_bundle)


def _requests_http_client(
    base_url: str, timeout: float, proxies: dict[str, str], ca_bundle: str | None
) -> HttpClient:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.http.response import Response

    class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
        """Sends every request to ``base_url``'s scheme and host, keeping Twilio's path."""

        def __init__(self) -> None:
            super().__init__(timeout=timeout, pool_connections=True)
            target = urlsplit(base_url)
            self._scheme, self._netloc = target.scheme, target.netloc
            # What Session.merge_environment_settings finds for this host on every
            # request, as session settings (the same precedence: per-request ones win).
            self.session.proxies.update(proxies)
            if ca_bundle:
                self.session.verify = ca_bundle
            self.session.trust_env = False  # and no ~/.netrc: Twilio's auth is explicit

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
            parts = urlsplit(url)
            rewritten = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, ""))
            return super().request(method, rewritten, *args, **kwargs)

    return BaseUrlHttpClient()


def _urllib3_http_client(base_url: str, timeout: float, ca_bundle: str | None) -> HttpClient:
    """What twilio's TwilioHttpClient sends and answers, without requests' Session.

    Measured (notifier, one message to the local stand-in): 0.70 -> 0.40 ms of CPU a send.
    requests prepares every request anew (merging session settings, cookies, hooks,
    runtime-checked Protocol isinstance calls) and parses cookies from every response;
    Twilio's API uses none of that. Headers, form encoding (a list value repeats its
    key), Basic auth, certificate verification against the same CA bundle, no retries,
    the same exception classes for transport failures (their names are logged) and
    twilio's request/response logging are as with TwilioHttpClient.
    """
    import certifi
    import requests
    import urllib3
    from requests.utils import default_headers, get_encoding_from_headers
    from twilio.http import HttpClient
    from twilio.http.http_client import _logger
    from twilio.http.response import Response
    from urllib3.exceptions import (
        ConnectTimeoutError,
        MaxRetryError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
    )
    from urllib3.exceptions import SSLError as Urllib3SSLError

    target = urlsplit(base_url)
    scheme, netloc = target.scheme, target.netloc
    pool_options: dict[str, Any] = {
        # As requests' HTTPAdapter: Retry(0, read=False), and TwilioHttpClient's pool size.
        "retries": urllib3.Retry(0, read=False),
        "maxsize": min(32, (os.cpu_count() or 1) + 4),
        "block": False,
    }
    if scheme == "https":
        pool_options["cert_reqs"] = "CERT_REQUIRED"
        bundle = ca_bundle or certifi.where()
        pool_options["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    pools = urllib3.PoolManager(**pool_options)
    # requests' session headers, under twilio's (Accept-Encoding and keep-alive remain).
    base_headers = dict(default_headers())

    class Urllib3HttpClient(HttpClient):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(_logger, False, timeout)

        def request(
            self,
            method: str,
            url: str,
            params: dict[str, object] | None = None,
            data: dict[str, object] | None = None,
            headers: dict[str, str] | None = None,
            auth: tuple[str, str] | None = None,
            timeout: float | None = None,
            allow_redirects: bool = False,
        ) -> Response:
            if timeout is None:
                timeout = self.timeout
            elif timeout <= 0:
                raise ValueError(timeout)
            self.log_request(
                {
                    "method": method.upper(),
                    "url": url,
                    "params": params,
                    "headers": headers,
                    "auth": auth,
                }
            )
            parts = urlsplit(url)
            query = "&".join(filter(None, (parts.query, _form(params))))
            target = urlunsplit((scheme, netloc, parts.path, query, ""))
            sent_headers = {**base_headers, **(headers or {})}
            if auth is not None:
                sent_headers["Authorization"] = _basic_auth(*auth)
            body = None
            if sent_headers.get("Content-Type") in ("application/json", "application/scim+json"):
                if data is not None:
                    body = json.dumps(data, allow_nan=False).encode()
            elif data:
                body = _form(data).encode()
            try:
                answer = pools.request(
                    method.upper(),
                    target,
                    body=body,
                    headers=sent_headers,
                    timeout=urllib3.Timeout(connect=timeout, read=timeout),
                    redirect=allow_redirects,
                )
            except MaxRetryError as error:
                # urllib3's NewConnectionError is a ConnectTimeoutError too: requests
                # tells them apart the same way.
                if isinstance(error.reason, ConnectTimeoutError) and not isinstance(
                    error.reason, NewConnectionError
                ):
                    raise requests.ConnectTimeout(error) from error
                if isinstance(error.reason, Urllib3SSLError):
                    raise requests.exceptions.SSLError(error) from error
                raise requests.ConnectionError(error) from error
            except ReadTimeoutError as error:
                raise requests.ReadTimeout(error) from error
            except Urllib3SSLError as error:
                raise requests.exceptions.SSLError(error) from error
            except (ProtocolError, OSError) as error:
                raise requests.ConnectionError(error) from error
            # HTTPHeaderDict is case-insensitive like requests' CaseInsensitiveDict.
            encoding = get_encoding_from_headers(answer.headers) or "utf-8"  # type: ignore[arg-type]
            response = Response(
                answer.status, str(answer.data, encoding, errors="replace"), answer.headers
            )
            self.log_response(answer.status, response)
            self._test_only_last_response = response
            return response

    return Urllib3HttpClient()


def _form(fields: dict[str, object] | None) -> str:
    """application/x-www-form-urlencoded as requests encodes a dict: a list or tuple
    value repeats its key, None is left out."""
    if not fields:
        return ""
    pairs = []
    for key, value in fields.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, item) for item in values if item is not None]
    return urlencode(pairs, doseq=True)


@lru_cache(maxsize=4)
def _basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode("latin1")).decode("ascii")
    return f"Basic {token}"


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
