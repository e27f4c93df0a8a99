"""gdpr_cleanup: daily retention anonymisation (RAILREPAY-701), POSTed by Cloud Scheduler.

    POST /              run; 200 with a JSON summary (500 when some users could not be
                        anonymised, so the scheduler records a failure and retries: safe)
    POST /?dry_run=true count only (or a JSON body {"dry_run": true}); changes nothing
    GET  /health        200 / 503

Who may call it is decided before a request gets here: only the scheduler's service
account holds the invoker role (Terraform, OIDC).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import flask
import functions_framework
import redis

from shared.adapters.redis_client import redis_client
from shared.db import Database
from shared.errors import BadRequest, NotFound, PayloadTooLarge, WhatsAppHandlerError
from shared.http import bind_request_context, error_response, health_response, json_response
from shared.logs import configure_logging, get_logger
from shared.services import gdpr
from shared.settings import Settings, load_settings

log = get_logger("gdpr_cleanup")
_MAX_BODY_BYTES = 4096
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})


@dataclass(frozen=True)
class Deps:
    settings: Settings
    database: Database
    redis: redis.Redis
    target: gdpr.RedisTarget

    def close(self) -> None:
        self.database.close()
        self.redis.close()


@lru_cache(maxsize=1)
def deps() -> Deps:
    settings = load_settings("otp_pepper")  # names the Redis keys to erase
    configure_logging(settings.log_level)
    client = redis_client(settings)
    return Deps(settings, Database(settings), client, gdpr.redis_target(settings, client))


def _ping_database() -> None:
    deps().database.ping()


def _ping_redis() -> None:
    deps().redis.ping()


def _method_not_allowed(allowed: str) -> flask.Response:
    response = json_response({"error": f"method not allowed; use {allowed}"}, status=405)
    response.headers["Allow"] = allowed
    return response


def parse_dry_run(request: flask.Request) -> bool:
    """``?dry_run=true`` or a JSON body ``{"dry_run": true}``; an empty body means a run."""
    body = request.get_data(cache=False)
    if len(body) > _MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body larger than {_MAX_BODY_BYTES} bytes")
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
    if not isinstance(parsed, dict):
        raise BadRequest("body must be empty or a JSON object")
    value = parsed.get("dry_run", False)
    if not isinstance(value, bool):
        raise BadRequest("dry_run must be a boolean")
    return value


@functions_framework.http
def gdpr_cleanup(request: flask.Request) -> flask.Response:
    correlation_id = bind_request_context(request)
    if request.path == "/health":
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        return health_response({"database": _ping_database, "redis": _ping_redis})
    try:
        if request.path not in ("", "/"):
            raise NotFound("Not found")
        if request.method != "POST":
            return _method_not_allowed("POST")
        dry_run = parse_dry_run(request)
        built = deps()
        policy = gdpr.RetentionPolicy.from_settings(built.settings)
        now = datetime.now(UTC)
        if dry_run:
            preview = gdpr.preview_retention(built.database, now=now, policy=policy)
            return json_response(preview.as_dict())
        summary = gdpr.run_retention(
            built.database, built.target, now=now, policy=policy, correlation_id=correlation_id
        )
    except WhatsAppHandlerError as error:  # 400, 404, 413, 503 (database gone)
        return error_response(error)
    except Exception:
        log.exception("retention run failed", action="gdpr.run_failed")
        return json_response({"error": "retention run failed; see the logs"}, status=500)
    return json_response(summary.as_dict(), status=500 if summary.failed_user_ids else 200)
