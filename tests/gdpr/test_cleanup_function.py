"""The gdpr_cleanup function and the `erase` / `gdpr` commands, end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import functions_framework
import pytest

from tests.gdpr.helpers import add_user, anon_marker, redis_keys
from tools import cli

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+447700900741"


@pytest.fixture(scope="module")
def client(services: Any) -> Any:
    app = functions_framework.create_app(
        target="gdpr_cleanup", source=str(ROOT / "functions/gdpr_cleanup/main.py")
    )
    return app.test_client()


def days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def test_post_runs_retention_and_answers_a_summary(client: Any, sql: Any) -> None:
    old = add_user(sql, PHONE, last_active_at=days_ago(181))
    kept = add_user(sql, "+447700900742", last_active_at=days_ago(179))

    response = client.post("/", headers={"X-Correlation-ID": "sched-1"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "complete" and body["anonymised"] == 1 and body["failed"] == 0
    assert body["dry_run"] is False and body["batches"] == 1
    phones = {
        row["id"]: row["phone_number"]
        for row in sql("SELECT id, phone_number FROM whatsapp_handler.users")
    }
    assert phones == {old: anon_marker(old), kept: "+447700900742"}
    (event,) = sql(
        "SELECT correlation_id FROM whatsapp_handler.outbox_events"
        " WHERE event_type = 'user.gdpr.erased'"
    )
    assert event["correlation_id"] == "sched-1"


@pytest.mark.parametrize(
    ("kwargs",),
    [({"query_string": {"dry_run": "true"}},), ({"json": {"dry_run": True}},)],
)
def test_dry_run_counts_and_changes_nothing(client: Any, sql: Any, kwargs: Any) -> None:
    add_user(sql, PHONE, last_active_at=days_ago(400))
    add_user(sql, "+447700900742", last_active_at=days_ago(1))

    response = client.post("/", **kwargs)

    assert response.status_code == 200
    body = response.get_json()
    assert body["dry_run"] is True and body["would_anonymise"] == 1
    assert body["oldest_last_active_at"].startswith(days_ago(400).date().isoformat())
    assert sql(
        "SELECT count(*) AS n FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL"
    ) == [{"n": 0}]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/", {}, 405),
        ("DELETE", "/health", {}, 405),
        ("POST", "/elsewhere", {}, 404),
        ("POST", "/", {"data": b"not json"}, 400),
        ("POST", "/", {"json": [1, 2]}, 400),
        ("POST", "/", {"json": {"dry_run": "yes"}}, 400),
        ("POST", "/", {"query_string": {"dry_run": "maybe"}}, 400),
        ("POST", "/", {"data": b"{" + b" " * 5000 + b"}"}, 413),
    ],
)
def test_bad_requests_get_json_errors_and_change_nothing(
    client: Any, sql: Any, method: str, path: str, kwargs: Any, status: int
) -> None:
    add_user(sql, PHONE, last_active_at=days_ago(400))

    response = client.open(path, method=method, **kwargs)

    assert response.status_code == status
    assert "error" in response.get_json()
    assert sql(
        "SELECT count(*) AS n FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL"
    ) == [{"n": 0}]


def test_health_answers_ok(client: Any, clean_state: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": ["database", "redis"]}


def test_health_is_503_when_the_database_is_down(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.devservices import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    app = functions_framework.create_app(
        target="gdpr_cleanup", source=str(ROOT / "functions/gdpr_cleanup/main.py")
    )
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "failing": {"database": "DependencyUnavailable"},
    }
    assert app.test_client().post("/").status_code == 503


def test_erase_command_erases_one_user_everywhere(
    sql: Any, clean_state: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    user_id = add_user(sql, PHONE, last_active_at=days_ago(2))
    other = add_user(sql, "+447700900742", last_active_at=days_ago(2))
    keys = redis_keys()
    clean_state.redis.set(keys.conversation(PHONE), "{}")
    clean_state.redis.set(keys.otp_rate(PHONE, 7), 1)

    assert cli.main(["erase", str(user_id)]) == 0
    assert "1 Redis key(s) deleted" in capsys.readouterr().out  # the counter stays (D70)
    (row,) = sql(
        "SELECT phone_number, block_reason FROM whatsapp_handler.users WHERE id = :id",
        id=str(user_id),
    )
    assert row == {"phone_number": anon_marker(user_id), "block_reason": "GDPR_ERASURE_REQUEST"}
    assert not clean_state.redis.exists(keys.conversation(PHONE))
    assert clean_state.redis.exists(keys.otp_rate(PHONE, 7))
    (event,) = sql("SELECT payload FROM whatsapp_handler.outbox_events")
    assert event["payload"]["reason"] == "GDPR_ERASURE_REQUEST"

    assert cli.main(["erase", str(user_id)]) == 0  # again: nothing to do
    assert "already erased" in capsys.readouterr().out
    assert cli.main(["erase", str(uuid4())]) == 1
    assert "no user" in capsys.readouterr().err
    assert cli.main(["erase", "not-a-uuid"]) == 2
    assert "must be a UUID" in capsys.readouterr().err
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 1}]
    assert sql("SELECT phone_number FROM whatsapp_handler.users WHERE id = :id", id=str(other)) == [
        {"phone_number": "+447700900742"}
    ]


def test_gdpr_command_dry_run_then_run(sql: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_user(sql, PHONE, last_active_at=days_ago(200))
    add_user(sql, "+447700900742", last_active_at=days_ago(10))

    assert cli.main(["gdpr", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 user(s) would be anonymised")
    assert f"oldest last activity: {days_ago(200).date().isoformat()}" in out
    assert sql(
        "SELECT count(*) AS n FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL"
    ) == [{"n": 0}]

    assert cli.main(["gdpr"]) == 0
    assert json.loads(capsys.readouterr().out)["anonymised"] == 1
    assert sql(
        "SELECT count(*) AS n FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL"
    ) == [{"n": 1}]
