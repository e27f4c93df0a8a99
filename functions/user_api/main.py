"""user_api: the internal user lookup for downstream services (RFC 4.1, docs/openapi.yaml).

    GET /api/v1/users/{id}              200 {"id", "phone_number", "verified", "erased"}
    GET /api/v1/users/{id}/preferences  200 the RFC 3.2 fields (410 for an erased user)
    GET /health                         200 / 503

Who may call it is decided before a request gets here: in production only the
downstream services' service accounts hold the invoker role (Terraform).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import flask
import functions_framework

from shared import startup
from shared.db import Database
from shared.errors import WhatsAppHandlerError
from shared.http import bind_request_context, error_response, health_response, json_response
from shared.logs import configure_logging, get_logger
from shared.services import users_api
from shared.settings import Settings, load_settings

log = get_logger("user_api")


@dataclass(frozen=True)
class Deps:
    settings: Settings
    database: Database

    def close(self) -> None:
        self.database.close()


@lru_cache(maxsize=1)
def deps() -> Deps:
    settings = load_settings()
    configure_logging(settings.log_level)
    return Deps(settings=settings, database=Database(settings))


def _ping_database() -> None:
    deps().database.ping()


@functions_framework.http
def user_api(request: flask.Request) -> flask.Response:
    bind_request_context(request)
    try:
        user_route = users_api.route(request.method, request.path)
        if user_route.endpoint is users_api.Endpoint.HEALTH:
            return health_response({"database": _ping_database})
        result = users_api.answer(deps().database, user_route)
    except users_api.MethodNotAllowed as error:
        response = error_response(error)
        response.headers["Allow"] = ", ".join(users_api.ALLOWED_METHODS)
        return response
    except WhatsAppHandlerError as error:  # 400, 404, 503
        if error.status_code >= 500:
            log.warning("lookup failed", action="user_api.unavailable", reason=error.reason)
        return error_response(error)
    except Exception:
        # Only a fault of ours or of the database gets here; callers may retry a GET.
        log.exception("lookup failed", action="user_api.failed")
        return json_response({"error": "Temporarily unavailable"}, status=503)
    log.info(
        "user looked up",
        action=f"user_api.{user_route.endpoint.value}",
        user_id=str(user_route.user_id),
        status=result.status,
    )
    response = json_response(result.body, status=result.status)
    response.headers.update(result.headers)
    return response


startup.imported()  # last: see shared/startup.py
