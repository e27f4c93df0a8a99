"""The webhook's latency on one connection: a verified user's text, a newcomer's YES."""

from __future__ import annotations

import http.client
import secrets
import statistics
import time

from bench.figures import RUNS, Figure, measured, p
from bench.seed import active_phones
from bench.serving import post, signed, text_form
from bench.session import BenchRun

TITLE = "webhook latency"
NAMES = (
    "webhook, verified user text, 1 connection: P50",
    "webhook, verified user text, 1 connection: P95",
    "webhook, new-user YES (user + outbox + SMS to stand-in): P95",
)


def measure(run: BenchRun) -> list[Figure]:
    run.seeded()
    return webhook_latency(run.server("webhook").port)


def webhook_latency(port: int) -> list[Figure]:
    rng = secrets.SystemRandom()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    phones = iter(active_phones(30 + RUNS * 200))
    requests = [signed(text_form(next(phones), "help")) for _ in range(30)]
    for body, headers in requests:  # warm-up
        post(port, body, headers, connection=connection)
    p50s, p95s = [], []
    for _ in range(RUNS):
        samples = []
        for _ in range(200):
            body, headers = signed(text_form(next(phones), "help"))
            started = time.perf_counter()
            status, reply = post(port, body, headers, connection=connection)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == 200 and b"<Message>" in reply, (status, reply[:200])
        p50s.append(p(samples, 0.5))
        p95s.append(p(samples, 0.95))
    p50, p95 = statistics.median(p50s), statistics.median(p95s)
    note = "200 requests x 3 runs, distinct verified users, one client connection"
    figures = [
        measured("webhook, verified user text, 1 connection: P50", p50, digits=2, note=note),
        measured("webhook, verified user text, 1 connection: P95", p95, digits=2, note=note),
    ]
    yes_p95s = []
    base = 10_000_000 + rng.randrange(10_000_000)
    for run in range(RUNS):
        samples = []
        for i in range(100):
            newcomer = f"+4478{base + run * 1000 + i:08d}"[:13]
            body, headers = signed(text_form(newcomer, "hi"))
            post(port, body, headers, connection=connection)
            body, headers = signed(text_form(newcomer, "YES"))
            started = time.perf_counter()
            status, reply = post(port, body, headers, connection=connection)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == 200, (status, reply[:200])
        yes_p95s.append(p(samples, 0.95))
    connection.close()
    figures.append(
        measured(
            "webhook, new-user YES (user + outbox + SMS to stand-in): P95",
            statistics.median(yes_p95s),
            digits=2,
            note="100 newcomers x 3 runs",
        )
    )
    return figures
