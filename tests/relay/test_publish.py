"""What reaches Pub/Sub: the contract's format, order per aggregate, the HTTP function,
the figures in the logs, the `relay --once` command."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import functions_framework
import pytest

from shared import events
from shared.adapters.pubsub import EventPublisher
from shared.db import Database
from shared.relay_policy import RelayPolicy
from shared.services.relay import run_relay
from tests.relay.helpers import (
    Subscription,
    by_aggregate,
    first_occurrences,
    insert_events,
    published_ids,
    unpublished_count,
)
from tools import cli

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 11, 30, 9, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def relay_client(pubsub: str) -> Any:
    app = functions_framework.create_app(
        target="outbox_relay", source=str(ROOT / "functions/outbox_relay/main.py")
    )
    return app.test_client()


def one_of_each_type() -> list[events.OutboxEvent]:
    user = uuid4()
    media = [events.Media("https://api.twilio.com/media/ME1", "image/jpeg")]
    return [
        events.user_registered(
            user, correlation_id="c-reg", terms_version="2025-11-30", registered_at=NOW
        ),
        events.user_verified(user, correlation_id="c-ver", verified_at=NOW),
        events.conversation_started(user, correlation_id="c-conv", started_at=NOW),
        events.ticket_uploaded(
            user,
            correlation_id="c-tick",
            message_sid="SM" + "0" * 32,
            media=media,
            uploaded_at=NOW,
        ),
        events.journey_submitted(
            user,
            correlation_id="c-jour",
            journey_id=uuid4(),
            journey_date="2025-11-29",
            origin="Leeds",
            destination="York",
            departure="2025-11-29T08:02:00+00:00",
            media=media,
            submitted_at=NOW,
        ),
        events.claim_status_requested(user, correlation_id="c-claim", requested_at=NOW),
        events.user_gdpr_erased(user, correlation_id="c-gdpr", erased_at=NOW, reason="REQUEST"),
    ]


def test_published_messages_carry_exactly_the_contract_data_attributes_and_key(
    db: Database,
    sql: Any,
    publisher: EventPublisher,
    subscription: Subscription,
    policy: RelayPolicy,
) -> None:
    written = one_of_each_type()
    with db.unit_of_work() as uow:
        for event in written:
            uow.outbox.add(event)
        uow.commit()
    rows = {
        UUID(str(row["id"])): row
        for row in sql("SELECT id, created_at FROM whatsapp_handler.outbox_events")
    }

    summary = run_relay(db, publisher, policy)

    assert summary.published == len(written) and summary.failed == 0
    assert summary.remaining_backlog == 0 and summary.oldest_pending_age_seconds == 0.0
    received = {m.event_id: m for m in subscription.pull_ids(rows)}
    assert len(subscription.received) == len(written)
    for event in written:
        message = received[event.event_id]
        attributes = {
            "event_id": str(event.event_id),
            "event_type": event.event_type,
            "event_version": "1.0",
            "aggregate_type": event.aggregate_type,
            "aggregate_id": str(event.aggregate_id),
            "correlation_id": event.correlation_id,
        }
        assert message.attributes == attributes
        assert message.data == {
            **attributes,
            "occurred_at": rows[event.event_id]["created_at"].isoformat(),
            "payload": json.loads(json.dumps(event.payload)),
        }
        assert message.ordering_key == str(event.aggregate_id)
    assert published_ids(sql) == set(rows)


def test_order_per_aggregate_holds_across_many_aggregates_and_batches(
    db: Database,
    sql: Any,
    publisher: EventPublisher,
    subscription: Subscription,
) -> None:
    aggregates = [uuid4() for _ in range(60)]
    ids = insert_events(sql, count=600, aggregates=aggregates)

    # Small batches: every aggregate's ten events straddle several batches.
    summary = run_relay(db, publisher, RelayPolicy(batch_size=45, publish_timeout_seconds=5))

    assert summary.published == 600 and summary.remaining_backlog == 0
    received = subscription.pull_ids(ids)
    assert sorted(m.event_id for m in received) == sorted(ids)  # each exactly once
    groups = by_aggregate(first_occurrences(received))
    assert set(groups) == {str(a) for a in aggregates}
    for messages in groups.values():
        seqs = [m.data["payload"]["seq"] for m in messages]
        # Delivered in order, and accepted by Pub/Sub in order (ids are its arrival order).
        assert seqs == sorted(seqs) and len(seqs) == 10
        arrival = [
            int(m.message_id) for m in sorted(messages, key=lambda m: m.data["payload"]["seq"])
        ]
        assert arrival == sorted(arrival)


def test_relay_function_answers_a_summary_and_its_health(
    relay_client: Any,
    sql: Any,
    subscription: Subscription,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = insert_events(sql, count=30, aggregates=[uuid4() for _ in range(7)], seconds_ago=5)
    insert_events(sql, count=3, aggregates=[uuid4()], event_type="ticket.uploaded", first_seq=100)
    caplog.set_level(logging.INFO, logger="whatsapp_handler")

    response = relay_client.post("/", headers={"X-Correlation-ID": "sched-relay-1"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["published"] == 33 and body["failed"] == 0 and body["dead_lettered"] == 0
    assert body["remaining_backlog"] == 0 and body["oldest_pending_age_seconds"] == 0.0
    assert unpublished_count(sql) == 0
    subscription.pull_ids(ids)
    figures = [
        r.fields
        for r in caplog.records
        if getattr(r, "fields", {}).get("action") == "outbox.published"
    ]
    published_total: dict[str, int] = {}
    for fields in figures:
        published_total[fields["event_type"]] = (
            published_total.get(fields["event_type"], 0)
            + fields["whatsapp_outbox_events_published_total"]
        )
        assert fields["whatsapp_outbox_publish_lag_seconds"] >= 4.0  # created 5 s+ ago
    assert published_total == {"user.verified": 30, "ticket.uploaded": 3}
    (run,) = [
        r.fields
        for r in caplog.records
        if getattr(r, "fields", {}).get("action") == "outbox.relay_run"
    ]
    assert run["whatsapp_outbox_oldest_pending_age_seconds"] == 0.0

    health = relay_client.get("/health")
    assert health.status_code == 200
    assert health.get_json() == {"status": "ok", "checks": ["database", "pubsub"]}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/", 405), ("POST", "/elsewhere", 404), ("PUT", "/health", 405)],
)
def test_relay_function_refuses_other_routes(
    relay_client: Any, clean_state: Any, method: str, path: str, status: int
) -> None:
    assert relay_client.open(path, method=method).status_code == status


def test_backlog_left_behind_is_reported_with_its_age(
    db: Database,
    sql: Any,
    publisher: EventPublisher,
    subscription: Subscription,
) -> None:
    blocker, _successor = insert_events(sql, count=2, aggregates=[uuid4()], seconds_ago=120)
    # The first event is backing off after a failure: its successor must wait for it.
    sql(
        "UPDATE whatsapp_handler.outbox_events SET attempts = 1,"
        " next_attempt_at = now() + interval '1 hour' WHERE id = :id",
        id=str(blocker),
    )

    summary = run_relay(db, publisher, RelayPolicy(publish_timeout_seconds=5))

    assert summary.published == 0 and summary.remaining_backlog == 2
    assert 119 < summary.oldest_pending_age_seconds < 200
    assert unpublished_count(sql) == 2


def test_relay_once_command_drains_and_prints_its_summary(
    sql: Any,
    subscription: Subscription,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = insert_events(sql, count=25, aggregates=[uuid4() for _ in range(5)])

    assert cli.main(["relay", "--once"]) == 0

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["published"] == 25 and summary["remaining_backlog"] == 0
    assert {m.event_id for m in subscription.pull_ids(ids)} == set(ids)
