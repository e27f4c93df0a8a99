"""Soak (issue 12): a steady mixed load on the real functions for SOAK_SECONDS (default 300).

The functions run exactly as `make dev` runs them (``tools/devstack.py``): one
functions-framework subprocess per target on a free port, on this run's PostgreSQL, Redis,
the Pub/Sub emulator and the Twilio stand-in; the dev stack's emulator sink appends every
event the relay publishes to ``events.jsonl``. The soak drives the scheduled jobs itself
(instead of the dev stack's timers) so it sees every answer: the relay is POSTed every 2 s,
GDPR retention and the outbox purge on their own timers, with inactive users seeded before
each retention run so it always has work.

The load, started at a steady rate of scenarios (a seeded shuffle of ``MIX``):
- ``register``: a new number says hello, YES, then the code read from the stand-in's SMS;
- ``chat``: a verified user sends a short message;
- ``claim``: CLAIM, date, stations, time, ticket photo or SKIP, YES (README's transcript);
- ``ticket``: a verified user sends a ticket photo (``ticket.uploaded``);
- ``notify``: a notification request, half POSTed to ``notify`` as Pub/Sub's push body,
  half published to ``NOTIFY_TOPIC`` (the dev stack's push subscription delivers them);
- ``lookup``: ``user_api`` reads of users, preferences, erased and unknown ids;
- ``erase``: DELETE MY DATA, then YES.

At the end: zero 5xx (and zero transport errors) from every function; every reply the
one the conversation promises at that step; each function's resident memory (VmRSS of its
process tree, sampled every second) after the warm-up (the first 20 %) never more than
10 % above its post-warm-up baseline (the median over 20-30 % of the run); after a final
relay drain every outbox row published, none dead-lettered, and each received on the
emulator subscription; every notification finished in the ledger (sent or skipped); every
seeded inactive user anonymised. A summary is printed.

Users pause like people: one is picked only after at most 10 messages in the last minute,
so the per-number limit (20 a minute, a polite TwiML reply) is not what is measured.

Run with ``make soak``, or ``SOAK_SECONDS=30 .venv/bin/pytest -m soak tests/soak -s``.
Not at the same time as another suite on the same PostgreSQL server: a test that
terminates every ``whatsapp-handler`` backend on the server (whatever the database) makes
the webhook answer 503, as it should, and the soak fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Services
from tools.commands import chat
from tools.devservices import admin_connection
from tools.devstack import (
    Console,
    DevOptions,
    DevStack,
    EnvironmentSettings,
    load_stack,
    post_json,
)

pytestmark = [pytest.mark.soak, pytest.mark.pubsub]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
WARM_UP_FRACTION = 0.2
BASELINE_WINDOW_FRACTION = 0.1  # the baseline: median RSS over 20-30 % of the run
RSS_GROWTH_LIMIT = 0.10
SCENARIOS_PER_SECOND = 8.0
MIX = {"chat": 30, "register": 10, "claim": 8, "ticket": 8, "notify": 15, "lookup": 15, "erase": 3}
INITIAL_USERS = 80
# A user is picked only after at most this many messages in the last minute, so with a
# claim's 7 they stay under RATE_LIMIT_INBOUND_PER_MINUTE (20).
MESSAGES_PER_USER_MINUTE = 10
LOAD_THREADS = 24
RELAY_EVERY_SECONDS = 2.0
GDPR_EVERY_SECONDS = min(15.0, max(5.0, SOAK_SECONDS / 6))
PURGE_EVERY_SECONDS = min(60.0, max(10.0, SOAK_SECONDS / 3))
INACTIVE_USERS_PER_GDPR_RUN = 50
FUNCTION_ENVIRONMENT = {
    # The soak registers more numbers an hour than the default SMS-pumping ceiling allows;
    # the per-number limits stay at their defaults.
    "RATE_LIMIT_OTP_GLOBAL_PER_HOUR": "100000",
    "GDPR_BATCH_SIZE": "20",  # several batches per retention run
}
# A 1x1 PNG, hosted by the stand-in as Twilio hosts an inbound photo.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
TIMEOUT_SECONDS = SOAK_SECONDS + 600  # start-up, the final drain and checks: well under that


# --- what happened ------------------------------------------------------------------------


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    lag_seconds: list[float] = field(default_factory=list)
    job_totals: Counter[str] = field(default_factory=Counter)

    def status(self, endpoint: str, code: int) -> None:
        with self.lock:
            self.statuses[(endpoint, code)] += 1

    def count(self, scenario: str) -> None:
        with self.lock:
            self.scenarios[scenario] += 1

    def anomaly(self, text: str) -> None:
        with self.lock:
            self.anomalies.append(text)

    def server_errors(self) -> dict[tuple[str, int], int]:
        """5xx answers, and requests that got no answer at all (status 0)."""
        return {key: n for key, n in self.statuses.items() if key[1] >= 500 or key[1] == 0}


class ScenarioFailed(Exception):
    pass


@dataclass(frozen=True)
class User:
    phone: str
    user_id: str


@dataclass
class Pool:
    """Verified users; a user is checked out to one conversation at a time."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    idle: list[User] = field(default_factory=list)
    known: dict[str, User] = field(default_factory=dict)
    erased: list[User] = field(default_factory=list)
    sent: dict[str, deque[float]] = field(default_factory=dict)

    def add(self, user: User) -> None:
        with self.lock:
            self.idle.append(user)
            self.known[user.phone] = user

    def note_message(self, phone: str, now: float) -> None:
        with self.lock:
            self.sent.setdefault(phone, deque()).append(now)

    def checkout(self, rng: random.Random) -> User | None:
        """A random idle user who has sent few enough messages in the last minute that a
        whole claim stays under the webhook's per-number limit (people pause; the load's
        random picks would not)."""
        now = time.monotonic()
        with self.lock:
            for _ in range(len(self.idle)):
                index = rng.randrange(len(self.idle))
                user = self.idle[index]
                recent = self.sent.setdefault(user.phone, deque())
                while recent and recent[0] < now - 60:
                    recent.popleft()
                if len(recent) <= MESSAGES_PER_USER_MINUTE:
                    self.idle[index], self.idle[-1] = self.idle[-1], self.idle[index]
                    return self.idle.pop()
            return None

    def checkin(self, user: User) -> None:
        with self.lock:
            self.idle.append(user)

    def retire(self, user: User, *, erased: bool) -> None:
        """Out of the load: erased, or in a state the soak no longer knows."""
        with self.lock:
            self.known.pop(user.phone, None)
            if erased:
                self.erased.append(user)

    def any_known(self, rng: random.Random) -> User | None:
        with self.lock:
            return rng.choice(list(self.known.values())) if self.known else None

    def any_erased(self, rng: random.Random) -> User | None:
        with self.lock:
            return rng.choice(self.erased) if self.erased else None


