"""A local HTTP stand-in for the part of Twilio's REST API we use.

It speaks Twilio's paths and formats (``POST /2010-04-01/Accounts/{sid}/Messages.json``,
form fields ``To``/``From``/``Body``/``ContentSid``/``ContentVariables``, JSON replies,
Twilio-style error bodies), checks HTTP basic auth against the account, and records
every message it is asked to send. Tests can queue failures (``fail_next``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-zA-Z]+)/Messages\.json$")


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


@dataclass
class _Failure:
    status: int
    code: int
    message: str


@dataclass
class TwilioStandIn:
    account_sid: str
    auth_token: str
    messages: list[RecordedMessage] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> TwilioStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output (and phone numbers) out of stderr

            def _reply(self, status: int, payload: dict[str, object]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                match = _MESSAGES_PATH.match(self.path.split("?")[0])
                if not match:
                    self._reply(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                expected = base64.b64encode(
                    f"{standin.account_sid}:{standin.auth_token}".encode()
                ).decode()
                if self.headers.get("Authorization") != f"Basic {expected}" or (
                    match["sid"] != standin.account_sid
                ):
                    self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
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
                now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
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

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
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

    def sent_to(self, to: str) -> list[RecordedMessage]:
        with self._lock:
            return [message for message in self.messages if message.to == to]
