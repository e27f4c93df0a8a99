"""Outbox retention: exactly the events published before the cutoff go, in batches."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import functions_framework
import pytest

from shared.db import Database
from shared.services.purge import (
    PurgePolicy,
    preview_purge,
    purge_expired,
    purge_published_events,
)
from shared.settings import Settings
from tools import cli

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def purge_client(services: Any) -> Any:
    app = functions_framework.create_app(
        target="outbox_purge", source=str(ROOT / "functions/outbox_relay/main.py")
    )
    return app.test_client()


def add_event(
    sql: Any,
    *,
    created_at: datetime,
    published_at: datetime | None = None,
    dead_lettered_at: datetime | None = None,
) -> UUID:
    (row,) = sql(
        """
        INSERT INTO whatsapp_handler.outbox_events
               (aggregate_id, aggregate_type, event_type, payload, correlation_id, created_at,
                published_at, dead_lettered_at, attempts)
        VALUES (CAST(:aggregate AS uuid), 'user', 'user.verified', '{}', 'corr', :created_at,
                :published_at, :dead_lettered_at, CASE WHEN :dead THEN 10 ELSE 0 END)
        RETURNING id
        """,
        aggregate=str(uuid4()),
        created_at=created_at,
        published_at=published_at,
        dead_lettered_at=dead_lettered_at,
        dead=dead_lettered_at is not None,
    )
    return UUID(str(row["id"]))


def arrange(sql: Any, now: datetime) -> tuple[set[UUID], set[UUID]]:
    """(should go, should stay) around a 7-day cutoff."""
    cutoff = now - timedelta(days=7)
    doomed = {
        add_event(
            sql, created_at=cutoff - timedelta(days=30), published_at=cutoff - timedelta(days=29)
        )
        for _ in range(4)
    }
    doomed.add(
        add_event(
            sql, created_at=cutoff - timedelta(days=1), published_at=cutoff - timedelta(seconds=1)
        )
    )
    kept = {
        # published just inside retention, though created long ago
        add_event(
            sql, created_at=cutoff - timedelta(days=3), published_at=cutoff + timedelta(seconds=1)
        ),
        add_event(sql, created_at=now - timedelta(days=1), published_at=now - timedelta(days=1)),
        # never published: kept however old, pending or dead-lettered
        add_event(sql, created_at=now - timedelta(days=90)),
        add_event(
            sql, created_at=now - timedelta(days=90), dead_lettered_at=now - timedelta(days=80)
        ),
    }
    return doomed, kept


def remaining(sql: Any) -> set[UUID]:
    return {UUID(str(r["id"])) for r in sql("SELECT id FROM whatsapp_handler.outbox_events")}


def test_purge_deletes_exactly_the_published_rows_older_than_retention_in_batches(
    db: Database, sql: Any
) -> None:
    doomed, kept = arrange(sql, NOW)
    policy = PurgePolicy(retention_days=7, batch_size=2)

    preview = preview_purge(db, now=NOW, policy=policy)
    assert preview.deleted == 5 and remaining(sql) == doomed | kept

    summary = purge_published_events(db, now=NOW, policy=policy)

    assert summary.deleted == 5 and summary.batches == 3
    assert summary.cutoff == NOW - timedelta(days=7)
    assert remaining(sql) == kept
    assert purge_published_events(db, now=NOW, policy=policy).deleted == 0


def test_retention_period_is_a_setting(db: Database, sql: Any) -> None:
    arrange(sql, NOW)
    unpublished = {
        UUID(str(r["id"]))
        for r in sql("SELECT id FROM whatsapp_handler.outbox_events WHERE published_at IS NULL")
    }

    summary = purge_published_events(db, now=NOW, policy=PurgePolicy(retention_days=1))

    # Also the one published 7 days less a second ago; the one published exactly a day
    # ago is at the cutoff, not before it.
    assert summary.deleted == 6
    (published_left,) = remaining(sql) - unpublished
    assert remaining(sql) == unpublished | {published_left}


def test_purge_function_runs_and_dry_runs(purge_client: Any, sql: Any) -> None:
    now = datetime.now(UTC)
    doomed, kept = arrange(sql, now)

    dry = purge_client.post("/", query_string={"dry_run": "true"})
    assert dry.status_code == 200
    assert dry.get_json()["would_delete"] == 5 and dry.get_json()["dry_run"] is True
    assert remaining(sql) == doomed | kept

    response = purge_client.post("/")

    assert response.status_code == 200
    body = response.get_json()
    assert body["deleted"] == 5 and body["dry_run"] is False
    assert remaining(sql) == kept
    assert purge_client.get("/health").get_json() == {"status": "ok", "checks": ["database"]}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/", {}, 405),
        ("POST", "/elsewhere", {}, 404),
        ("POST", "/", {"data": b"not json"}, 400),
        ("POST", "/", {"query_string": {"dry_run": "perhaps"}}, 400),
    ],
)
def test_purge_function_refuses_bad_requests(
    purge_client: Any, clean_state: Any, method: str, path: str, kwargs: Any, status: int
) -> None:
    assert purge_client.open(path, method=method, **kwargs).status_code == status


def test_purge_command_dry_run_then_run(sql: Any, capsys: pytest.CaptureFixture[str]) -> None:
    doomed, kept = arrange(sql, datetime.now(UTC))

    assert cli.main(["purge", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["would_delete"] == 5
    assert remaining(sql) == doomed | kept

    assert cli.main(["purge"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 5
    assert remaining(sql) == kept


def test_the_daily_purge_also_deletes_notification_ledger_rows_past_retention(
    db: Database, sql: Any
) -> None:
    for days, name in ((40, "old-sent"), (36, "old-claimed"), (34, "recent"), (0, "today")):
        sql(
            "INSERT INTO whatsapp_handler.notification_deliveries"
            " (notification_id, status, claimed_at)"
            " VALUES (:id, :status, :at)",
            id=name,
            status="claimed" if name == "old-claimed" else "sent",
            at=NOW - timedelta(days=days),
        )
    policy = PurgePolicy(ledger_retention_days=35, batch_size=1)

    assert preview_purge(db, now=NOW, policy=policy).as_dict()["would_delete_ledger"] == 2
    summary = purge_expired(db, now=NOW, policy=policy)

    assert summary.as_dict()["ledger_deleted"] == 2
    left = sql("SELECT notification_id FROM whatsapp_handler.notification_deliveries")
    assert {row["notification_id"] for row in left} == {"recent", "today"}


def test_the_daily_purge_forgets_replay_record_rows_past_their_retention(
    db: Database, sql: Any
) -> None:
    """The webhook's durable replay record (issue 19) is kept
    HANDLED_MESSAGE_RETENTION_DAYS (default 30), then deleted by the daily purge."""
    ages = {"a": 45, "b": 31, "c": 29, "d": 0}
    for name, days in ages.items():
        sql(
            "INSERT INTO whatsapp_handler.handled_messages (message_sid, handled_at)"
            " VALUES (:sid, :at)",
            sid="SM" + name * 32,
            at=NOW - timedelta(days=days),
        )
    assert Settings(database_url="postgresql://x/y").handled_message_retention_days == 30
    setting = Settings(database_url="postgresql://x/y", handled_message_retention_days=12)
    assert PurgePolicy.from_settings(setting).handled_message_retention_days == 12
    policy = PurgePolicy(handled_message_retention_days=30, batch_size=1)

    preview = preview_purge(db, now=NOW, policy=policy).as_dict()
    summary = purge_expired(db, now=NOW, policy=policy).as_dict()

    assert preview["would_delete_handled_messages"] == 2
    assert summary["handled_messages_deleted"] == 2
    left = sql("SELECT message_sid FROM whatsapp_handler.handled_messages")
    assert {row["message_sid"] for row in left} == {"SM" + "c" * 32, "SM" + "d" * 32}


def test_the_journey_record_is_purged_past_the_claim_window(db: Database, sql: Any) -> None:
    """D125: the digests of sent journeys are read for CLAIM_WINDOW_DAYS only, and the
    daily purge deletes older ones; a user's newer rows stay."""
    (user,) = sql(
        "INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900321') RETURNING id"
    )
    ages = {"a": 40, "b": 29, "c": 27, "d": 0}
    for name, days in ages.items():
        sql(
            "INSERT INTO whatsapp_handler.submitted_journeys (user_id, fingerprint, submitted_at)"
            " VALUES (:user_id, :fingerprint, :at)",
            user_id=user["id"],
            fingerprint=name * 64,
            at=NOW - timedelta(days=days),
        )
    setting = Settings(database_url="postgresql://x/y", claim_window_days=28)
    policy = replace(PurgePolicy.from_settings(setting), batch_size=1)
    assert policy.journey_record_days == 28

    preview = preview_purge(db, now=NOW, policy=policy).as_dict()
    summary = purge_expired(db, now=NOW, policy=policy).as_dict()

    assert preview["would_delete_submitted_journeys"] == 2
    assert summary["submitted_journeys_deleted"] == 2
    left = sql("SELECT fingerprint FROM whatsapp_handler.submitted_journeys")
    assert {row["fingerprint"] for row in left} == {"c" * 64, "d" * 64}