# --- memory ---------------------------------------------------------------------------------


def tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants (functions-framework: gunicorn's arbiter
    and its worker)."""
    pids, total = [pid], 0
    while pids:
        current = pids.pop()
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
    return total


@dataclass
class RssSampler:
    pids: dict[str, int]
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def run(self, started: float, stop: threading.Event) -> None:
        while not stop.is_set():
            now = time.monotonic() - started
            for name, pid in self.pids.items():
                self.samples.setdefault(name, []).append((now, tree_rss_kib(pid)))
            stop.wait(1.0)

    def verdicts(self, duration: float) -> dict[str, tuple[int, int, int]]:
        """Per function: (baseline, max after warm-up, max during warm-up), KiB."""
        warm_up = duration * WARM_UP_FRACTION
        window_end = warm_up + duration * BASELINE_WINDOW_FRACTION
        out = {}
        for name, samples in self.samples.items():
            after = [kib for t, kib in samples if t >= warm_up]
            window = [kib for t, kib in samples if warm_up <= t < window_end] or after[:1]
            before = [kib for t, kib in samples if t < warm_up] or [0]
            out[name] = (int(statistics.median(window)), max(after), max(before))
        return out


# --- the load -------------------------------------------------------------------------------


@dataclass
class Load:
    target: chat.ChatTarget
    urls: dict[str, str]
    database_url: str
    project: str
    notify_topic: str
    tally: Tally = field(default_factory=Tally)
    pool: Pool = field(default_factory=Pool)
    run_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    ticket_url: str = ""
    _numbers: Iterator[int] = field(default_factory=lambda: iter(range(10**6)))
    _number_base: int = field(default_factory=lambda: random.randrange(10**7, 8 * 10**7))
    _notifications: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sql: Any = None
    _publisher: Any = None
    direct_notifications: list[str] = field(default_factory=list)
    published_notifications: list[str] = field(default_factory=list)
    publish_futures: list[Future[Any]] = field(default_factory=list)

    # -- plumbing --

    def sql(self, statement: str, **params: Any) -> list[dict[str, Any]]:
        with self._lock:
            if self._sql is None:
                self._sql = admin_connection(self.database_url)
            rows = self._sql.run(statement, **params)
            names = [column["name"] for column in self._sql.columns or []]
        return [dict(zip(names, row, strict=True)) for row in rows or []]

    def close(self) -> None:
        if self._sql is not None:
            self._sql.close()
        if self._publisher is not None:
            self._publisher.stop()

    def new_phone(self) -> str:
        with self._lock:
            return f"+4477{self._number_base + next(self._numbers):08d}"

    def say(
        self,
        phone: str,
        text: str,
        expect: tuple[str, ...],
        *,
        step: str,
        media: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """One signed inbound message; the reply's text, or ScenarioFailed (recorded)."""
        form = chat.inbound_form(number=phone, body=text, target=self.target, media=media)
        self.pool.note_message(phone, time.monotonic())
        try:
            reply = chat.post_inbound(self.target, form, timeout=30)
        except OSError as error:
            self.tally.status("webhook", 0)
            self.tally.anomaly(f"{step}: no answer from the webhook ({type(error).__name__})")
            raise ScenarioFailed from None
        self.tally.status("webhook", reply.status)
        said = "\n".join(reply.texts)
        if reply.status != 200 or not any(word in said for word in expect):
            self.tally.anomaly(
                f"{step}: status {reply.status}, expected one of {expect}, got {said[:160]!r}"
                if reply.status == 200
                else f"{step}: status {reply.status} {reply.body[:160]!r}"
            )
            raise ScenarioFailed
        return said

    def get(self, endpoint: str, url: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - local
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except OSError as error:
            self.tally.status(endpoint, 0)
            self.tally.anomaly(f"{endpoint}: no answer ({type(error).__name__})")
            raise ScenarioFailed from None
        self.tally.status(endpoint, status)
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw[:160]

    def job(self, name: str) -> dict[str, Any]:
        status, payload = post_json(self.urls[name], {}, timeout=120)
        self.tally.status(name, status)
        if status != 200 or not isinstance(payload, dict):
            self.tally.anomaly(f"{name}: status {status} {str(payload)[:160]!r}")
            return {}
        with self.tally.lock:
            for key in ("published", "anonymised", "deleted", "failed", "dead_lettered"):
                value = payload.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    self.tally.job_totals[f"{name}.{key}"] += value
        return payload

    # -- scenarios --

    def register(self, rng: random.Random) -> None:
        phone = self.new_phone()
        self.say(phone, "hello", ("reply YES",), step="register/hello")
        self.say(phone, "yes", ("6-digit code",), step="register/yes")
        code = self.wait_for_code(phone)
        self.say(phone, code, ("verified",), step="register/code")
        (row,) = self.sql(
            "SELECT CAST(id AS TEXT) AS id FROM whatsapp_handler.users WHERE phone_number = :p",
            p=phone,
        )
        self.pool.add(User(phone, row["id"]))

    def wait_for_code(self, phone: str) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            messages, _ = chat.fetch_messages(self.target, phone)
            for message in messages:
                found = _CODE.findall(message.get("body") or "")
                if not str(message["to"]).startswith("whatsapp:") and found:
                    return str(found[-1])
            time.sleep(0.05)
        self.tally.anomaly("register: no SMS with a code within 10 s")
        raise ScenarioFailed

    def with_user(self, rng: random.Random, kind: str, body: Callable[[User], bool]) -> None:
        """Run ``body`` as an idle verified user; it answers whether the user is still live
        (False: erased). A user whose scenario failed leaves the load (unknown state)."""
        user = self.pool.checkout(rng)
        if user is None:
            self.tally.count(f"{kind} (no idle user)")
            return
        live: bool | None = None
        try:
            live = body(user)
        finally:
            if live:
                self.pool.checkin(user)
            else:
                self.pool.retire(user, erased=live is False)

    def chat(self, rng: random.Random) -> None:
        def talk(user: User) -> bool:
            text = rng.choice(("hello", "HELP", "menu", "thanks!", "what can you do?"))
            self.say(user.phone, text, ("CLAIM", "claim"), step=f"chat/{text}")
            return True

        self.with_user(rng, "chat", talk)

    def claim(self, rng: random.Random) -> None:
        def claim(user: User) -> bool:
            self.say(user.phone, "CLAIM", ("Which day",), step="claim/start")
            self.say(user.phone, "yesterday", ("Which stations",), step="claim/date")
            self.say(user.phone, "Leeds to York", ("What time",), step="claim/stations")
            # A ticket sent earlier is already in the claim: then this goes to the summary.
            said = self.say(
                user.phone, "8.02am", ("ticket", "Reply YES to send"), step="claim/time"
            )
            if "Reply YES to send" not in said:
                if rng.random() < 0.5:
                    media = ((self.ticket_url, "image/png"),)
                    self.say(
                        user.phone, "", ("Reply YES to send",), step="claim/photo", media=media
                    )
                else:
                    self.say(user.phone, "SKIP", ("Reply YES to send",), step="claim/skip")
            said = self.say(
                user.phone,
                "YES",
                ("We've sent your claim", "already sent a claim"),
                step="claim/yes",
            )
            if "already sent a claim" in said:  # this user's same journey again: warned once
                self.say(user.phone, "YES", ("We've sent your claim",), step="claim/yes-again")
            return True

        self.with_user(rng, "claim", claim)

    def ticket(self, rng: random.Random) -> None:
        def ticket(user: User) -> bool:
            media = ((self.ticket_url, "image/png"),)
            self.say(user.phone, "", ("CLAIM",), step="ticket", media=media)
            return True

        self.with_user(rng, "ticket", ticket)

    def erase(self, rng: random.Random) -> None:
        def erase(user: User) -> bool:
            self.say(user.phone, "DELETE MY DATA", ("Reply YES to delete",), step="erase/ask")
            self.say(user.phone, "YES", ("deleted",), step="erase/yes")
            return False

        self.with_user(rng, "erase", erase)

    def notify(self, rng: random.Random) -> None:
        user = self.pool.any_erased(rng) if rng.random() < 0.1 else self.pool.any_known(rng)
        if user is None:
            self.tally.count("notify (no user)")
            return
        notification_id = f"soak-{self.run_tag}-{next(self._notifications)}"
        request = {
            "notification_id": notification_id,
            "user_id": user.user_id,
            "text": "Your 08:02 Leeds to York was 32 minutes late. Reply CLAIM to claim.",
        }
        data = json.dumps(request).encode()
        if rng.random() < 0.5:
            self.publish(notification_id, data)
            return
        envelope = {  # what a Pub/Sub push subscription POSTs (terraform/pubsub.tf)
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": {"origin": "soak"},
                "messageId": str(rng.randrange(10**15)),
                "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            },
            "subscription": f"projects/{self.project}/subscriptions/soak-direct",
        }
        status, payload = post_json(self.urls["notify"], envelope, timeout=30)
        self.tally.status("notify", status)
        with self._lock:
            self.direct_notifications.append(notification_id)
        if status != 200:
            self.tally.anomaly(f"notify: status {status} {str(payload)[:160]!r}")
            raise ScenarioFailed

    def publish(self, notification_id: str, data: bytes) -> None:
        with self._lock:
            if self._publisher is None:
                from google.cloud import pubsub_v1

                self._publisher = pubsub_v1.PublisherClient()
            topic = self._publisher.topic_path(self.project, self.notify_topic)
            self.publish_futures.append(self._publisher.publish(topic, data))
            self.published_notifications.append(notification_id)

    def lookup(self, rng: random.Random) -> None:
        base = self.urls["user_api"].rstrip("/")
        roll = rng.random()
        if roll < 0.1:
            status, _ = self.get("user_api", f"{base}/api/v1/users/{uuid.uuid4()}")
            expected: tuple[int, ...] = (404,)
        elif roll < 0.2 and (gone := self.pool.any_erased(rng)) is not None:
            status, body = self.get("user_api", f"{base}/api/v1/users/{gone.user_id}")
            expected = (200,)
            if status == 200 and not (body["erased"] and body["phone_number"] is None):
                self.tally.anomaly("lookup: an erased user is not shown as erased")
        else:
            user = self.pool.any_known(rng)
            if user is None:
                return
            preferences = "/preferences" if rng.random() < 0.4 else ""
            status, _ = self.get("user_api", f"{base}/api/v1/users/{user.user_id}{preferences}")
            expected = (200, 410)  # 410: erased meanwhile (by its own erase scenario)
        if status not in expected:
            self.tally.anomaly(f"lookup: status {status}, expected {expected}")

    def run(self, kind: str, rng: random.Random) -> None:
        try:
            getattr(self, kind)(rng)
        except ScenarioFailed:
            self.tally.count(f"{kind} FAILED")
        except Exception as error:
            self.tally.count(f"{kind} FAILED")
            self.tally.anomaly(f"{kind}: {type(error).__name__}: {str(error)[:160]}")
        else:
            self.tally.count(kind)

    # -- the jobs --

    def seed_inactive_users(self, count: int) -> int:
        """Users untouched for 200 days: due for retention anonymisation."""
        with self._lock:
            base = self._number_base + 5 * 10**6 + next(self._numbers)
            for _ in range(count):
                next(self._numbers)
        self.sql(
            """
            WITH made AS (
                INSERT INTO whatsapp_handler.users
                       (phone_number, display_name, verified_at, otp_verified_at,
                        terms_accepted_at, terms_version, last_active_at, created_at, updated_at)
                SELECT '+4478' || lpad(CAST(:base + i AS text), 8, '0'), 'Soak',
                       now() - interval '250 days', now() - interval '250 days',
                       now() - interval '250 days', '2025-11-30', now() - interval '200 days',
                       now() - interval '250 days', now() - interval '200 days'
                  FROM generate_series(0, :count - 1) AS i
                RETURNING id)
            INSERT INTO whatsapp_handler.user_preferences (user_id) SELECT id FROM made
            """,
            base=base,
            count=count,
        )
        return count


def timer(stop: threading.Event, every: float, first: float, call: Callable[[], object]) -> None:
    delay = first
    while not stop.wait(delay):
        started = time.monotonic()
        call()
        delay = max(0.0, every - (time.monotonic() - started))


# --- the test -------------------------------------------------------------------------------


@pytest.fixture()
def stack(services: Services, pubsub: str, tmp_path: Path) -> Iterator[DevStack]:
    saved = dict(os.environ)
    os.environ.update(FUNCTION_ENVIRONMENT)
    console_log = (tmp_path / "console.log").open("w", encoding="utf-8")
    # `make dev`'s stack without its timers: the soak runs the jobs itself, counting answers.
    running = DevStack(
        DevOptions(dev_dir=tmp_path / "dev", free_ports=True, timers=False),
        console=Console(console_log),
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        console_log.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.timeout(TIMEOUT_SECONDS)
def test_a_steady_mixed_load_gives_no_5xx_flat_memory_and_every_event_published(
    stack: DevStack, services: Services
) -> None:
    described = load_stack(stack.dev_dir)
    assert described is not None
    for name in ("webhook", "user_api", "notify", "outbox_relay", "outbox_purge", "gdpr_cleanup"):
        assert name in stack.functions, f"{name} is not served: see {stack.logs_dir}"
    load = Load(
        target=chat.resolve_target(
            url=None,
            token=None,
            public_url=None,
            whatsapp_to=None,
            stack=described,
            environment=EnvironmentSettings(),
        ),
        urls={name: running.url for name, running in stack.functions.items()},
        database_url=str(described["database_url"]),
        project=str(described["google_cloud_project"]),
        notify_topic=str(described["notify_topic"]),
    )
    photo = stack.dev_dir / "ticket.png"
    photo.write_bytes(PNG)
    load.ticket_url, _ = chat.media_url_for(load.target, photo)
    rng = random.Random(12)
    stop = threading.Event()
    seeded = 0
    try:
        # Arrange: verified users to talk as (their requests count like the rest).
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: load.run("register", random.Random(i)), range(INITIAL_USERS)))
        assert len(load.pool.idle) == INITIAL_USERS, load.tally.anomalies[:5]

        # Act: the jobs on their timers, memory sampled, scenarios started at a steady rate.
        sampler = RssSampler(
            {name: running.process.pid for name, running in stack.functions.items()}
        )
        started = time.monotonic()

        def gdpr_run() -> None:
            nonlocal seeded
            seeded += load.seed_inactive_users(INACTIVE_USERS_PER_GDPR_RUN)
            load.job("gdpr_cleanup")

        jobs = [
            threading.Thread(target=sampler.run, args=(started, stop), daemon=True),
            threading.Thread(
                target=timer,
                args=(stop, RELAY_EVERY_SECONDS, 0.5, lambda: load.job("outbox_relay")),
                daemon=True,
            ),
            threading.Thread(
                target=timer, args=(stop, GDPR_EVERY_SECONDS, 1.0, gdpr_run), daemon=True
            ),
            threading.Thread(
                target=timer,
                args=(stop, PURGE_EVERY_SECONDS, 3.0, lambda: load.job("outbox_purge")),
                daemon=True,
            ),
        ]
        for thread in jobs:
            thread.start()
        kinds = [kind for kind, weight in MIX.items() for _ in range(weight)]
        with ThreadPoolExecutor(LOAD_THREADS) as workers:
            futures = []
            for index in range(int(SOAK_SECONDS * SCENARIOS_PER_SECOND)):
                due = started + index / SCENARIOS_PER_SECOND
                time.sleep(max(0.0, due - time.monotonic()))
                if index % len(kinds) == 0:
                    rng.shuffle(kinds)
                kind = kinds[index % len(kinds)]
                scenario_rng = random.Random(rng.random())

                def begin(
                    kind: str = kind, due: float = due, own: random.Random = scenario_rng
                ) -> None:
                    load.tally.lag_seconds.append(time.monotonic() - due)
                    load.run(kind, own)

                futures.append(workers.submit(begin))
            for future in futures:
                future.result()
        duration = time.monotonic() - started
        stop.set()
        for thread in jobs:
            thread.join(timeout=180)

        # The last scheduled runs: retention and a relay drain of everything left.
        gdpr_run()
        for future in load.publish_futures:
            future.result(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            summary = load.job("outbox_relay")
            if summary.get("remaining_backlog") == 0 and summary.get("published") == 0:
                break
        outbox = load.sql(
            "SELECT CAST(id AS TEXT) AS id, event_type, published_at, dead_lettered_at"
            " FROM whatsapp_handler.outbox_events"
        )
        received = wait_for_events(stack.events_path, {row["id"] for row in outbox}, 60)
        ledger = wait_for_ledger(load, 60)
        still_inactive = load.sql(
            "SELECT count(*) AS n FROM whatsapp_handler.users"
            " WHERE last_active_at < now() - interval '180 days' AND anonymized_at IS NULL"
        )[0]["n"]
        rss = sampler.verdicts(duration)

        report = summary_text(
            load, duration, rss, outbox, received, ledger, seeded, log_warnings(stack)
        )
        print(report)  # noqa: T201 - the soak's report, shown by make soak (-s)

        # Assert
        assert load.tally.server_errors() == {}, logs_tail(stack)
        assert load.tally.anomalies == [], load.tally.anomalies[:20]
        for name, (baseline, peak, _) in rss.items():
            assert peak <= baseline * (1 + RSS_GROWTH_LIMIT), (
                f"{name}: RSS rose from {baseline} KiB to {peak} KiB after the warm-up"
            )
        assert [row for row in outbox if row["published_at"] is None] == []
        assert [row for row in outbox if row["dead_lettered_at"] is not None] == []
        assert {row["id"] for row in outbox} <= received
        wanted = set(load.direct_notifications) | set(load.published_notifications)
        assert {k for k, v in ledger.items() if v in ("sent", "skipped")} == wanted, {
            k: v for k, v in ledger.items() if v not in ("sent", "skipped")
        }
        assert still_inactive == 0
    finally:
        stop.set()
        load.close()


def wait_for_events(path: Path, wanted: set[str], timeout: float) -> set[str]:
    """Distinct event ids the emulator sink has received (it may see a message twice)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        with contextlib.suppress(OSError):
            seen = {
                str(json.loads(line)["data"]["event_id"])
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            }
        if wanted <= seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def wait_for_ledger(load: Load, timeout: float) -> dict[str, str]:
    """notification id -> ledger status, once every request has a finished row."""
    wanted = set(load.direct_notifications) | set(load.published_notifications)
    deadline = time.monotonic() + timeout
    while True:
        rows = load.sql(
            "SELECT notification_id, status FROM whatsapp_handler.notification_deliveries"
            " WHERE notification_id LIKE :tag",
            tag=f"soak-{load.run_tag}-%",
        )
        ledger = {str(row["notification_id"]): str(row["status"]) for row in rows}
        finished = {k for k, v in ledger.items() if v != "claimed"}
        if wanted <= finished or time.monotonic() > deadline:
            return ledger
        time.sleep(0.5)


def log_warnings(stack: DevStack) -> dict[str, int]:
    """Per function, its JSON log lines at WARNING or above (Cloud Logging would alert)."""
    counts: dict[str, int] = {}
    for running in stack.functions.values():
        lines = running.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        counts[running.spec.target] = sum(
            1
            for line in lines
            if line.startswith("{")
            and re.search(r'"severity":\s*"(WARNING|ERROR|CRITICAL|ALERT|EMERGENCY)"', line)
        )
    return counts


def logs_tail(stack: DevStack) -> str:
    from tools.devstack import tail

    return "\n".join(
        f"--- {running.spec.target}\n{tail(running.log_path, 15)}"
        for running in stack.functions.values()
    )


def summary_text(
    load: Load,
    duration: float,
    rss: dict[str, tuple[int, int, int]],
    outbox: list[dict[str, Any]],
    received: set[str],
    ledger: dict[str, str],
    seeded: int,
    warnings: dict[str, int],
) -> str:
    tally = load.tally
    requests: Counter[str] = Counter()
    for (endpoint, _), n in tally.statuses.items():
        requests[endpoint] += n
    statuses = ", ".join(
        f"{endpoint} {code}: {n}" for (endpoint, code), n in sorted(tally.statuses.items())
    )
    lags = sorted(tally.lag_seconds) or [0.0]
    types = Counter(str(row["event_type"]) for row in outbox)
    lines = [
        "",
        f"soak: {duration:.0f} s, {SCENARIOS_PER_SECOND:g} scenarios/s, "
        f"{sum(requests.values())} requests ({sum(requests.values()) / duration:.1f}/s)",
        "scenarios: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.scenarios.items())),
        "requests: " + ", ".join(f"{k} {v}" for k, v in sorted(requests.items())),
        "statuses: " + statuses,
        f"start lag: p50 {lags[len(lags) // 2] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms",
        "jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.job_totals.items())),
        "RSS (MiB, process tree): "
        + "; ".join(
            f"{name} baseline {baseline / 1024:.1f} max {peak / 1024:.1f}"
            f" ({(peak / baseline - 1) * 100:+.1f} %), warm-up max {early / 1024:.1f}"
            for name, (baseline, peak, early) in sorted(rss.items())
        ),
        f"events: {len(outbox)} written, "
        f"{sum(1 for row in outbox if row['published_at'] is not None)} published, "
        f"{len({row['id'] for row in outbox} & received)} received on the emulator subscription"
        f" ({', '.join(f'{k} {v}' for k, v in sorted(types.items()))})",
        f"notifications: {len(load.direct_notifications)} pushed, "
        f"{len(load.published_notifications)} published to the topic; ledger "
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(ledger.values()).items())),
        f"users: {len(load.pool.known)} verified live, {len(load.pool.erased)} erased on request, "
        f"{seeded} inactive seeded for retention",
        "function log lines at WARNING or above: "
        + ", ".join(f"{name} {n}" for name, n in sorted(warnings.items())),
        f"anomalies: {len(tally.anomalies)}",
    ]
    return "\n".join(lines)
