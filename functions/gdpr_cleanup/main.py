"""gdpr_cleanup: daily retention anonymisation (RAILREPAY-701), POSTed by Cloud Scheduler.

    POST /              run; 200 with a JSON summary (500 when some users could not be
                        anonymised, so the scheduler records a failure and retries: safe)
    POST /?dry_run=true count only (or a JSON body {"dry_run": true}); changes nothing
    GET  /health        200 / 503

Who may call it is decided before a request gets here: only the scheduler's service
account holds the invoker role (Terraform, OIDC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import flask
import functions_framework
import redis

from shared import startup
from shared.adapters.redis_client import redis_client
from shared.db import Database
from shared.errors import NotFound, WhatsAppHandlerError
from shared.http import (
    bind_request_context,
    error_response,
    health_response,
    json_response,
    method_not_allowed,
    parse_dry_run,
)
from shared.logs import configure_logging, get_logger
from shared.services import gdpr
from shared.settings import Settings, load_settings

log = get_logger("gdpr_cleanup")


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


@functions_framework.http
def gdpr_cleanup(request: flask.Request) -> flask.Response:
    correlation_id = bind_request_context(request)
    if request.path == "/health":
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET")
        return health_response({"database": _ping_database, "redis": _ping_redis})
    try:
        if request.path not in ("", "/"):
            raise NotFound("Not found")
        if request.method != "POST":
            return method_not_allowed("POST")
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


startup.imported()  # last: see shared/startup.py
