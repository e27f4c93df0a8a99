"""Small HTTP helpers shared by the HTTP functions: JSON answers, errors, health, ids.

The one place where our error family becomes a status code (see shared/errors.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from uuid import uuid4

import flask

from shared.errors import BadRequest, PayloadTooLarge, WhatsAppHandlerError
from shared.logs import correlation_id_var, trace_var

_SAFE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_TRACE_CONTEXT = re.compile(r"([0-9a-fA-F]{32})/([0-9]{1,20})(?:;o=[01])?")


def json_response(body: Mapping[str, Any] | list[Any], status: int = 200) -> flask.Response:
    return flask.Response(
        json.dumps(body, default=str, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )


def error_response(error: WhatsAppHandlerError) -> flask.Response:
    return json_response({"error": error.reason}, status=error.status_code)


def health_response(checks: Mapping[str, Callable[[], None]]) -> flask.Response:
    """200 when every dependency answers; 503 with the failing ones named otherwise."""
    failures: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as error:  # any failure means "not healthy"
            failures[name] = type(error).__name__
    if failures:
        return json_response({"status": "unavailable", "failing": failures}, status=503)
    return json_response({"status": "ok", "checks": sorted(checks)})


def bind_request_context(request: flask.Request, fallback: str | None = None) -> str:
    """Pick the correlation id (X-Correlation-ID if sane, else ``fallback``, else new) and
    bind it, with Cloud Trace's header, to every log line of this request."""
    candidate = request.headers.get("X-Correlation-ID", "")
    if _SAFE_CORRELATION_ID.match(candidate):
        correlation_id = candidate
    else:
        correlation_id = fallback or uuid4().hex
    correlation_id_var.set(correlation_id)
    # Only its documented shape, TRACE_ID/SPAN_ID;o=OPTIONS (32 hex digits / a decimal
    # span id / 0 or 1), ever reaches a log line; anything else is dropped (D68).
    trace = _TRACE_CONTEXT.fullmatch(request.headers.get("X-Cloud-Trace-Context", ""))
    trace_var.set(trace[1] if trace else None)
    return correlation_id


def method_not_allowed(allowed: str) -> flask.Response:
    response = json_response({"error": f"method not allowed; use {allowed}"}, status=405)
    response.headers["Allow"] = allowed
    return response


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})
SCHEDULER_BODY_MAX_BYTES = 4096


def parse_dry_run(request: flask.Request) -> bool:
    """A scheduled job's POST: ``?dry_run=true`` or a JSON body ``{"dry_run": true}``; an
    empty body (what Cloud Scheduler sends) means a real run."""
    body = request.get_data(cache=False)
    if len(body) > SCHEDULER_BODY_MAX_BYTES:
        raise PayloadTooLarge(f"body larger than {SCHEDULER_BODY_MAX_BYTES} bytes")
    flag = request.args.get("dry_run", "").strip().lower()
    if flag not in _TRUE | _FALSE:
        raise BadRequest("dry_run must be true or false")
    if flag in _TRUE:
        return True
    if not body.strip():
        return False
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        raise BadRequest("body must be empty or a JSON object") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("dry_run", False), bool):
        raise BadRequest("body must be a JSON object with a boolean dry_run")
    return bool(parsed.get("dry_run", False))
