"""user_api through functions-framework on real PostgreSQL: the documented shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import functions_framework
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.db import Database
from shared.errors import WhatsAppHandlerError
from shared.services import users_api
from shared.services.erasure import ErasureReason, erase_user
from tests.gdpr.helpers import add_user

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions/user_api/main.py")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PHONE = "+447700900761"


@pytest.fixture(scope="module")
def client(services: Any) -> Any:
    return functions_framework.create_app(target="user_api", source=SOURCE).test_client()


def test_live_user(client: Any, sql: Any) -> None:
    user_id = add_user(sql, PHONE, last_active_at=NOW)

    response = client.get(f"/api/v1/users/{user_id}")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "id": str(user_id),
        "phone_number": PHONE,
        "verified": True,
        "erased": False,
    }


def test_unverified_and_blocked_users_are_live(client: Any, sql: Any) -> None:
    unverified = add_user(sql, PHONE, last_active_at=NOW, verified=False)
    blocked = add_user(
        sql, "+447700900762", last_active_at=NOW, blocked_at=NOW, block_reason="ABUSE"
    )

    assert client.get(f"/api/v1/users/{unverified}").get_json()["verified"] is False
    assert client.get(f"/api/v1/users/{blocked}").get_json() == {
        "id": str(blocked),
        "phone_number": "+447700900762",
        "verified": True,
        "erased": False,
    }


def test_an_upper_case_id_finds_the_user_and_answers_the_canonical_id(
    client: Any, sql: Any
) -> None:
    user_id = add_user(sql, PHONE, last_active_at=NOW)
    response = client.get(f"/api/v1/users/{str(user_id).upper()}")
    assert response.status_code == 200 and response.get_json()["id"] == str(user_id)


def test_missing_user(client: Any, clean_state: Any) -> None:
    for path in (f"/api/v1/users/{uuid4()}", f"/api/v1/users/{uuid4()}/preferences"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.get_json() == {"error": "User not found"}


@pytest.mark.parametrize(
    "raw_id",
    [
        "42",
        "not-a-uuid",
        "123e4567e89b42d3a456426614174000",  # bare hex: valid for uuid.UUID, not canonical
        "{123e4567-e89b-42d3-a456-426614174000}",
        "123e4567-e89b-42d3-a456-42661417400g",
        "'; DROP TABLE users; --",
        "%00",
        "x" * 5000,
    ],
)
def test_malformed_id_is_a_400_with_a_reason(client: Any, clean_state: Any, raw_id: str) -> None:
    for suffix in ("", "/preferences"):
        response = client.get(f"/api/v1/users/{raw_id}{suffix}")
        assert response.status_code == 400
        assert response.get_json() == {
            "error": "user id must be a UUID, for example 123e4567-e89b-42d3-a456-426614174000"
        }


def test_erased_user_is_known_but_shows_no_number(client: Any, db: Database, sql: Any) -> None:
    user_id = add_user(sql, PHONE, last_active_at=NOW)
    with db.unit_of_work() as uow:
        erase_user(uow, user_id, reason=ErasureReason.REQUEST, now=NOW, correlation_id="c")
        uow.commit()

    response = client.get(f"/api/v1/users/{user_id}")
    preferences = client.get(f"/api/v1/users/{user_id}/preferences")

    assert response.status_code == 200
    assert response.get_json() == {
        "id": str(user_id),
        "phone_number": None,
        "verified": False,
        "erased": True,
    }
    assert preferences.status_code == 410
    assert preferences.get_json() == {"error": "User data erased", "erased": True}
    assert PHONE not in response.get_data(as_text=True) + preferences.get_data(as_text=True)


def test_preferences(client: Any, sql: Any) -> None:
    user_id = add_user(sql, PHONE, last_active_at=NOW)
    sql(
        "UPDATE whatsapp_handler.user_preferences SET notification_enabled = false,"
        " updated_at = :at WHERE user_id = CAST(:id AS uuid)",
        at=NOW,
        id=str(user_id),
    )

    response = client.get(f"/api/v1/users/{user_id}/preferences")

    assert response.status_code == 200
    assert response.get_json() == {
        "user_id": str(user_id),
        "notification_enabled": False,
        "language": "en-GB",
        "timezone": "Europe/London",
        "delay_threshold_minutes": 30,
        "auto_claim_enabled": True,
        "updated_at": "2026-11-24T12:00:00+00:00",
    }


def test_live_user_without_a_preferences_row(client: Any, sql: Any) -> None:
    user_id = add_user(sql, PHONE, last_active_at=NOW, preferences=False)
    response = client.get(f"/api/v1/users/{user_id}/preferences")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Preferences not found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405_with_allow(client: Any, clean_state: Any, method: str) -> None:
    for path in (f"/api/v1/users/{uuid4()}", f"/api/v1/users/{uuid4()}/preferences", "/health"):
        response = client.open(path, method=method)
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, HEAD"
        assert response.get_json()["error"].startswith(f"method {method} not allowed")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/v1/users",
        "/api/v1/users/",
        f"/api/v1/users/{UUID(int=1)}/",
        f"/api/v1/users/{UUID(int=1)}/tickets",
        "/api/v2/users/1",
        "/healthz",
    ],
)
def test_other_paths_are_404_json(client: Any, clean_state: Any, path: str) -> None:
    for method in ("GET", "POST"):
        response = client.open(path, method=method)
        assert response.status_code == 404
        assert response.get_json() == {"error": "Not found"}


def test_head_answers_without_a_body(client: Any, sql: Any) -> None:
    user_id = add_user(sql, PHONE, last_active_at=NOW)
    response = client.head(f"/api/v1/users/{user_id}")
    assert response.status_code == 200 and response.get_data() == b""


def test_health(client: Any, clean_state: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": ["database"]}


def test_database_down_is_503_never_500(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.devservices import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    down = functions_framework.create_app(target="user_api", source=SOURCE).test_client()

    health = down.get("/health")
    lookup = down.get(f"/api/v1/users/{uuid4()}")

    assert health.status_code == 503
    assert health.get_json() == {
        "status": "unavailable",
        "failing": {"database": "DependencyUnavailable"},
    }
    assert lookup.status_code == 503 and "error" in lookup.get_json()
    assert down.get("/api/v1/users/nope").status_code == 400  # decided before any I/O


@given(method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "get", "BREW"]), path=st.text())
def test_routing_answers_every_request_with_one_of_our_errors(method: str, path: str) -> None:
    try:
        chosen = users_api.route(method, path)
    except WhatsAppHandlerError as error:
        assert error.status_code in (400, 404, 405)
    else:
        assert chosen.endpoint is users_api.Endpoint.HEALTH or chosen.user_id is not None
