"""Settings: one line naming a bad variable, secrets never in a repr."""

from __future__ import annotations

import msgspec
import pytest

from shared.settings import Settings, SettingsError, load_settings

BASE = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"}


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for field in Settings.field_names():  # the test run's own environment stays out
        monkeypatch.delenv(field.upper(), raising=False)
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_defaults_are_the_documented_ones(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.pubsub_topic == "whatsapp-handler-events"
    assert settings.rate_limit_otp_per_hour == 5
    assert settings.rate_limit_inbound_per_minute == 20
    assert settings.otp_ttl_seconds == 300
    assert settings.gdpr_inactivity_days == 180
    assert settings.outbox_retention_days == 7
    assert settings.twilio_api_base_url == "https://api.twilio.com"


def test_missing_database_names_the_variable(env: pytest.MonkeyPatch) -> None:
    env.delenv("DATABASE_URL")
    with pytest.raises(SettingsError, match=r"^DATABASE_URL is required"):
        load_settings()


def test_cloud_sql_triple_replaces_database_url(env: pytest.MonkeyPatch) -> None:
    env.delenv("DATABASE_URL")
    env.setenv("CLOUD_SQL_INSTANCE", "p:europe-west2:db")
    env.setenv("DB_USER", "svc@p.iam")
    env.setenv("DB_NAME", "railrepay")
    assert load_settings().cloud_sql_instance == "p:europe-west2:db"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL must look like postgresql://"),
        ("REDIS_URL", "http://x", "REDIS_URL must look like redis://"),
        ("RELAY_LOOP_SECONDS", "soon", "RELAY_LOOP_SECONDS"),
        ("OTP_PEPPER", "changeme", "OTP_PEPPER is a placeholder"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_required_setting_is_named(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"^TWILIO_AUTH_TOKEN is required but not set$"):
        load_settings("twilio_auth_token")


def test_secrets_never_appear_in_repr(env: pytest.MonkeyPatch) -> None:
    env.setenv("TWILIO_AUTH_TOKEN", "very-secret-token-123")
    env.setenv("OTP_PEPPER", "very-secret-pepper-456")
    settings = Settings.from_env()
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(msgspec.structs.asdict(settings))
    assert settings.otp_pepper is not None
    assert settings.otp_pepper.get_secret_value() == "very-secret-pepper-456"
