"""Failures: the emulator stopped mid-run, a poison event, dead letters and their requeue."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.db import Database
from shared.relay_policy import RelayPolicy
from shared.services.relay import RelaySummary, run_relay
from shared.settings import Settings
from tests.relay.helpers import (
    FakeClock,
    Subscription,
    by_aggregate,
    insert_events,
    published_ids,
    publisher_for,
    unpublished_count,
)
from tools import cli
from tools import devservices as svc


def wait_for(check: Any, timeout: float, what: str) -> None:
    svc.wait_until(check, timeout, what)


def test_with_the_emulator_stopped_mid_run_nothing_is_marked_published_and_all_goes_out_after(
    db: Database, sql: Any, relay_settings: Settings
) -> None:
    if not svc.emulator_available():
        pytest.skip("needs the emulator binary to start one of our own")
    port = svc.free_port()
    host, emulator = svc.start_pubsub_emulator(port)  # our own: the shared one stays up
    settings = relay_settings.replace(pubsub_emulator_host=host)
    publisher = publisher_for(settings, host)
    subscription = Subscription(host, settings.google_cloud_project, settings.pubsub_topic)
    restarted: svc.Started | None = None
    try:
        aggregates = [uuid4() for _ in range(20)]
        before = insert_events(sql, count=100, aggregates=aggregates, seconds_ago=60)
        policy = RelayPolicy(
            batch_size=40, publish_timeout_seconds=1.0, loop_seconds=3.0, poll_interval_seconds=0.1
        )
        summaries: list[RelaySummary] = []
        relay = threading.Thread(target=lambda: summaries.append(run_relay(db, publisher, policy)))
        relay.start()
        wait_for(lambda: unpublished_count(sql) == 0, 10, "the first events published")
        subscription.pull_ids(before)

        emulator.stop()  # mid-run: the relay is still polling
        during = insert_events(
            sql, count=100, aggregates=aggregates, first_seq=100, seconds_ago=0.5
        )
        relay.join(timeout=20)

        (summary,) = summaries
        assert summary.published == 100 and summary.outages >= 1 and summary.failed >= 1
        assert summary.remaining_backlog == 100
        assert published_ids(sql) == set(before), "nothing marked published that was not"
        rows = sql(
            "SELECT attempts, last_error, next_attempt_at, dead_lettered_at"
            " FROM whatsapp_handler.outbox_events WHERE published_at IS NULL"
        )
        # An outage is nobody's fault: no attempt charged, nothing dead-lettered.
        assert len(rows) == 100
        assert {(r["attempts"], r["dead_lettered_at"], r["next_attempt_at"]) for r in rows} == {
            (0, None, None)
        }

        # The emulator comes back (empty, as emulators do): the topic and our subscription
        # again, then the next run, with the same client, sends everything.
        _, restarted = svc.start_pubsub_emulator(port)
        publisher.ensure_topic_for_local_dev()
        subscription = Subscription(host, settings.google_cloud_project, settings.pubsub_topic)
        after = run_relay(db, publisher, RelayPolicy(loop_seconds=1.5, poll_interval_seconds=0.1))

        assert after.published == 100 and after.remaining_backlog == 0
        received = subscription.pull_ids(during)
        assert sorted(m.event_id for m in received) == sorted(during)
        for messages in by_aggregate(received).values():
            seqs = [m.data["payload"]["seq"] for m in messages]
            assert seqs == sorted(seqs)
    finally:
        subscription.close()
        publisher.close()
        emulator.stop()
        if restarted is not None:
            restarted.stop()


def insert_poison_aggregate(sql: Any) -> tuple[UUID, UUID, UUID]:
    """An event too large for Pub/Sub (over 10 MB: the client refuses it every time), then
    two ordinary events of the same aggregate."""
    aggregate = uuid4()
    rows = sql(
        """
        INSERT INTO whatsapp_handler.outbox_events
               (aggregate_id, aggregate_type, event_type, payload, correlation_id, created_at)
        SELECT CAST(:aggregate AS uuid), 'ticket', 'ticket.uploaded',
               CASE WHEN i = 0 THEN jsonb_build_object('blob', repeat('x', 10500000), 'seq', i)
                    ELSE jsonb_build_object('seq', i) END,
               'corr-poison', now() - make_interval(secs => 90 - i)
          FROM generate_series(0, 2) AS i
        RETURNING id, payload ->> 'seq' AS seq
        """,
        aggregate=str(aggregate),
    )
    ordered = sorted(rows, key=lambda row: int(row["seq"]))
    poison, second, third = (UUID(str(row["id"])) for row in ordered)
    return poison, second, third


def bookkeeping(sql: Any, event_id: UUID) -> dict[str, Any]:
    (row,) = sql(
        "SELECT attempts, last_error, next_attempt_at, dead_lettered_at, published_at"
        " FROM whatsapp_handler.outbox_events WHERE id = :id",
        id=str(event_id),
    )
    return dict(row)


def test_a_poison_event_is_retried_with_backoff_then_dead_lettered_while_others_flow(
    db: Database,
    sql: Any,
    publisher: Any,
    subscription: Subscription,
    capsys: pytest.CaptureFixture[str],
) -> None:
    poison, second, third = insert_poison_aggregate(sql)
    others = insert_events(sql, count=30, aggregates=[uuid4() for _ in range(6)], seconds_ago=60)
    clock = FakeClock(datetime.now(UTC))
    policy = RelayPolicy(
        max_attempts=3,
        backoff_base_seconds=10,
        backoff_max_seconds=60,
        publish_timeout_seconds=5,
    )

    first = run_relay(db, publisher, policy, clock=clock)

    assert first.published == 30 and first.failed == 1 and first.dead_lettered == 0
    failed = bookkeeping(sql, poison)
    assert failed["attempts"] == 1 and "MessageTooLarge" in failed["last_error"]
    assert 5 <= (failed["next_attempt_at"] - clock.now).total_seconds() <= 10
    # Its aggregate waits behind it, uncharged: order per aggregate is kept.
    assert bookkeeping(sql, second)["published_at"] is None
    assert bookkeeping(sql, second)["attempts"] == 0

    not_yet = run_relay(db, publisher, policy, clock=clock)  # still backing off
    assert not_yet.published == 0 and not_yet.failed == 0
    assert bookkeeping(sql, poison)["attempts"] == 1

    clock.advance(seconds=11)
    run_relay(db, publisher, policy, clock=clock)
    assert bookkeeping(sql, poison)["attempts"] == 2
    clock.advance(seconds=21)
    late = insert_events(sql, count=5, aggregates=[uuid4()], first_seq=500, seconds_ago=1)
    last = run_relay(db, publisher, policy, clock=clock)

    dead = bookkeeping(sql, poison)
    assert dead["attempts"] == 3 and dead["dead_lettered_at"] == clock.now
    assert dead["published_at"] is None and dead["next_attempt_at"] is None
    assert last.dead_lettered == 1 and last.dead_letter_backlog == 1
    # The dead letter no longer holds its aggregate; everything else went out.
    assert last.published == 5 + 2 and last.remaining_backlog == 0
    received = subscription.pull_ids([*others, *late, second, third])
    assert poison not in {m.event_id for m in received}
    tail = [m.event_id for m in received if m.event_id in (second, third)]
    assert tail == [second, third]

    assert cli.main(["dead-letters", "list"]) == 0
    listing = capsys.readouterr().out
    assert str(poison) in listing and "attempts=3" in listing and "ticket.uploaded" in listing
    assert "xxxx" not in listing  # no payloads on an operator's screen

    assert cli.main(["dead-letters", "requeue", str(poison)]) == 0
    assert f"requeued {poison}" in capsys.readouterr().out
    requeued = bookkeeping(sql, poison)
    assert requeued["dead_lettered_at"] is None and requeued["attempts"] == 0
    assert cli.main(["dead-letters", "requeue", str(poison)]) == 1  # not dead-lettered now


def test_requeue_all_hands_every_dead_letter_back(
    sql: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = insert_events(sql, count=3, aggregates=[uuid4() for _ in range(3)])
    sql(
        "UPDATE whatsapp_handler.outbox_events SET attempts = 10, last_error = 'boom',"
        " dead_lettered_at = now()"
    )

    assert cli.main(["dead-letters", "requeue", "--all"]) == 0

    assert "3 event(s) requeued" in capsys.readouterr().out
    rows = sql("SELECT id, attempts, dead_lettered_at FROM whatsapp_handler.outbox_events")
    assert {UUID(str(r["id"])) for r in rows} == set(ids)
    assert {(r["attempts"], r["dead_lettered_at"]) for r in rows} == {(0, None)}
