"""The GDPR job (POST /, as the scheduler does) on 100,000 inactive of 1,000,000 users,
with the outbox relay called back to back and a one-connection webhook probe: its longest
transaction comes from pg_stat_activity (the job logs in as a role of its own), the
webhook's P95 during the run is set against its P95 just before."""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
from pathlib import Path

from redis import Redis

from bench.figures import GDPR_TOTAL, RUNS, Figure, measured, not_measured, p
from bench.seed import INACTIVE_USERS, active_phones
from bench.serving import post, process_tree_cpu, signed, text_form
from bench.session import GDPR_BUDGET_SECONDS, RELAY_LOOP_SECONDS, BenchRun
from tools.devservices import admin_connection

TITLE = "GDPR job"
LONGEST = "GDPR job: longest transaction"
PROBE_RATIO = "GDPR job: webhook P95 during the run / idle"
NAMES = (GDPR_TOTAL, LONGEST, PROBE_RATIO)


def measure(run: BenchRun) -> list[Figure]:
    run.seeded()
    webhook, gdpr = run.server("webhook"), run.server("gdpr_cleanup")
    relay = run.server("outbox_relay") if run.emulator else None
    try:
        return gdpr_under_load(
            webhook.port,
            webhook.pid,
            gdpr.port,
            gdpr.pid,
            relay.port if relay else None,
            relay.pid if relay else None,
            run.url,
            run.role,
            run.redis,
            run.redis_prefix,
        )
    except (RuntimeError, OSError, ValueError) as error:
        return [not_measured(GDPR_TOTAL, str(error)[:300])]


