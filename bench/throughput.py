"""Throughput under wrk at 16 connections, side by side in each round: the webhook
against hello-world, and the notifier's sends against the webhook (``bench/load.py``)."""

from __future__ import annotations

import base64
import io
import json
import secrets
import shutil
import statistics
import subprocess
import time
from contextlib import redirect_stderr
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

from bench import load
from bench.figures import RUNS, Figure, measured, not_measured
from bench.seed import active_phones
from bench.serving import ACCOUNT_SID, AUTH_TOKEN, process_tree_cpu, signed, text_form
from bench.session import BenchRun
from tools.devservices import admin_connection
from tools.devtwilio import TwilioStandIn

TITLE = "throughput"
THROUGHPUT = "webhook throughput at 16 connections / hello-world"
NOTIFIER_SENDS = "notifier sends/s to the Twilio stand-in / webhook throughput"
NAMES = (THROUGHPUT, NOTIFIER_SENDS)

LOAD_SECONDS = 5
WEBHOOK_REQUESTS = 15_000  # per round: wrk must not run out (about 1,000 req/s here)
NOTIFY_REQUESTS = 10_000
SPARE_ROUNDS = 2  # fresh request files for rounds redone after a failed request
PUBSUB_SOURCE = "//pubsub.googleapis.com/projects/railrepay-bench/topics/notify"
CONTENT_SID = "HX" + "c" * 32


def measure(run: BenchRun) -> list[Figure]:
    run.seeded()
    webhook, hello = run.server("webhook"), run.server("hello")
    notifier, users = run.server("notifier"), run.server("user_api")
    ports = Ports(webhook.port, hello.port, notifier.port, users.port, webhook.pid, hello.pid)
    try:
        figures = load_rounds(ports, run.twilio, run.url, run.workdir)
        try:
            capacity = f"{standin_capacity(run.twilio, run.workdir):.0f} req/s"
        except (RuntimeError, subprocess.CalledProcessError) as error:
            capacity = f"not measured ({str(error)[:100]})"
        return [
            *figures[:-1],
            replace(
                figures[-1],
                note=figures[-1].note
                + f"; the stand-in alone answers {capacity} at 16 connections",
            ),
        ]
    except (RuntimeError, subprocess.CalledProcessError) as error:
        return [not_measured(name, str(error)[:300]) for name in NAMES]


def webhook_lines(phones: list[str]) -> list[str]:
    """One signed inbound text a line, each from another verified, active user."""
    lines = []
    for sender in phones:
        body, headers = signed(text_form(sender, "help"))
        lines.append(load.line("POST", "/", headers, body.decode()))
    return lines


def notify_lines(user_ids: list[str]) -> list[str]:
    """Pub/Sub push deliveries as binary-mode CloudEvents, one notification each."""
    lines = []
    for user_id in user_ids:
        notification_id = "bench-" + secrets.token_hex(8)
        request = {
            "notification_id": notification_id,
            "user_id": user_id,
            "text": "Your claim has been received.",
            "content_sid": CONTENT_SID,  # users outside the 24 h window get the template
        }
        message_id = str(secrets.randbelow(10**15))
        envelope = {
            "message": {
                "data": base64.b64encode(json.dumps(request).encode()).decode(),
                "attributes": {"correlation_id": notification_id},
                "messageId": message_id,
            },
            "subscription": "projects/railrepay-bench/subscriptions/notify-push",
        }
        headers = {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": message_id,
            "ce-source": PUBSUB_SOURCE,
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        }
        lines.append(load.line("POST", "/", headers, json.dumps(envelope)))
    return lines


def user_api_lines(user_ids: list[str]) -> list[str]:
    lines = []
    for index, user_id in enumerate(user_ids):
        suffix = "/preferences" if index % 2 else ""
        lines.append(load.line("GET", f"/api/v1/users/{user_id}{suffix}", {}))
    return lines


def active_user_ids(url: str, count: int) -> list[str]:
    connection = admin_connection(url)
    try:
        rows = connection.run(
            "SELECT CAST(id AS text) FROM whatsapp_handler.users TABLESAMPLE SYSTEM (10)"
            " WHERE last_active_at > now() - interval '170 days' AND anonymized_at IS NULL"
            " LIMIT :count",
            count=count,
        )
    finally:
        connection.close()
    ids = [str(row[0]) for row in rows]
    if len(ids) < count:
        raise RuntimeError(f"only {len(ids)} active users sampled")
    secrets.SystemRandom().shuffle(ids)
    return ids


@dataclass(frozen=True)
class Ports:
    webhook: int
    hello: int
    notifier: int
    user_api: int
    webhook_pid: int
    hello_pid: int


