"""One typed settings object, read from the environment. Nothing else reads os.environ.

Every field maps to the upper-case environment variable of the same name (contract
section 4). Secrets are ``SecretStr`` so they never appear in a repr or a log line.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "changethis", "secret", "xxx", "todo"})


class SettingsError(RuntimeError):
    """A required setting is missing or malformed; the message is one line naming it."""


PositiveInt = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)

    # --- database ---------------------------------------------------------------
    database_url: str | None = None
    cloud_sql_instance: str | None = None
    db_user: str | None = None
    db_name: str | None = None
    db_pool_size: PositiveInt = 5
    db_connect_timeout_seconds: PositiveInt = 5
    # Bounds each statement so a stuck query cannot hold a webhook past Twilio's 15 s.
    db_statement_timeout_ms: PositiveInt = 5_000

    # --- redis ------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "wh:"
    conversation_ttl_seconds: PositiveInt = 24 * 3600

    # --- twilio -----------------------------------------------------------------
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_public_url: str | None = None
    # Optional: where Twilio should report delivery status of the messages we send.
    status_callback_url: str | None = None

    # --- conversation / OTP -----------------------------------------------------
    otp_pepper: SecretStr | None = None
    otp_ttl_seconds: PositiveInt = 300
    otp_max_attempts: PositiveInt = 3
    terms_version: str = Field(default="2025-11-30", max_length=20)
    terms_url: str = "https://railrepay.co.uk/terms"
    claim_window_days: PositiveInt = 28

    # --- rate limits (RAILREPAY-800) --------------------------------------------
    rate_limit_inbound_per_minute: PositiveInt = 20
    rate_limit_otp_per_hour: PositiveInt = 5
    rate_limit_otp_global_per_hour: PositiveInt = 1_000
    max_request_bytes: PositiveInt = 64 * 1024
    # A MessageSid seen within this long is a Twilio retry and changes nothing.
    message_dedupe_ttl_seconds: PositiveInt = 24 * 3600

    # --- events -----------------------------------------------------------------
    google_cloud_project: str = "railrepay-local"
    pubsub_topic: str = "whatsapp-handler-events"
    notify_topic: str = "whatsapp-handler-notifications"
    pubsub_emulator_host: str | None = None
    relay_loop_seconds: float = Field(default=50.0, ge=0)
    relay_poll_interval_seconds: float = Field(default=1.0, gt=0)
    relay_batch_size: PositiveInt = 100
    relay_publish_timeout_seconds: float = Field(default=10.0, gt=0)
    relay_max_attempts: PositiveInt = 10
    # Failed publish n waits between half and all of min(max, base * 2**(n-1)) seconds.
    relay_backoff_base_seconds: float = Field(default=1.0, gt=0)
    relay_backoff_max_seconds: float = Field(default=300.0, gt=0)
    outbox_retention_days: PositiveInt = 7
    outbox_purge_batch_size: PositiveInt = 5_000

    # --- GDPR (RAILREPAY-701) ---------------------------------------------------
    gdpr_inactivity_days: PositiveInt = 180
    gdpr_batch_size: PositiveInt = 500
    # One run stops starting new batches after this long (the next run carries on).
    gdpr_max_run_seconds: PositiveInt = 300

    # --- notifications ----------------------------------------------------------
    whatsapp_session_window_hours: PositiveInt = 24
    # A notification 'claimed' longer than this belongs to a dead attempt and is retried.
    notification_claim_lease_seconds: PositiveInt = 120

    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must look like postgresql://user:pass@host:port/db")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must look like redis://host:port/db")
        return value

    @field_validator("twilio_auth_token", "otp_pepper")
    @classmethod
    def _refuse_placeholder_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder, set a real secret")
        return value

    @model_validator(mode="after")
    def _database_is_configured(self) -> Settings:
        if self.database_url is None and not (
            self.cloud_sql_instance and self.db_user and self.db_name
        ):
            raise ValueError(
                "DATABASE_URL is required (or CLOUD_SQL_INSTANCE, DB_USER and DB_NAME)"
            )
        return self

    def require(self, *names: str) -> Settings:
        """Fail with one line naming the first of ``names`` that is unset."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise SettingsError(f"{name.upper()} is required but not set")
        return self


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "settings"
    message = first["msg"].removeprefix("Value error, ")
    if location == "settings":
        return message
    return f"{location.upper()} {message}"


def load_settings(*required: str) -> Settings:
    """Read the environment; raise SettingsError with one line naming a bad variable."""
    try:
        settings = Settings()
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None
    return settings.require(*required)


@lru_cache(maxsize=1)
def cached_settings() -> Settings:
    return load_settings()
