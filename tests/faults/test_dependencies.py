"""Dependencies failing under the webhook: Redis unreachable, PostgreSQL connections killed
mid-load. Every answer is a defined one (200 TwiML, or 503 JSON so Twilio retries), never
a 500 or a stack trace, and no half-written user is left behind."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from tests.conftest import Services
from tests.webhook.conftest import Bot, Clock, Webhook, twiml_messages
from tools.devservices import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def redis_down_bot(clean_state: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    """A separately built webhook app (create_app loads a fresh module, so a fresh
    lru_cached deps()) whose REDIS_URL points at a port nothing listens on."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="webhook", source=str(ROOT / "functions/webhook/main.py")
    )
    module = sys.modules["main"]
    current = module.deps()  # settings read now, with the dead port
    yield Bot(webhook=Webhook(app=app, module=module), services=clean_state, clock=Clock())
    current.close()


def assert_defined(response: Any) -> None:
    """200 TwiML or 503 JSON; never a 500 nor a traceback."""
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 503), body
    assert "Traceback" not in body
    if response.status_code == 503:
        assert response.is_json and "error" in response.get_json()
    else:
        twiml_messages(response)


def test_redis_unreachable_answers_503_and_writes_nothing(redis_down_bot: Bot, sql: Any) -> None:
    for text in ("hi", "YES", "123456", "HELP"):
        response = redis_down_bot.send(text)
        assert response.status_code == 503, response.get_data(as_text=True)
        assert "error" in response.get_json()
    health = redis_down_bot.client.get("/health")
    assert health.status_code == 503
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]
    assert redis_down_bot.services.twilio.messages == []


def test_postgres_connections_killed_under_load_give_defined_answers_and_recover(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    phones = [f"+4477009{index:05d}" for index in range(24)]
    for phone in phones:
        bot.say("hi", phone=phone)
    responses: list[Any] = []
    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        while not stop.is_set():
            rows = sql(
                "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
                " WHERE application_name = 'whatsapp-handler'"
                " AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            killed.extend(1 for row in rows if row["done"])
            time.sleep(0.005)

    def sender(chunk: list[str]) -> None:
        for phone in chunk:
            for _ in range(3):  # Twilio would retry a 503: a new delivery each time here
                response = bot.send("YES", phone=phone)
                responses.append(response)
                if response.status_code == 200:
                    break

    killing = threading.Thread(target=killer)
    killing.start()
    senders = [threading.Thread(target=sender, args=(phones[i::4],)) for i in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    stop.set()
    killing.join()

    assert killed, "no connection was killed: the test proved nothing"
    for response in responses:
        assert_defined(response)
    users = sql("SELECT id::text AS id FROM whatsapp_handler.users")
    registered = {row["aggregate_id"] for row in outbox() if row["event_type"] == "user.registered"}
    assert {row["id"] for row in users} <= {str(a) for a in registered}  # no orphan user
    assert len(registered) == len(users)

    # Afterwards, without a restart, every number gets through.
    for phone in phones:
        response = bot.send("YES", phone=phone)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": len(phones)}]
