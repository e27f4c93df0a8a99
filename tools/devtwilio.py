"""A local HTTP stand-in for the part of Twilio's REST API we use (tests and `make dev`).

It speaks Twilio's paths and formats (``POST /2010-04-01/Accounts/{sid}/Messages.json``,
form fields ``To``/``From``/``Body``/``ContentSid``/``ContentVariables``, JSON replies,
Twilio-style error bodies), checks HTTP basic auth against the account, and records
every message it is asked to send. Tests can queue failures (``fail_next``).

For `make dev` and `whatsapp-handler chat` it also offers, behind the same basic auth:
- ``GET /dev/messages?to=NUMBER&after=N``: the messages sent to NUMBER (both ``+44...``
  and ``whatsapp:+44...``), those after the first N, so a chat window can poll;
- ``POST /dev/media`` (raw bytes, ``Content-Type``): keeps a file and answers its URL,
  shaped like Twilio's media URLs and served without auth, like a ticket photo that
  Twilio hosts for an inbound WhatsApp message.

Development tooling: deployed functions never import this module.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-zA-Z]+)/Messages\.json$")
_MEDIA_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-zA-Z]+)/Messages/(?P<message>MM[0-9a-f]+)"
    r"/Media/(?P<media>ME[0-9a-f]+)$"
)
MAX_MEDIA_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RecordedMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str | None
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None
    form: dict[str, str]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, object]:
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "content_sid": self.content_sid,
            "content_variables": self.content_variables,
            "date_created": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class _Media:
    content_type: str
    content: bytes


@dataclass
class _Failure:
    status: int
    code: int
    message: str


def addressed_to(message_to: str, number: str) -> bool:
    """A message for ``+44...`` or ``whatsapp:+44...`` matches either spelling."""
    return message_to.removeprefix("whatsapp:") == number.removeprefix("whatsapp:")


@dataclass
class TwilioStandIn:
    account_sid: str
    auth_token: str
    messages: list[RecordedMessage] = field(default_factory=list)
    # Called (on the server's thread) for each message sent; `make dev` prints them.
    on_message: Callable[[RecordedMessage], None] | None = None
    _failures: list[_Failure] = field(default_factory=list)
    _media: dict[str, _Media] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None  # noqa: S101 - start() first
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0, host: str = "127.0.0.1") -> TwilioStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as Twilio's API: a client's connection serves many requests
            # (HTTP/1.0 made every message sent cost a TCP connection and a thread here).
            protocol_version = "HTTP/1.1"
            # The headers and the body go out in two writes: on a kept-alive connection
            # Nagle's algorithm holds the body for the client's delayed ACK (~40 ms).
            disable_nagle_algorithm = True
            _body_read = False

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output (and phone numbers) out of stderr

            def parse_request(self) -> bool:
                self._body_read = False  # per request: a connection carries several
                return super().parse_request()

            def _skip_unread_body(self) -> None:
                """Before answering: what a refused request sent must not be read as
                the connection's next request."""
                if self._body_read:
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > 65536:
                    self.close_connection = True
                elif length > 0:
                    self.rfile.read(length)
                self._body_read = True

            def _reply(self, status: int, payload: object) -> None:
                self._skip_unread_body()
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authenticated(self, account_sid: str | None = None) -> bool:
                expected = base64.b64encode(
                    f"{standin.account_sid}:{standin.auth_token}".encode()
                ).decode()
                ok = self.headers.get("Authorization") == f"Basic {expected}"
                if not ok or (account_sid is not None and account_sid != standin.account_sid):
                    self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return False
                return True

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                self._body_read = True
                return self.rfile.read(length)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/dev/messages":
                    if not self._authenticated():
                        return
                    query = parse_qs(parts.query)
                    number = (query.get("to") or [""])[-1]
                    after = int((query.get("after") or ["0"])[-1] or 0)
                    with standin._lock:
                        everything = list(standin.messages)
                    chosen = [
                        {"index": index, **message.as_json()}
                        for index, message in enumerate(everything)
                        if index >= after and (not number or addressed_to(message.to, number))
                    ]
                    self._reply(200, {"messages": chosen, "next": len(everything)})
                    return
                match = _MEDIA_PATH.match(parts.path)
                media = standin._media.get(match["media"]) if match else None
                if media is None:
                    self._reply(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                self._skip_unread_body()
                self.send_response(200)
                self.send_header("Content-Type", media.content_type)
                self.send_header("Content-Length", str(len(media.content)))
                self.end_headers()
                self.wfile.write(media.content)

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                if path == "/dev/media":
                    self._store_media()
                    return
                match = _MESSAGES_PATH.match(path)
                if not match:
                    self._reply(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                if not self._authenticated(match["sid"]):
                    return
                raw = self._body().decode()
                form = {key: values[-1] for key, values in parse_qs(raw).items()}
                failure = standin._take_failure()
                if failure is not None:
                    self._reply(
                        failure.status,
                        {
                            "code": failure.code,
                            "message": failure.message,
                            "status": failure.status,
                        },
                    )
                    return
                if (
                    "To" not in form
                    or "From" not in form
                    or not ("Body" in form or "ContentSid" in form)
                ):
                    self._reply(
                        400,
                        {"code": 21602, "message": "Message body is required.", "status": 400},
                    )
                    return
                recorded = RecordedMessage(
                    sid="SM" + secrets.token_hex(16),
                    account_sid=match["sid"],
                    to=form["To"],
                    from_=form["From"],
                    body=form.get("Body"),
                    content_sid=form.get("ContentSid"),
                    content_variables=form.get("ContentVariables"),
                    status_callback=form.get("StatusCallback"),
                    form=form,
                )
                with standin._lock:
                    standin.messages.append(recorded)
                if standin.on_message is not None:
                    standin.on_message(recorded)
                now = recorded.created_at.strftime("%a, %d %b %Y %H:%M:%S +0000")
                self._reply(
                    201,
                    {
                        "sid": recorded.sid,
                        "account_sid": recorded.account_sid,
                        "to": recorded.to,
                        "from": recorded.from_,
                        "body": recorded.body,
                        "status": "queued",
                        "date_created": now,
                        "date_updated": now,
                        "direction": "outbound-api",
                        "num_segments": "1",
                        "uri": f"/2010-04-01/Accounts/{recorded.account_sid}/Messages/"
                        f"{recorded.sid}.json",
                    },
                )

            def _store_media(self) -> None:
                if not self._authenticated():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_MEDIA_BYTES:
                    self._reply(413, {"code": 11010, "message": "Too large", "status": 413})
                    return
                content = self._body()
                content_type = self.headers.get("Content-Type") or "application/octet-stream"
                message_sid, media_sid = "MM" + secrets.token_hex(16), "ME" + secrets.token_hex(16)
                with standin._lock:
                    standin._media[media_sid] = _Media(content_type, content)
                url = (
                    f"{standin.base_url}/2010-04-01/Accounts/{standin.account_sid}"
                    f"/Messages/{message_sid}/Media/{media_sid}"
                )
                self._reply(201, {"url": url, "content_type": content_type})

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        code: int = 20500,
        message: str = "Internal Server Error",
    ) -> None:
        with self._lock:
            self._failures.extend(_Failure(status, code, message) for _ in range(count))

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self._failures.clear()
            self._media.clear()

    def sent_to(self, to: str) -> list[RecordedMessage]:
        with self._lock:
            return [message for message in self.messages if message.to == to]
