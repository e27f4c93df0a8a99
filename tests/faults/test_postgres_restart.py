"""A real PostgreSQL server restart under webhook load: not killed backends, but a server
that refuses every connection for about two seconds and then comes back on the same port.

The server is a dedicated, throwaway one (pgserver's binaries, as tools/devservices.py
starts them), never the shared server the other tests use. While it is down every answer
is a defined one (200 TwiML or 503 JSON so Twilio retries), never a 500; no user is left
without its ``user.registered`` event; and once it is back every number is served again
by the same app, without a restart (the pool replaces its dead connections)."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from tests.conftest import Services
from tests.faults.test_dependencies import assert_defined
from tests.webhook.conftest import Bot, Clock, Webhook
from tools.devservices import Started, admin_connection, start_embedded_postgres, url_with_database

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = [f"+4477009{index:05d}" for index in range(40, 80)]  # 40 numbers
THREADS = 4
DOWN_SECONDS = 2.0


@dataclass
class DedicatedPostgres:
    url: str  # the migrated database
    port: int
    data_dir: Path
    started: list[Started]

    def stop(self) -> None:
        """PostgreSQL's fast shutdown (SIGINT to the postmaster, what `pg_ctl stop -m fast`
        sends): open transactions are rolled back, every client is disconnected."""
        self.started[-1].stop()

    def start(self) -> None:
        """The same data folder and port again (no initdb: the cluster is kept)."""
        _, again = start_embedded_postgres(port=self.port, data_dir=self.data_dir)
        self.started.append(again)

    def rows(self, statement: str) -> list[dict[str, Any]]:
        connection = admin_connection(self.url)
        try:
            found = connection.run(statement)
            names = [column["name"] for column in connection.columns]
            return [dict(zip(names, row, strict=True)) for row in found]
        finally:
            connection.close()


@pytest.fixture()
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    try:
        admin_url, started = start_embedded_postgres()
    except RuntimeError as error:  # pgserver not installed
        pytest.skip(f"no embedded PostgreSQL to restart: {error}")
    assert started.data_dir is not None
    # Stopping must keep the cluster for the restart: the folder is removed at the end.
    owned_dirs, started.cleanup_dirs = started.cleanup_dirs, []
    port = int(admin_url.rsplit(":", 1)[1].split("/", 1)[0])
    servers = DedicatedPostgres(
        url=url_with_database(admin_url, "restart_test"),
        port=port,
        data_dir=started.data_dir,
        started=[started],
    )
    try:
        admin = admin_connection(admin_url)
        admin.run('CREATE DATABASE "restart_test"')
        admin.close()
        from tools import migrate

        migrate.upgrade(servers.url)
        yield servers
    finally:
        for server in reversed(servers.started):
            server.stop()
        for directory in owned_dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture()
def restart_bot(
    dedicated_postgres: DedicatedPostgres, clean_state: Services, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Bot]:
    """A webhook app of its own (a fresh module, so a fresh deps()) on the dedicated
    server; Redis and the Twilio stand-in are the run's."""
    monkeypatch.setenv("DATABASE_URL", dedicated_postgres.url)
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="webhook", source=str(ROOT / "functions/webhook/main.py")
    )
    module = sys.modules["main"]
    current = module.deps()
    yield Bot(webhook=Webhook(app=app, module=module), services=clean_state, clock=Clock())
    current.close()


def test_a_postgres_restart_under_load_gives_defined_answers_and_the_pool_recovers(
    restart_bot: Bot, dedicated_postgres: DedicatedPostgres
) -> None:
    bot = restart_bot
    responses: list[Any] = []
    lock = threading.Lock()
    stop = threading.Event()
    registered: set[str] = set()

    def sender(numbers: list[str]) -> None:
        # hi, then YES until it is answered (a 503 is retried, as Twilio does), then HELP.
        script = dict.fromkeys(numbers, 0)
        while not stop.is_set():
            for phone in numbers:
                step = script[phone]
                text = ("hi", "YES", "HELP")[min(step, 2)]
                response = bot.send(text, phone=phone)
                with lock:
                    responses.append(response)
                if response.status_code == 200:
                    script[phone] = step + 1
                    if text == "YES":
                        registered.add(phone)
                time.sleep(0.03)
                if stop.is_set():
                    return

    threads = [
        threading.Thread(target=sender, args=(NUMBERS[index::THREADS],)) for index in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)  # load on a healthy server first
        before_stop = len(responses)
        dedicated_postgres.stop()
        time.sleep(DOWN_SECONDS)
        during_down = responses[before_stop:]
        dedicated_postgres.start()
        time.sleep(1.5)  # load on the restarted server
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert before_stop > 0, "no load before the stop"
    assert any(r.status_code == 503 for r in during_down), (
        "no 503 while the server was down: the restart was not under load"
    )
    for response in responses:
        assert_defined(response)

    # After the restart, without rebuilding the app, every number is served within seconds.
    deadline = time.monotonic() + 5
    for phone in NUMBERS:
        while True:
            response = bot.send("HELP", phone=phone)
            assert_defined(response)
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status_code == 200, f"not recovered: {response.get_data(as_text=True)}"

    users = dedicated_postgres.rows("SELECT id::text AS id FROM whatsapp_handler.users")
    registrations = dedicated_postgres.rows(
        "SELECT aggregate_id::text AS id FROM whatsapp_handler.outbox_events"
        " WHERE event_type = 'user.registered'"
    )
    user_ids = {row["id"] for row in users}
    registered_ids = [row["id"] for row in registrations]
    assert user_ids, "nobody registered: the load did not reach the database"
    assert set(registered_ids) == user_ids, "a user without its event, or an orphan event"
    assert len(registered_ids) == len(set(registered_ids)), "a user registered twice"
    orphans = dedicated_postgres.rows(
        "SELECT e.id FROM whatsapp_handler.outbox_events e"
        " WHERE e.aggregate_type = 'user' AND NOT EXISTS"
        " (SELECT 1 FROM whatsapp_handler.users u WHERE u.id = e.aggregate_id)"
    )
    assert orphans == [], "an outbox event for a user that was never committed"
