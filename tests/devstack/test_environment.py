"""tools/environment.py: the one builder of the functions' services and variables that
the tests, the bench and `make dev` share."""

from __future__ import annotations

import os
import secrets
from dataclasses import fields

import pytest

from shared.settings import Settings
from tests.conftest import Services, _admin
from tools.devservices import port_answers
from tools.environment import DISPLACED, FunctionEnvironment, LocalServices, scratch_database


def environment(**changes: object) -> FunctionEnvironment:
    values: dict[str, object] = {
        "database_url": "postgresql://postgres@127.0.0.1:5432/wh",
        "redis_url": "redis://127.0.0.1:6379/0",
        "twilio_account_sid": "AC" + "3" * 32,
        "twilio_auth_token": "token-" + "4e" * 8,
        "twilio_api_base_url": "http://127.0.0.1:9/",
        "twilio_sms_from": "+447700900999",
        "twilio_whatsapp_from": "whatsapp:+447700900998",
        "webhook_public_url": "https://wh.example.test/webhook",
        "otp_pepper": "pepper-" + "5d" * 12,
        "google_cloud_project": "railrepay-test",
        "pubsub_topic": "events",
        "notify_topic": "notify",
        "relay_loop_seconds": 0,
    }
    return FunctionEnvironment(**{**values, **changes})  # type: ignore[arg-type]


def test_every_variable_is_a_setting_of_that_name_and_reads_back_as_given() -> None:
    built = environment(redis_key_prefix="p:", gdpr_max_run_seconds=180, log_level="WARNING")
    names = {item.name for item in fields(FunctionEnvironment)} - {"process", "unset"}

    assert names <= set(Settings.__struct_fields__)
    settings = Settings.from_env(built.variables())
    assert settings.redis_key_prefix == "p:"
    assert settings.gdpr_max_run_seconds == 180
    assert settings.relay_loop_seconds == 0
    assert settings.webhook_public_url == "https://wh.example.test/webhook"


def test_unset_fields_are_left_alone_and_whole_numbers_are_written_whole() -> None:
    variables = environment(relay_loop_seconds=10.0, process={"PYTHONUNBUFFERED": "1"}).variables()

    assert variables["RELAY_LOOP_SECONDS"] == "10"
    assert variables["PYTHONUNBUFFERED"] == "1"
    assert "PUBSUB_EMULATOR_HOST" not in variables
    assert "REDIS_KEY_PREFIX" not in variables


def test_a_child_inherits_the_rest_but_nothing_that_would_bypass_the_standin() -> None:
    inherited = {"PATH": "/usr/bin", "TWILIO_EDGE": "dublin", "PUBSUB_EMULATOR_HOST": "gone:1"}
    built = environment(unset=("PUBSUB_EMULATOR_HOST",))

    child = built.for_subprocess(inherited)

    assert child["PATH"] == "/usr/bin"
    assert not {"TWILIO_EDGE", "PUBSUB_EMULATOR_HOST"} & child.keys()
    assert child["TWILIO_API_BASE_URL"] == "http://127.0.0.1:9/"


def test_applied_puts_every_variable_back_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("REDIS_URL", "redis://before:6379/0")
    monkeypatch.delenv("WEBHOOK_PUBLIC_URL", raising=False)
    before = dict(os.environ)

    with environment().applied():
        assert "TWILIO_REGION" not in os.environ
        assert set(DISPLACED).isdisjoint(os.environ)
        assert os.environ["REDIS_URL"] == "redis://127.0.0.1:6379/0"
        assert os.environ["WEBHOOK_PUBLIC_URL"] == "https://wh.example.test/webhook"

    assert dict(os.environ) == before


def test_closing_stops_what_was_started_and_only_that() -> None:
    with LocalServices() as local:
        redis_url = local.shared_redis()
        standin = local.twilio("AC" + "6" * 32, "token")
        port = int(standin.base_url.rsplit(":", 1)[1])
        started = list(local.started)
        assert port_answers("127.0.0.1", port)

    assert not port_answers("127.0.0.1", port)
    assert all(server.process.poll() is not None for server in started)
    if not started:  # reused: still there for everyone else
        host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
        host, _, number = host_port.rpartition(":")
        assert port_answers(host, int(number))


def test_a_scratch_database_is_made_from_its_template_and_dropped(services: Services) -> None:
    scratch_name = f"wh_scratch_{secrets.token_hex(4)}"
    listed = "SELECT count(*) FROM pg_database WHERE datname = :name"
    admin = _admin(services.admin_url)
    try:
        with scratch_database(
            services.admin_url, scratch_name, template=services.template_database
        ) as url:
            assert url.endswith(f"/{scratch_name}")
            copy = _admin(url)
            tables = copy.run(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = 'whatsapp_handler'"
            )
            copy.close()
            assert tables[0][0] > 0
            assert admin.run(listed, name=scratch_name) == [[1]]
        assert admin.run(listed, name=scratch_name) == [[0]]
    finally:
        admin.close()
