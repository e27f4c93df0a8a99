"""Relay throughput beside the raw batched publish throughput of the same client.

    .venv/bin/python -m bench.relay_throughput [--events 10000] [--aggregates 2500]

One run, one emulator, one Pub/Sub client: 10,000 outbox events (spread over
``--aggregates`` aggregates, so ordering keys repeat as they do in production) are
relayed from PostgreSQL by ``run_relay``; then the very same messages are published
straight from memory with every future gathered at once ("raw"), and in chunks of the
relay's batch size (what one relay batch can at best do). Prints events/s and the ratio,
and for scale the same client without ordering keys (the contract requires them; the
client batches per ordering key, so distinct keys cost one request each).

Uses the PostgreSQL and emulator that answer (127.0.0.1:5432, PUBSUB_EMULATOR_HOST or
127.0.0.1:8085), or starts them; works in a database of its own, dropped afterwards.
`make bench` runs it so (``measure``) for its last figure, the relay / raw ratio.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import secrets
import subprocess
import sys
import time
from typing import Any

from bench.figures import ROOT, Figure, measured, not_measured
from bench.session import BenchRun
from shared.adapters.pubsub import EventPublisher, OutgoingMessage, PublisherConfig
from shared.db import Database
from shared.relay_policy import PendingEvent, RelayPolicy, to_message
from shared.services.relay import run_relay
from shared.settings import Settings
from tools import migrate
from tools.devservices import admin_connection
from tools.environment import LocalServices, scratch_database

TITLE = "relay throughput"
RELAY_RATIO = "relay / raw batched publish, 10,000 events to the emulator"
NAMES = (RELAY_RATIO,)


def measure(run: BenchRun) -> list[Figure]:
    """This module run on its own (its own database, the run's emulator): its ratio."""
    for _ in range(2):  # once more if another session's test killed its connections
        result = subprocess.run(
            [sys.executable, "-m", "bench.relay_throughput"],
            cwd=ROOT,
            env=run.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        match = re.search(r"relay / raw = ([\d.]+)", result.stdout)
        if result.returncode == 0 and match:
            break
    if result.returncode != 0 or not match:
        return [not_measured(RELAY_RATIO, (result.stderr or result.stdout).strip()[-200:])]
    relay_rate, raw_rate = re.findall(r"([\d.]+) events/s", result.stdout)[:2]
    rates = f"relay {relay_rate} events/s, raw {raw_rate} events/s"
    return [measured(RELAY_RATIO, float(match.group(1)), note=rates)]


def _insert(url: str, *, events: int, aggregates: int) -> None:
    connection = admin_connection(url)
    try:
        connection.run(
            """
            INSERT INTO whatsapp_handler.outbox_events
                   (aggregate_id, aggregate_type, event_type, payload, correlation_id,
                    created_at)
            SELECT CAST(md5('agg-' || (i % :aggregates)) AS uuid), 'user', 'user.verified',
                   jsonb_build_object('user_id', CAST(md5('agg-' || (i % :aggregates)) AS uuid),
                                      'verified_at', '2025-11-30T09:00:00+00:00', 'seq', i),
                   'bench-' || i,
                   now() - make_interval(secs => (:events - i) * 0.0001)
              FROM generate_series(0, :events - 1) AS i
            """,
            events=events,
            aggregates=aggregates,
        )
    finally:
        connection.close()


def _messages(database: Database) -> list[OutgoingMessage]:
    with database.unit_of_work() as uow:
        rows = uow.run_sql(
            "SELECT id, aggregate_id, aggregate_type, event_type, event_version, payload,"
            " correlation_id, created_at, attempts, 0 AS earlier_pending"
            " FROM whatsapp_handler.outbox_events ORDER BY created_at, id"
        )
    return [to_message(PendingEvent.from_row(row)) for row in rows]


def _publish_raw(
    publisher: EventPublisher, messages: list[OutgoingMessage], *, keyed: bool = True
) -> float:
    started = time.perf_counter()
    futures: list[Any] = [
        publisher.client.publish(
            publisher.topic_path,
            message.data,
            ordering_key=message.ordering_key if keyed else "",
            retry=None,
            timeout=30,
            **message.attributes,
        )
        for message in messages
    ]
    done, not_done = concurrent.futures.wait(futures, timeout=120)
    elapsed = time.perf_counter() - started
    failed = len(not_done) + sum(1 for future in done if future.exception() is not None)
    if failed:
        raise RuntimeError(f"raw publish: {failed} message(s) not acknowledged")
    return elapsed


def _publish_chunks(publisher: EventPublisher, messages: list[OutgoingMessage], size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(messages), size):
        results = publisher.publish_all(messages[start : start + size], timeout_seconds=30)
        if any(result.message_id is None for result in results):
            raise RuntimeError("chunked publish: a message was not acknowledged")
    return time.perf_counter() - started


def _relay_against_raw(url: str, host: str, args: argparse.Namespace) -> None:
    database: Database | None = None
    publisher: EventPublisher | None = None
    try:
        migrate.upgrade(url)
        settings = Settings(
            database_url=url,
            pubsub_emulator_host=host,
            google_cloud_project="railrepay-bench",
            pubsub_topic=f"wh-bench-{secrets.token_hex(4)}",
        )
        database = Database(settings)
        publisher = EventPublisher(PublisherConfig.from_settings(settings))
        publisher.ensure_topic_for_local_dev()
        _insert(url, events=args.events, aggregates=args.aggregates)
        messages = _messages(database)
        policy = RelayPolicy(batch_size=args.batch_size, publish_timeout_seconds=30)

        # Warm the channel and the emulator once, outside every measurement.
        _publish_raw(publisher, messages[:200])

        relay_started = time.perf_counter()
        summary = run_relay(database, publisher, policy)
        relay_seconds = time.perf_counter() - relay_started
        if summary.published != args.events or summary.remaining_backlog:
            raise RuntimeError(f"relay did not publish everything: {summary.as_dict()}")
        raw_seconds = _publish_raw(publisher, messages)
        chunk_seconds = _publish_chunks(publisher, messages, args.batch_size)
        unkeyed_seconds = _publish_raw(publisher, messages, keyed=False)

        relay_rate = args.events / relay_seconds
        raw_rate = args.events / raw_seconds
        chunk_rate = args.events / chunk_seconds
        print(
            f"{args.events} events over {args.aggregates} aggregates (ordering keys), "
            f"relay batch {args.batch_size}, emulator {host}"
        )
        print(
            f"relay (PostgreSQL -> Pub/Sub)   {relay_rate:9.0f} events/s  ({relay_seconds:.2f} s)"
        )
        print(f"raw batched publish, same client {raw_rate:8.0f} events/s  ({raw_seconds:.2f} s)")
        print(
            f"raw in relay-sized chunks        {chunk_rate:8.0f} events/s  ({chunk_seconds:.2f} s)"
        )
        ratio, chunk_ratio = relay_rate / raw_rate, relay_rate / chunk_rate
        print(f"relay / raw = {ratio:.2f}   relay / chunks = {chunk_ratio:.2f}")
        print(
            f"(for scale: the same client without ordering keys {args.events / unkeyed_seconds:.0f}"
            " events/s; with ordering on, the client sends one request per key per batch)"
        )
    finally:
        if publisher is not None:
            publisher.close()
        if database is not None:
            database.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--aggregates", type=int, default=2_500)
    parser.add_argument("--batch-size", type=int, default=RelayPolicy().batch_size)
    args = parser.parse_args()

    with LocalServices() as local:
        admin_url = local.shared_postgres()
        host, why = local.shared_pubsub()
        if host is None:
            raise SystemExit(f"no Pub/Sub emulator: {why}")
        with scratch_database(admin_url, f"wh_bench_{secrets.token_hex(4)}") as url:
            _relay_against_raw(url, host, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
