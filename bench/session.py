"""One bench run's world: its database, the functions' environment, and what it serves.

``bench_run()`` gets PostgreSQL, Redis, the Pub/Sub emulator and the Twilio stand-in from
``tools.environment`` (reusing what answers), makes the run's own database
``wh_bench_<random>`` (migrated; seeded on first ``seeded()``) and a login role for the
GDPR job (so its transactions can be watched), and removes them all at the end. Figure
modules ask it for a function's server: each is started once and kept until
``stop_servers`` (the cold starts want a quiet machine) or the end of the run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit, urlunsplit

from redis import Redis

from bench.seed import INACTIVE_USERS, PUBLISHED, UNPUBLISHED, USERS, seed
from bench.serving import ACCOUNT_SID, AUTH_TOKEN, FUNCTIONS, PUBLIC_URL, ROOT, Served, serve
from tools import migrate
from tools.devservices import admin_connection
from tools.devtwilio import TwilioStandIn
from tools.environment import FunctionEnvironment, LocalServices, scratch_database

# The GDPR job's time budget here (GDPR_MAX_RUN_SECONDS): the job must finish in 60 s;
# three times that lets a slow job finish and still keeps `make bench` under 10 minutes.
# Past it the job stops and the figure is its rate extrapolated (and a FAIL).
GDPR_BUDGET_SECONDS = 180
RELAY_LOOP_SECONDS = 10


@dataclass
class BenchRun:
    name: str  # the database; also the Redis prefix and the topics
    url: str
    role: str  # the GDPR job's login
    env: dict[str, str]  # a served function's whole environment
    twilio: TwilioStandIn
    redis: Redis
    emulator: str | None
    why_no_emulator: str
    workdir: Path
    _seeded: bool = False
    _servers: dict[str, Served] = field(default_factory=dict)
    _serving: ExitStack = field(default_factory=ExitStack)

    @property
    def redis_prefix(self) -> str:
        return f"{self.name}:"

    def seeded(self) -> None:
        """The 1M users and the outbox rows, written once, on first need."""
        if self._seeded:
            return
        print(
            f"seeding {self.name}: {USERS:,} users ({INACTIVE_USERS:,} inactive), "
            f"{PUBLISHED:,} + {UNPUBLISHED:,} outbox rows ...",
            flush=True,
        )
        print(f"seeded in {seed(self.url):.1f} s", flush=True)
        self._seeded = True

    def server(self, function: str) -> Served:
        """``function`` (a key of serving.FUNCTIONS) served, started on first need."""
        if function not in self._servers:
            env = self.env
            if function == "gdpr_cleanup":
                env = {**env, "DATABASE_URL": _with_user(self.url, self.role)}
            self._servers[function] = self._serving.enter_context(serve(FUNCTIONS[function], env))
        return self._servers[function]

    def serving(self, function: str) -> bool:
        return function in self._servers

    def stop_servers(self) -> None:
        self._serving.close()
        self._servers.clear()


def _with_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def bench_run() -> Iterator[BenchRun]:
    name = f"wh_bench_{secrets.token_hex(4)}"
    role = f"{name}_gdpr"
    with LocalServices() as local:
        admin_url = local.shared_postgres()
        redis_url = local.shared_redis()
        emulator, why_no_emulator = local.shared_pubsub()
        twilio = local.twilio(ACCOUNT_SID, AUTH_TOKEN)
        with _login_role(admin_url, role), scratch_database(admin_url, name) as url:
            migrate.upgrade(url)
            env = FunctionEnvironment(
                database_url=url,
                redis_url=redis_url,
                redis_key_prefix=f"{name}:",
                twilio_account_sid=ACCOUNT_SID,
                twilio_auth_token=AUTH_TOKEN,
                twilio_api_base_url=twilio.base_url,
                twilio_sms_from="+447700900999",
                twilio_whatsapp_from="whatsapp:+447700900998",
                webhook_public_url=PUBLIC_URL,
                otp_pepper=secrets.token_hex(16),
                google_cloud_project="railrepay-bench",
                pubsub_topic=f"{name}-events",
                notify_topic=f"{name}-notify",
                terms_version="2025-11-30",
                log_level="WARNING",
                gdpr_max_run_seconds=GDPR_BUDGET_SECONDS,
                relay_loop_seconds=RELAY_LOOP_SECONDS,
                pubsub_emulator_host=emulator,
                process={"PYTHONPATH": str(ROOT)},
            ).for_subprocess()
            redis = Redis.from_url(redis_url)
            with TemporaryDirectory() as workdir:
                run = BenchRun(
                    name, url, role, env, twilio, redis, emulator, why_no_emulator, Path(workdir)
                )
                try:
                    yield run
                finally:
                    run.stop_servers()
                    with suppress(Exception):
                        for key in redis.scan_iter(match=f"{name}:*", count=1000):
                            redis.delete(key)
                    redis.close()


@contextmanager
def _login_role(admin_url: str, role: str) -> Iterator[None]:
    """A superuser login of its own: the GDPR job's transactions are found by it."""
    admin = admin_connection(admin_url)
    try:
        admin.run(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        try:
            yield
        finally:
            admin.run(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        admin.close()
