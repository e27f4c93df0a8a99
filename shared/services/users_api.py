"""The internal user API (RFC 4.1) that journey-matcher, delay-tracker and
claim-dispatcher call to validate the user ids they hold (docs/openapi.yaml).

Routing and response shaping are pure functions of their inputs; ``answer`` is the one
call the HTTP function makes, reading in a unit of work that is never committed.

An erased (anonymised) user is still known by id, since downstream rows point at it:
``GET /api/v1/users/{id}`` answers 200 with ``"erased": true``, ``"phone_number": null``
and ``"verified": false``; their preferences were deleted with the rest of their data,
so ``GET /api/v1/users/{id}/preferences`` answers 410 Gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from shared.db import Database, Row
from shared.errors import BadRequest, NotFound, WhatsAppHandlerError

USER_NOT_FOUND = "User not found"
USER_ERASED = "User data erased"
PREFERENCES_NOT_FOUND = "Preferences not found"
ALLOWED_METHODS = ("GET", "HEAD")
_USER_PATH = re.compile(r"^/api/v1/users/(?P<user_id>[^/]+)(?P<preferences>/preferences)?$")
# The canonical form only: uuid.UUID would also take braces, "urn:uuid:" and bare hex,
# and a reference one service stores should be the one every other service stores.
_CANONICAL_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_EXAMPLE_UUID = "123e4567-e89b-42d3-a456-426614174000"


class MethodNotAllowed(WhatsAppHandlerError):
    status_code = 405


class Endpoint(StrEnum):
    HEALTH = "health"
    USER = "user"
    PREFERENCES = "preferences"


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    user_id: UUID | None = None


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_user_id(raw: str) -> UUID:
    """The id from the path, or BadRequest with a reason (never echoing the input)."""
    if not _CANONICAL_UUID.match(raw):
        raise BadRequest(f"user id must be a UUID, for example {_EXAMPLE_UUID}")
    return UUID(raw)


def route(method: str, path: str) -> Route:
    """Which endpoint a request is for; NotFound, MethodNotAllowed or BadRequest if none.

    An unknown path is a 404 whatever the method; a known path with another method a 405;
    a malformed id a 400.
    """
    match = _USER_PATH.match(path)
    if path != "/health" and match is None:
        raise NotFound("Not found")
    if method.upper() not in ALLOWED_METHODS:
        raise MethodNotAllowed(f"method {method.upper()[:16]} not allowed; use GET")
    if match is None:
        return Route(Endpoint.HEALTH)
    kind = Endpoint.PREFERENCES if match["preferences"] else Endpoint.USER
    return Route(kind, parse_user_id(match["user_id"]))


def user_view(row: Row | None) -> ApiResponse:
    """RFC 4.1's shape plus ``erased``; an erased user never shows a phone number."""
    if row is None:
        return ApiResponse(404, {"error": USER_NOT_FOUND})
    erased = row["anonymized_at"] is not None
    return ApiResponse(
        200,
        {
            "id": str(row["id"]),
            "phone_number": None if erased else str(row["phone_number"]),
            "verified": bool(row["verified"]) and not erased,
            "erased": erased,
        },
        {"Cache-Control": "no-store"},
    )


def preferences_view(row: Row | None) -> ApiResponse:
    """RFC 3.2's fields for a live user; 404 unknown user, 410 erased user."""
    if row is None:
        return ApiResponse(404, {"error": USER_NOT_FOUND})
    if row["anonymized_at"] is not None:
        return ApiResponse(410, {"error": USER_ERASED, "erased": True})
    if not row["has_preferences"]:
        # RFC 3.2 promises every user a row; a missing one is reported, not invented.
        return ApiResponse(404, {"error": PREFERENCES_NOT_FOUND})
    updated_at = row["updated_at"]
    return ApiResponse(
        200,
        {
            "user_id": str(row["user_id"]),
            "notification_enabled": bool(row["notification_enabled"]),
            "language": str(row["language"]),
            "timezone": str(row["timezone"]),
            "delay_threshold_minutes": int(row["delay_threshold_minutes"]),
            "auto_claim_enabled": bool(row["auto_claim_enabled"]),
            "updated_at": updated_at.isoformat() if isinstance(updated_at, datetime) else None,
        },
        {"Cache-Control": "no-store"},
    )


def answer(database: Database, user_route: Route) -> ApiResponse:
    """Look the user (or their preferences) up and shape the answer; reads only."""
    if user_route.user_id is None:
        raise ValueError("answer() needs a user route")
    with database.unit_of_work() as uow:
        if user_route.endpoint is Endpoint.PREFERENCES:
            return preferences_view(
                uow.fetch_one("api_find_user_preferences", user_id=user_route.user_id)
            )
        return user_view(uow.fetch_one("api_find_user", user_id=user_route.user_id))
