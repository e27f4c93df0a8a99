"""Relays at once, and a relay killed mid-batch: each event out once (or, after a crash,
again with the same event_id), none lost, order per aggregate kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import uuid4

from shared.db import Database
from shared.relay_policy import RelayPolicy
from shared.services.relay import RelaySummary, run_relay
from shared.settings import Settings
from tests.relay.helpers import (
    Subscription,
    by_aggregate,
    first_occurrences,
    insert_events,
    publisher_for,
    unpublished_count,
)

ROOT = Path(__file__).resolve().parents[2]


def assert_in_order_per_aggregate(received: list[Any]) -> None:
    for messages in by_aggregate(first_occurrences(received)).values():
        seqs = [m.data["payload"]["seq"] for m in messages]
        assert seqs == sorted(seqs)
        arrival = [
            int(m.message_id) for m in sorted(messages, key=lambda m: m.data["payload"]["seq"])
        ]
        assert arrival == sorted(arrival)


def test_two_relays_at_once_publish_each_of_thousands_of_events_exactly_once(
    sql: Any, relay_settings: Settings, subscription: Subscription
) -> None:
    ids = insert_events(sql, count=3000, aggregates=[uuid4() for _ in range(150)])
    policy = RelayPolicy(batch_size=100, publish_timeout_seconds=10)
    start = threading.Barrier(2)
    summaries: list[RelaySummary] = []
    errors: list[BaseException] = []

    def relay_instance() -> None:
        # Each relay is its own instance: its own pool and its own Pub/Sub client.
        database, publisher = Database(relay_settings), publisher_for(relay_settings)
        try:
            start.wait(timeout=10)
            summaries.append(run_relay(database, publisher, policy))
        except BaseException as error:
            errors.append(error)
        finally:
            publisher.close()
            database.close()

    threads = [threading.Thread(target=relay_instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == [] and len(summaries) == 2
    assert sum(s.published for s in summaries) == 3000
    assert all(s.published > 0 for s in summaries), "both relays took part"
    assert unpublished_count(sql) == 0
    received = subscription.pull_ids(ids, timeout=30)
    counts = Counter(m.event_id for m in received)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, "an event was published twice"
    assert_in_order_per_aggregate(received)


def test_a_relay_killed_mid_batch_loses_nothing_and_repeats_only_with_the_same_event_id(
    db: Database, sql: Any, relay_settings: Settings, subscription: Subscription
) -> None:
    batch_size = 50
    total = 2500
    ids = insert_events(sql, count=total, aggregates=[uuid4() for _ in range(100)])
    env = {**os.environ, "RELAY_BATCH_SIZE": str(batch_size), "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "relay", "--once"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while unpublished_count(sql) > total - 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    left = unpublished_count(sql)
    assert 0 < left <= total - 300, "the kill landed mid-run"

    publisher = publisher_for(relay_settings)
    try:
        summary = run_relay(db, publisher, RelayPolicy(batch_size=batch_size))
    finally:
        publisher.close()

    assert summary.published == left and unpublished_count(sql) == 0
    received = subscription.pull_ids(ids, timeout=30)
    counts = Counter(m.event_id for m in received)
    assert set(counts) == set(ids), "nothing lost"
    duplicates = [event_id for event_id, n in counts.items() if n > 1]
    # At most the batch in flight when the process died is sent twice.
    assert len(duplicates) <= batch_size and max(counts.values()) <= 2
    for event_id in duplicates:
        copies = {m.raw for m in received if m.event_id == event_id}
        assert len(copies) == 1, "a repeat is the same message, same event_id"
    assert_in_order_per_aggregate(received)