class TransactionWatch:
    """Polls pg_stat_activity every 20 ms for the open transactions of one role: the
    longest transaction (to within the poll interval) and how many went over 1 s."""

    def __init__(self, url: str, role: str) -> None:
        self.url, self.role = url, role
        self.longest: dict[tuple[int, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TransactionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        connection = admin_connection(self.url)
        connection.run("SET application_name = 'bench-watch'")
        try:
            while not self._stop.is_set():
                rows = connection.run(
                    "SELECT pid, CAST(xact_start AS text),"
                    " EXTRACT(EPOCH FROM clock_timestamp() - xact_start)"
                    " FROM pg_stat_activity WHERE usename = :role AND xact_start IS NOT NULL",
                    role=self.role,
                )
                for pid, start, age in rows:
                    key = (int(pid), str(start))
                    self.longest[key] = max(self.longest.get(key, 0.0), float(age))
                time.sleep(0.02)
        finally:
            connection.close()


class LatencyProbe:
    """One connection, one signed inbound text at a time, each from a new verified user;
    records (monotonic time, milliseconds) until stopped."""

    def __init__(self, port: int, phones: list[str]) -> None:
        self.port, self.phones = port, iter(phones)
        self.samples: list[tuple[float, float]] = []
        self.failures: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LatencyProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def count(self) -> int:
        if not self._thread.is_alive():
            raise RuntimeError("the webhook probe stopped")
        return len(self.samples)

    def _run(self) -> None:
        """A failed request (another session's test killing every pooled connection on
        this shared server answers one 503) is counted and left out, not fatal."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for sender in self.phones:
                if self._stop.is_set():
                    break
                body, headers = signed(text_form(sender, "help"))
                started = time.perf_counter()
                try:
                    status, _ = post(self.port, body, headers, connection=connection)
                except OSError:
                    status = 0
                    connection.close()
                finished = time.perf_counter()
                if status == 200:
                    self.samples.append((finished, (finished - started) * 1000))
                else:
                    self.failures.append(finished)
        finally:
            connection.close()


def window_p95s(samples: list[float], size: int = 200) -> list[float]:
    return [p(samples[i : i + size], 0.95) for i in range(0, len(samples) - size + 1, size)]


class RelayLoop:
    """outbox_relay POSTed back to back (production: Cloud Scheduler every minute, each
    call draining and polling for RELAY_LOOP_SECONDS), so the outbox does not pile up."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.published = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RelayLoop:
        if self.port is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.port is not None:
            self._thread.join(RELAY_LOOP_SECONDS + 30)

    def _run(self) -> None:
        assert self.port is not None  # started only with a port
        while not self._stop.is_set():
            try:
                self.published += int(str(run_relay_once(self.port)["published"]))
            except (OSError, RuntimeError) as error:
                self.error = str(error)[:200]
                return


def unpublished(url: str) -> int:
    connection = admin_connection(url)
    try:
        rows = connection.run(
            "SELECT count(*) FROM whatsapp_handler.outbox_events WHERE published_at IS NULL"
        )
    finally:
        connection.close()
    return int(rows[0][0])


def drain_outbox(relay_port: int | None, url: str) -> str:
    """Let the relay publish what the load above left (production's relay keeps up)."""
    before = unpublished(url)
    if relay_port is None:
        return f"no relay (no Pub/Sub emulator): {before:,} unpublished outbox rows left"
    started = time.perf_counter()
    while time.perf_counter() - started < 90:
        summary = run_relay_once(relay_port)
        if not summary.get("remaining_backlog"):
            break
    return (
        f"the relay drained {before:,} unpublished outbox rows to {unpublished(url):,} "
        f"in {time.perf_counter() - started:.0f} s first"
    )


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def gdpr_under_load(
    webhook_port: int,
    webhook_pid: int,
    gdpr_port: int,
    gdpr_pid: int,
    relay_port: int | None,
    relay_pid: int | None,
    url: str,
    role: str,
    redis_client: Redis,
    prefix: str,
) -> list[Figure]:
    """The retention job (served like production, POST /) on 100K inactive of 1M users,
    beside a one-connection webhook probe (its P95 idle just before, and during the run)
    and the outbox relay running throughout, as in production."""
    drained = drain_outbox(relay_port, url)
    keys = sum(1 for _ in redis_client.scan_iter(match=f"{prefix}*", count=1000))
    print(f"  {drained}", flush=True)
    with (
        RelayLoop(relay_port) as relay,
        TransactionWatch(url, role) as watch,
        LatencyProbe(webhook_port, active_phones(60_000)) as probe,
    ):
        while probe.count() < 50 + RUNS * 200:  # warm-up, then RUNS idle windows
            time.sleep(0.05)
        trees = {"job": gdpr_pid, "relay": relay_pid, "webhook": webhook_pid}
        cpu_before = {key: process_tree_cpu(pid) for key, pid in trees.items() if pid}
        busy_before = machine_busy()
        begun = time.perf_counter()
        interrupted = 0
        while True:
            status, reply = post(gdpr_port, b"", {"Content-Type": "application/json"}, timeout=900)
            seconds = time.perf_counter() - begun
            # 503: another session's test killed the job's connections; what it committed
            # stays, so call again (as the scheduler's retry would) while budget remains.
            if status != 503 or seconds > GDPR_BUDGET_SECONDS or interrupted >= 3:
                break
            interrupted += 1
        cores = {
            key: (process_tree_cpu(pid) - cpu_before[key]) / seconds
            for key, pid in trees.items()
            if pid
        }
        busy = machine_busy()
        backends = {pid for pid, _ in watch.longest}  # pooled: alive, and born in this run
        backend_cores = sum(process_tree_cpu(pid) for pid in backends) / seconds
        machine = (busy[0] - busy_before[0]) / max(busy[1] - busy_before[1], 1)
        machine_cores = machine * (os.cpu_count() or 1)
        time.sleep(0.1)
    left = unpublished(url)
    if status not in (200, 500):
        raise RuntimeError(f"gdpr_cleanup answered {status}: {reply[:300]!r}")
    summary = json.loads(reply)
    batches = f"{summary['batches']} batches" + (
        f" (after {interrupted} call(s) cut short by a 503, re-called)" * bool(interrupted)
    )
    idle = [ms for at, ms in probe.samples if at < begun][-RUNS * 200 :]
    during = [ms for at, ms in probe.samples if begun <= at <= begun + seconds]
    idle_p95 = statistics.median(window_p95s(idle))
    during_p95 = statistics.median(window_p95s(during)) if len(during) >= 200 else p(during, 0.95)
    ratio = during_p95 / idle_p95
    anonymised = anonymised_count(url)  # summed over re-calls: only the job anonymises
    done = summary["status"] == "complete"
    longest = max(watch.longest.values(), default=0.0)
    over = sum(1 for age in watch.longest.values() if age > 1.0)
    if done:
        total, total_note = seconds, f"{anonymised:,} anonymised, last call {batches}"
    else:
        total = seconds * INACTIVE_USERS / max(anonymised, 1)
        total_note = (
            f"NOT finished: the bench's {GDPR_BUDGET_SECONDS} s budget (GDPR_MAX_RUN_SECONDS) "
            f"ran out after {anonymised:,} users (last call {batches}) "
            f"({seconds:.0f} s); value = that rate extrapolated to {INACTIVE_USERS:,}"
        )
    total_note += (
        f"; Redis held {keys:,} keys under the run's prefix"
        " (no SCAN: each batch DELs its conversation keys, D72)"
    )
    return [
        measured(GDPR_TOTAL, total, digits=1, note=total_note, holds=done),
        measured(
            LONGEST,
            longest,
            digits=3,
            note=f"pg_stat_activity polled every 20 ms; {len(watch.longest)} transactions seen, "
            f"{over} over 1 s; {drained}; during the run the relay published "
            f"{relay.published:,} events, {left:,} left unpublished"
            + (f"; relay error: {relay.error}" if relay.error else ""),
        ),
        measured(
            PROBE_RATIO,
            ratio,
            digits=2,
            note=f"during {during_p95:.2f} ms ({len(during)} requests), idle {idle_p95:.2f} ms "
            f"(just before, {len(idle)} requests); one connection, median of 200-request "
            f"windows' P95; {len(probe.failures)} failed requests left out; during the "
            f"run the machine was {machine:.0%} busy ({machine_cores:.2f} cores): the job "
            f"{cores['job']:.2f}, its PostgreSQL backend(s) {backend_cores:.2f}, the relay "
            f"{cores.get('relay', 0.0):.2f} (the emulator not counted), the webhook "
            f"{cores['webhook']:.2f}, the rest (PostgreSQL, Redis, the emulator, this "
            f"process, other sessions) "
            f"{machine_cores - backend_cores - sum(cores.values()):.2f}",
        ),
    ]


def run_relay_once(port: int) -> dict[str, object]:
    """One scheduler call; a 503 (pooled connections killed by another session's test on
    this shared server) is retried, as Cloud Scheduler would."""
    for _ in range(3):
        status, reply = post(port, b"", {"Content-Type": "application/json"}, timeout=120)
        if status != 503:
            break
    if status != 200:
        raise RuntimeError(f"outbox_relay answered {status}: {reply[:300]!r}")
    return dict(json.loads(reply))


def anonymised_count(url: str) -> int:
    connection = admin_connection(url)
    try:
        rows = connection.run(
            "SELECT count(*) FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL"
        )
    finally:
        connection.close()
    return int(rows[0][0])
