"""The three queries that must stay fast on 1M users and 1M+ outbox rows (P95s)."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable

from bench.figures import RUNS, Figure, measured, p
from bench.seed import USERS, phone
from bench.session import BenchRun
from shared.db import Database
from shared.settings import Settings

TITLE = "queries"
NAMES = (
    "outbox poll (RFC query 3, LIMIT 100), 1M published + 10K unpublished: P95",
    "user lookup by phone, 1M users: P95",
    "preferences fetch, 1M users: P95",
)


def timed_p95(call: Callable[[int], object], count: int) -> float:
    """Median over RUNS runs of the P95 of ``count`` calls, in milliseconds."""
    p95s = []
    for run in range(RUNS):
        samples = []
        for i in range(count):
            started = time.perf_counter()
            call(run * count + i)
            samples.append((time.perf_counter() - started) * 1000)
        p95s.append(p(samples, 0.95))
    return statistics.median(p95s)


def measure(run: BenchRun) -> list[Figure]:
    run.seeded()
    database = Database(Settings(database_url=run.url))
    try:
        return query_figures(database)
    finally:
        database.close()


def query_figures(database: Database) -> list[Figure]:
    rng = secrets.SystemRandom()
    with database.unit_of_work() as uow:
        plan = "\n".join(
            str(row["QUERY PLAN"])
            for row in uow.run_sql(
                "EXPLAIN SELECT id, aggregate_id, event_type, payload, correlation_id"
                " FROM whatsapp_handler.outbox_events WHERE published_at IS NULL"
                " ORDER BY created_at ASC LIMIT 100"
            )
        )
        uses_index = "idx_outbox_unpublished" in plan

        def poll(_: int) -> object:
            rows = uow.fetch_all("list_unpublished_events", limit=100)
            assert len(rows) == 100
            return rows

        def lookup(_: int) -> object:
            row = uow.fetch_one("find_user_by_phone", phone_number=phone(rng.randrange(USERS)))
            assert row is not None
            return row

        ids = [
            row["id"]
            for row in uow.run_sql(
                "SELECT id FROM whatsapp_handler.users TABLESAMPLE SYSTEM (1) LIMIT 3000"
            )
        ]

        def prefs(i: int) -> object:
            row = uow.fetch_one("find_preferences", user_id=ids[i % len(ids)])
            assert row is not None
            return row

        for call in (poll, lookup, prefs):  # warm the caches and prepared statements
            for i in range(50):
                call(i)
        poll_p95 = timed_p95(poll, 300)
        lookup_p95 = timed_p95(lookup, 1000)
        prefs_p95 = timed_p95(prefs, 1000)
    index = "uses" if uses_index else "does NOT use"
    return [
        measured(
            "outbox poll (RFC query 3, LIMIT 100), 1M published + 10K unpublished: P95",
            poll_p95,
            digits=3,
            note=f"plan {index} idx_outbox_unpublished",
            holds=uses_index,
        ),
        measured("user lookup by phone, 1M users: P95", lookup_p95, digits=3),
        measured("preferences fetch, 1M users: P95", prefs_p95, digits=3),
    ]
