"""docs/openapi.yaml against the running user_api, so the spec and the code cannot drift.

schemathesis loads the document and, for every documented operation, builds requests,
calls the function (WSGI, functions-framework's app) and checks each answer against the
document: status documented, content type, headers, body schema, never a 5xx.

Inputs: the spec's own examples (a live, an erased and an unknown user), plus ids from
plain hypothesis strategies (any UUID; any text as a malformed id). schemathesis' own
generation (``@schema.parametrize()``) cannot run with the installed libraries:
hypothesis-jsonschema 0.23.1 calls ``many.more()``, which hypothesis 6.170 no longer has
(AttributeError at collection), so cases are made with ``operation.make_case``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _admin

ROOT = Path(__file__).resolve().parents[2]
LIVE = "3f0c6a52-8d4b-4d8e-9a41-5c2b7e1d9f10"
ERASED = "9b1e2c3d-4f5a-4b6c-8d7e-0f1a2b3c4d5e"
APP = functions_framework.create_app(
    target="user_api", source=str(ROOT / "functions/user_api/main.py")
)
schema = schemathesis.from_path(str(ROOT / "docs/openapi.yaml"), app=APP)
OPERATIONS = {
    (operation.method.upper(), operation.path): operation
    for operation in (result.ok() for result in schema.get_all_operations())
}
USER_OPERATIONS = [op for (_, path), op in sorted(OPERATIONS.items()) if "{id}" in path]
FEW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def call(operation: Any, **path_parameters: str) -> Any:
    case = operation.make_case(path_parameters=path_parameters or None)
    response = case.call_wsgi()
    case.validate_response(response)  # every default schemathesis check
    return response


@pytest.fixture(scope="module")
def seeded(services: Any) -> Any:
    """The spec's example users: one live, one erased (ids from docs/openapi.yaml)."""
    connection = _admin(services.database_url)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    try:
        connection.run(
            "TRUNCATE whatsapp_handler.users, whatsapp_handler.user_preferences,"
            " whatsapp_handler.outbox_events CASCADE"
        )
        connection.run(
            "INSERT INTO whatsapp_handler.users (id, phone_number, verified_at, last_active_at)"
            " VALUES (CAST(:live AS uuid), '+447700900123', :now, :now),"
            " (CAST(:erased AS uuid), :marker, :now, :now)",
            live=LIVE,
            erased=ERASED,
            marker="ANON-" + ERASED.replace("-", "")[:15],
            now=now,
        )
        connection.run(
            "UPDATE whatsapp_handler.users SET anonymized_at = :now, blocked_at = :now,"
            " block_reason = 'GDPR_ERASURE_REQUEST' WHERE id = CAST(:erased AS uuid)",
            now=now,
            erased=ERASED,
        )
        connection.run(
            "INSERT INTO whatsapp_handler.user_preferences (user_id) VALUES (CAST(:id AS uuid))",
            id=LIVE,
        )
    finally:
        connection.close()
    return services


def test_the_document_lists_exactly_the_functions_routes() -> None:
    assert sorted(OPERATIONS) == [
        ("GET", "/api/v1/users/{id}"),
        ("GET", "/api/v1/users/{id}/preferences"),
        ("GET", "/health"),
    ]


def test_the_documents_examples_get_the_documented_answers(seeded: Any) -> None:
    examples = schema.raw_schema["components"]["parameters"]["UserId"]["examples"]
    expected = {
        ("/api/v1/users/{id}", "live"): 200,
        ("/api/v1/users/{id}", "erased"): 200,
        ("/api/v1/users/{id}", "unknown"): 404,
        ("/api/v1/users/{id}/preferences", "live"): 200,
        ("/api/v1/users/{id}/preferences", "erased"): 410,
        ("/api/v1/users/{id}/preferences", "unknown"): 404,
    }
    for operation in USER_OPERATIONS:
        for name, example in examples.items():
            response = call(operation, id=example["value"])
            assert response.status_code == expected[(operation.path, name)], (operation, name)
    assert call(OPERATIONS[("GET", "/health")]).status_code == 200


@FEW
@given(user_id=st.uuids())
def test_any_uuid_is_answered_as_documented(seeded: Any, user_id: Any) -> None:
    for operation in USER_OPERATIONS:
        assert call(operation, id=str(user_id)).status_code in (200, 404)


@FEW
@given(raw_id=st.text(min_size=1, max_size=80))
def test_any_malformed_id_is_answered_as_documented(seeded: Any, raw_id: str) -> None:
    for operation in USER_OPERATIONS:
        assert call(operation, id=raw_id).status_code in (400, 404)
