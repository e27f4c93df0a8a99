"""Fixtures on real services: PostgreSQL, Redis, the Pub/Sub emulator, a Twilio stand-in.

- ``services`` (session): reuses the servers that answer and starts the ones that do not,
  makes a database for this run (migrated once, as a template), and puts the run's
  settings in the environment so every function's ``deps()`` builds against them.
- ``clean_state`` (function): empty tables, no Redis keys of this run, no recorded SMS.
- ``pubsub`` (session): the emulator; skipped with a reason where it is not installed,
  except under CI=true, where a missing emulator fails the run.
- ``fresh_database_url`` (function): a new empty database, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tools.devservices import admin_connection as _admin
from tools.devtwilio import TwilioStandIn
from tools.environment import FunctionEnvironment, LocalServices, scratch_database

ROOT = Path(__file__).resolve().parent.parent
TEST_ACCOUNT_SID = "AC" + "1" * 32
TEST_AUTH_TOKEN = "test-auth-token-" + "5f" * 8
TEST_OTP_PEPPER = "test-pepper-" + "a7" * 12
TEST_WEBHOOK_URL = "https://whatsapp-handler.example.test/webhook"
TEST_SMS_FROM = "+447700900999"
TEST_WHATSAPP_FROM = "whatsapp:+447700900998"
TEST_PROJECT = "railrepay-test"
TABLES = (
    "whatsapp_handler.handled_messages",
    "whatsapp_handler.notification_deliveries",
    "whatsapp_handler.outbox_events",
    "whatsapp_handler.user_preferences",
    "whatsapp_handler.users",
)


@dataclass
class Services:
    admin_url: str
    database_url: str
    template_database: str
    redis_url: str
    redis_prefix: str
    twilio: TwilioStandIn
    redis: redis.Redis


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    run_id = f"{os.getpid()}_{secrets.token_hex(3)}"
    template = f"wh_test_{run_id}_template"
    prefix = f"wh-test-{run_id}:"
    with LocalServices() as local:
        admin_url = local.shared_postgres()
        redis_url = local.shared_redis()
        twilio = local.twilio(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
        with scratch_database(admin_url, template) as template_url:
            from tools import migrate

            migrate.upgrade(template_url)
            with scratch_database(admin_url, f"wh_test_{run_id}", template=template) as url:
                environment = FunctionEnvironment(
                    database_url=url,
                    redis_url=redis_url,
                    redis_key_prefix=prefix,
                    twilio_account_sid=TEST_ACCOUNT_SID,
                    twilio_auth_token=TEST_AUTH_TOKEN,
                    twilio_api_base_url=twilio.base_url,
                    twilio_sms_from=TEST_SMS_FROM,
                    twilio_whatsapp_from=TEST_WHATSAPP_FROM,
                    webhook_public_url=TEST_WEBHOOK_URL,
                    otp_pepper=TEST_OTP_PEPPER,
                    google_cloud_project=TEST_PROJECT,
                    pubsub_topic=f"wh-events-{run_id}",
                    notify_topic=f"wh-notify-{run_id}",
                    relay_loop_seconds=0,
                    terms_version="2025-11-30",
                )
                client = redis.Redis.from_url(redis_url)
                try:
                    with environment.applied():
                        yield Services(
                            admin_url=admin_url,
                            database_url=url,
                            template_database=template,
                            redis_url=redis_url,
                            redis_prefix=prefix,
                            twilio=twilio,
                            redis=client,
                        )
                finally:
                    _delete_prefixed_keys(client, prefix)
                    client.close()
                    _close_cached_dependencies()  # their pools hold the database open


def _close_cached_dependencies() -> None:
    """Close pools the functions built, so the test databases can be dropped."""
    import sys

    for module in list(sys.modules.values()):
        deps = getattr(module, "deps", None)
        cache_clear = getattr(deps, "cache_clear", None)
        if deps is None or cache_clear is None:
            continue
        info = deps.cache_info()
        if info.currsize:
            try:
                built = deps()
                close = getattr(built, "close", None)
                if close is not None:
                    close()
            except Exception:  # noqa: S110 - best effort at teardown
                pass
        cache_clear()


def _delete_prefixed_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


@pytest.fixture()
def clean_state(services: Services) -> Iterator[Services]:
    """Every test that writes starts from empty tables, no Redis keys and no SMS."""
    _truncate(services.database_url)
    _delete_prefixed_keys(services.redis, services.redis_prefix)
    services.twilio.reset()
    yield services


def _truncate(database_url: str) -> None:
    connection = _admin(database_url)
    try:
        connection.run(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    finally:
        connection.close()


@pytest.fixture()
def db(clean_state: Services) -> Iterator[Any]:
    """Our own data-access layer on the run's database, for arranging and asserting."""
    from shared.db import Database
    from shared.settings import load_settings

    database = Database(load_settings())
    yield database
    database.close()


@pytest.fixture()
def sql(clean_state: Services) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """Run literal SQL against the run's database (autocommit), rows as dicts."""
    connection = _admin(clean_state.database_url)

    def run(statement: str, **params: Any) -> list[dict[str, Any]]:
        rows = connection.run(statement, **params)
        if not connection.columns:
            return []
        names = [column["name"] for column in connection.columns]
        return [dict(zip(names, row, strict=True)) for row in rows or []]

    yield run
    connection.close()


@pytest.fixture()
def fresh_database_url(services: Services) -> Iterator[str]:
    with scratch_database(services.admin_url, f"wh_fresh_{secrets.token_hex(4)}") as url:
        yield url


@pytest.fixture(scope="session")
def pubsub(services: Services) -> Iterator[str]:
    """The emulator's host:port, with PUBSUB_EMULATOR_HOST set for the clients."""
    with LocalServices() as local:
        host_port, why = local.shared_pubsub()
        if host_port is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI must run the Pub/Sub tests, but {why}")
            pytest.skip(why)
        saved = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = host_port
        try:
            yield host_port
        finally:
            if saved is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = saved


def sign(url: str, params: dict[str, str], token: str = TEST_AUTH_TOKEN) -> str:
    """X-Twilio-Signature exactly as Twilio computes it."""
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(token).compute_signature(url, params))