def load_rounds(ports: Ports, twilio: TwilioStandIn, url: str, workdir: Path) -> list[Figure]:
    """RUNS rounds of wrk (16 connections, LOAD_SECONDS each): webhook, hello-world,
    notifier, user_api in turn, so every ratio is taken side by side within a round."""
    if shutil.which("wrk") is None:
        return [not_measured(name, "wrk not installed") for name in NAMES]
    started = time.perf_counter()
    phones = active_phones((RUNS + SPARE_ROUNDS) * WEBHOOK_REQUESTS)
    ids = active_user_ids(url, (RUNS + SPARE_ROUNDS) * NOTIFY_REQUESTS)
    files = []
    for run in range(RUNS + SPARE_ROUNDS):
        hooks = webhook_lines(phones[run * WEBHOOK_REQUESTS : (run + 1) * WEBHOOK_REQUESTS])
        notes = notify_lines(ids[run * NOTIFY_REQUESTS : (run + 1) * NOTIFY_REQUESTS])
        users = user_api_lines(ids[run * NOTIFY_REQUESTS : (run + 1) * NOTIFY_REQUESTS])
        files.append(
            (
                load.write_requests(workdir / f"webhook-{run}.txt", hooks),
                load.write_requests(workdir / f"notify-{run}.txt", notes),
                load.write_requests(workdir / f"users-{run}.txt", users),
            )
        )
    print(f"  request files built in {time.perf_counter() - started:.1f} s", flush=True)
    ratios, notify_ratios = [], []
    detail: dict[str, list[float]] = {
        "webhook": [],
        "hello": [],
        "notify": [],
        "sent": [],
        "users": [],
        "webhook_cpu": [],
        "hello_cpu": [],
    }
    failed_rounds: list[str] = []
    unused = iter(files)
    while len(ratios) < RUNS:
        hooks_file, notify_file, users_file = next(unused, (None, None, None))
        if hooks_file is None or notify_file is None or users_file is None:
            raise RuntimeError("too many failed rounds: " + " | ".join(failed_rounds)[:600])

        def wrk(port: int, path: Path, *, replays: bool = False) -> load.WrkResult:
            return load.run(
                f"http://127.0.0.1:{port}/",
                path,
                workdir,
                seconds=LOAD_SECONDS,
                allow_replays=replays,
            )

        try:
            cpu = process_tree_cpu(ports.webhook_pid)
            webhook = wrk(ports.webhook, hooks_file)
            webhook_cpu = (process_tree_cpu(ports.webhook_pid) - cpu) / webhook.requests
            cpu = process_tree_cpu(ports.hello_pid)
            hello = wrk(ports.hello, hooks_file, replays=True)  # it ignores the body
            hello_cpu = (process_tree_cpu(ports.hello_pid) - cpu) / hello.requests
            before = len(twilio.messages)
            notify = wrk(ports.notifier, notify_file)
            sent = len(twilio.messages) - before
            users = wrk(ports.user_api, users_file, replays=True)
        except load.Failures as error:
            # A round with any failed request is redone on fresh requests (another
            # session's test may kill every pooled connection on this shared server).
            failed_rounds.append(str(error).replace("\n", " ")[:300])
            continue
        sent_rate = sent / notify.seconds
        ratios.append(webhook.rate / hello.rate)
        notify_ratios.append(sent_rate / webhook.rate)
        for key, value in (
            ("webhook", webhook.rate),
            ("hello", hello.rate),
            ("notify", notify.rate),
            ("sent", sent_rate),
            ("users", users.rate),
            ("webhook_cpu", webhook_cpu * 1000),
            ("hello_cpu", hello_cpu * 1000),
        ):
            detail[key].append(value)
        if sent < notify.requests:
            raise RuntimeError(f"notifier acknowledged {notify.requests} but sent {sent}")
    redone = f"; {len(failed_rounds)} round(s) redone after failed requests" * bool(failed_rounds)
    median = {key: statistics.median(values) for key, values in detail.items()}
    ratio, notify_ratio = statistics.median(ratios), statistics.median(notify_ratios)
    return [
        measured(
            THROUGHPUT,
            ratio,
            digits=2,
            note=f"webhook {median['webhook']:.0f} req/s, hello {median['hello']:.0f} req/s; "
            f"server CPU per request: webhook {median['webhook_cpu']:.2f} ms, hello "
            f"{median['hello_cpu']:.2f} ms; "
            f"median of {RUNS} rounds of wrk {LOAD_SECONDS} s; every request a distinct "
            "MessageSid from a distinct verified user (the full path, no deduplicated repeat)"
            + redone,
        ),
        measured(
            NOTIFIER_SENDS,
            notify_ratio,
            digits=2,
            note=f"{median['sent']:.0f} sends/s ({median['notify']:.0f} CloudEvents acked/s) "
            f"vs webhook {median['webhook']:.0f} req/s in the same round; Pub/Sub push "
            f"CloudEvents at 16 connections, distinct notifications to distinct users; "
            f"user_api under the same load: {median['users']:.0f} req/s",
        ),
    ]


def standin_capacity(twilio: TwilioStandIn, workdir: Path) -> float:
    """What the Twilio stand-in alone answers at 16 connections (is it the bottleneck?)."""
    auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    form = urlencode({"To": "whatsapp:+447700900001", "From": "whatsapp:+447700900998"})
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    headers = {
        "Authorization": f"Basic {auth}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    lines = [load.line("POST", path, headers, form + "&Body=x")] * 100
    file = load.write_requests(workdir / "standin.txt", lines)
    # wrk hangs up on the requests in flight when it stops: the stand-in's threads print
    # a BrokenPipeError for each, which is noise here.
    with redirect_stderr(io.StringIO()):
        result = load.run(
            twilio.base_url + "/", file, workdir, seconds=LOAD_SECONDS, allow_replays=True
        )
        time.sleep(0.5)
    return result.rate
