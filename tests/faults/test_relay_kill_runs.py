"""The relay SIGKILLed at random points in 20 runs over one backlog, then run to the end:
every event published and received, none lost, and every repeat the very same message
(same event_id, same attributes, same bytes).

Each run is a real process (``python -m tools.cli relay --once``, what the
``whatsapp-handler relay --once`` console script runs). The kill points come from a seeded
random: most runs are killed once the backlog has shrunk to a random mark spread over the
run (inside a batch: rows taken, messages in flight, or the commit), a few at a random
time after start (during start-up, before anything is taken)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.db import Database
from shared.relay_policy import RelayPolicy
from shared.services.relay import run_relay
from shared.settings import Settings
from tests.relay.conftest import publisher, relay_settings, subscription
from tests.relay.helpers import Subscription, insert_events, publisher_for, unpublished_count
from tests.relay.test_concurrency import assert_in_order_per_aggregate

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 2000
KILLED_RUNS = 20
BATCH_SIZE = 25
SEED = 20261124

pytestmark = pytest.mark.pubsub
__all__ = ["publisher", "relay_settings", "subscription"]  # the relay suite's fixtures


def start_relay() -> subprocess.Popen[bytes]:
    env = {**os.environ, "RELAY_BATCH_SIZE": str(BATCH_SIZE), "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "relay", "--once"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL; True when the process was still running (a real kill, not a late one)."""
    alive = process.poll() is None
    if alive:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    return alive


def test_a_relay_killed_at_twenty_random_points_loses_nothing_and_repeats_identically(
    db: Database, sql: Any, relay_settings: Settings, subscription: Subscription
) -> None:
    ids = insert_events(sql, count=TOTAL, aggregates=[uuid4() for _ in range(100)])
    chooser = random.Random(SEED)  # kill points for a test, not cryptography
    # Marks spread over the backlog, one per run: kill once fewer than ``mark`` are left.
    spacing = TOTAL / (KILLED_RUNS + 1)
    marks = [int(TOTAL - spacing * (run + chooser.uniform(0.3, 1.0))) for run in range(KILLED_RUNS)]
    by_time = set(chooser.sample(range(KILLED_RUNS), 3))  # killed during start-up instead
    kills: list[dict[str, Any]] = []

    for run, mark in enumerate(marks):
        process = start_relay()
        try:
            if run in by_time:
                time.sleep(chooser.uniform(0.05, 0.4))
            else:
                deadline = time.monotonic() + 20
                while (
                    unpublished_count(sql) > mark
                    and process.poll() is None
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.002)
                time.sleep(chooser.uniform(0.0, 0.02))  # somewhere inside the batch
            left_before_kill = unpublished_count(sql)
            killed = kill(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        kills.append({"run": run, "killed": killed, "left": left_before_kill})

    really_killed = [k for k in kills if k["killed"]]
    assert len(really_killed) == KILLED_RUNS, f"a run finished before its kill: {kills}"
    left = unpublished_count(sql)
    assert 0 < left < TOTAL, "the kills were not spread over the backlog"

    # The final run, to completion.
    publisher = publisher_for(relay_settings)
    try:
        summary = run_relay(db, publisher, RelayPolicy(batch_size=BATCH_SIZE))
    finally:
        publisher.close()
    assert summary.published == left
    assert unpublished_count(sql) == 0, "every outbox event ends published"

    received = subscription.pull_ids(ids, timeout=30)
    counts = Counter(m.event_id for m in received)
    assert set(counts) == set(ids), f"lost: {len(set(ids) - set(counts))}"
    copies: dict[UUID, set[tuple[bytes, tuple[tuple[str, str], ...], str]]] = defaultdict(set)
    for message in received:
        copies[message.event_id].add(
            (message.raw, tuple(sorted(message.attributes.items())), message.ordering_key)
        )
    changed = [event_id for event_id, found in copies.items() if len(found) > 1]
    assert changed == [], "a repeat differs from the first copy"
    for message in received:
        assert message.data["event_id"] == str(message.event_id)
    # Each kill can repeat at most the batch it had in flight.
    repeats = sum(n - 1 for n in counts.values())
    assert repeats <= KILLED_RUNS * BATCH_SIZE
    assert_in_order_per_aggregate(received)
