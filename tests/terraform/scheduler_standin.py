"""A local stand-in for the Cloud Scheduler v1 REST API, enough for `whatsapp-handler jobs`.

Speaks the paths google-cloud-scheduler's REST transport calls:

    GET  /v1/projects/{p}/locations/{l}/jobs            list (pageSize, pageToken)
    GET  /v1/projects/{p}/locations/{l}/jobs/{id}        get
    POST /v1/projects/{p}/locations/{l}/jobs/{id}:run    run now
    POST /v1/projects/{p}/locations/{l}/jobs/{id}:pause  pause
    POST /v1/projects/{p}/locations/{l}/jobs/{id}:resume resume

with Google's JSON error shape for unknown jobs. Jobs are seeded by the test (from the
Terraform schedules); every request is recorded, so a test can assert what was called.
Nothing here contacts Google.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_JOB = re.compile(r"^/v1/(?P<name>projects/[^/]+/locations/[^/]+/jobs/[^/:]+)(?::(?P<verb>\w+))?$")
_JOBS = re.compile(r"^/v1/(?P<parent>projects/[^/]+/locations/[^/]+)/jobs$")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class SchedulerStandIn:
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    page_size_cap: int = 2  # small, so listing must follow nextPageToken
    server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add_job(
        self, name: str, *, schedule: str, time_zone: str, uri: str, deadline_seconds: int
    ) -> None:
        self.jobs[name] = {
            "name": name,
            "schedule": schedule,
            "timeZone": time_zone,
            "state": "ENABLED",
            "attemptDeadline": f"{deadline_seconds}s",
            "httpTarget": {
                "uri": uri,
                "httpMethod": "POST",
                "oidcToken": {"serviceAccountEmail": "scheduler@example.iam", "audience": uri},
            },
            "userUpdateTime": "2025-11-30T00:00:00Z",
        }

    def runs(self, name: str) -> int:
        return sum(
            1 for r in self.requests if r.method == "POST" and r.path.endswith(f"{name}:run")
        )

    def start(self) -> SchedulerStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self, what: str) -> None:
                self._answer(
                    404,
                    {
                        "error": {
                            "code": 404,
                            "message": f"Job not found: {what}",
                            "status": "NOT_FOUND",
                        }
                    },
                )

            def _record(self) -> tuple[str, dict[str, list[str]]]:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                query = parse_qs(parts.query)
                with standin._lock:
                    standin.requests.append(
                        Recorded(self.command, parts.path, query, self.headers.get("Authorization"))
                    )
                return parts.path, query

            def do_GET(self) -> None:
                path, query = self._record()
                listing = _JOBS.match(path)
                if listing:
                    names = sorted(n for n in standin.jobs if n.startswith(listing["parent"] + "/"))
                    size = min(int(query.get("pageSize", ["100"])[0] or 100), standin.page_size_cap)
                    start = int(query.get("pageToken", ["0"])[0] or 0)
                    page = names[start : start + size]
                    body: dict[str, Any] = {"jobs": [standin.jobs[n] for n in page]}
                    if start + size < len(names):
                        body["nextPageToken"] = str(start + size)
                    self._answer(200, body)
                    return
                single = _JOB.match(path)
                if single and not single["verb"] and single["name"] in standin.jobs:
                    self._answer(200, standin.jobs[single["name"]])
                    return
                self._not_found(path)

            def do_POST(self) -> None:
                path, _ = self._record()
                single = _JOB.match(path)
                if not single or single["name"] not in standin.jobs:
                    self._not_found(path)
                    return
                job = standin.jobs[single["name"]]
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                if single["verb"] == "run":
                    job["lastAttemptTime"] = now
                    job["status"] = {}
                elif single["verb"] == "pause":
                    job["state"] = "PAUSED"
                elif single["verb"] == "resume":
                    job["state"] = "ENABLED"
                else:
                    self._answer(
                        400,
                        {
                            "error": {
                                "code": 400,
                                "message": "bad verb",
                                "status": "INVALID_ARGUMENT",
                            }
                        },
                    )
                    return
                self._answer(200, job)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
