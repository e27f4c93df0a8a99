"""One typed settings object, read from the environment. Nothing else reads os.environ.

Every field maps to the upper-case environment variable of the same name (contract
section 4). Secrets are ``Secret`` so they never appear in a repr or a log line.

msgspec rather than pydantic-settings: settings are read on every cold start, and
pydantic plus pydantic-settings cost ~100 ms of import there against ~5 ms (D39).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

import msgspec
from msgspec import Meta

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "changethis", "secret", "xxx", "todo"})


class SettingsError(RuntimeError):
    """A required setting is missing or malformed; the message is one line naming it."""


class Secret:
    """A secret value: shown as stars in any repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


PositiveInt = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Off in the local tools' EnvironmentSettings, which decide about a database themselves.
    requires_database: ClassVar[bool] = True

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
    # How long Redis keeps a conversation state after its last message (the design's 24 h).
    conversation_ttl_seconds: PositiveInt = 24 * 3600
    # How long the marker "a claim was in progress" (no personal data) outlives the last
    # message of an unfinished claim, so the next message can say it was dropped (D106).
    claim_marker_ttl_seconds: PositiveInt = 72 * 3600

    # --- twilio -----------------------------------------------------------------
    twilio_account_sid: str | None = None
    twilio_auth_token: Secret | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_timeout_seconds: PositiveFloat = 5.0
    webhook_public_url: str | None = None
    # Optional: where Twilio should report delivery status of the messages we send.
    status_callback_url: str | None = None

    # --- conversation / OTP -----------------------------------------------------
    otp_pepper: Secret | None = None
    otp_ttl_seconds: PositiveInt = 300
    otp_max_attempts: PositiveInt = 3
    terms_version: Annotated[str, Meta(max_length=20)] = "2025-11-30"
    terms_url: str = "https://railrepay.co.uk/terms"
    claim_window_days: PositiveInt = 28
    # Silence after which an unfinished claim is dropped (issue 20).
    conversation_idle_seconds: PositiveInt = 24 * 3600
    # Where a passenger who is stuck (codes refused) is told to write.
    support_email: str = "support@railrepay.co.uk"

    # --- rate limits (RAILREPAY-800) --------------------------------------------
    rate_limit_inbound_per_minute: PositiveInt = 20
    rate_limit_otp_per_hour: PositiveInt = 5
    rate_limit_otp_global_per_hour: PositiveInt = 1_000
    max_request_bytes: PositiveInt = 64 * 1024
    # A MessageSid seen within this long is a Twilio retry and changes nothing.
    message_dedupe_ttl_seconds: PositiveInt = 24 * 3600
    # ... and a MessageSid that changed state is kept this long in PostgreSQL (the durable
    # replay record, purged daily): a replay within it never acts again.
    handled_message_retention_days: PositiveInt = 30

    # --- events -----------------------------------------------------------------
    google_cloud_project: str = "railrepay-local"
    pubsub_topic: str = "whatsapp-handler-events"
    notify_topic: str = "whatsapp-handler-notifications"
    pubsub_emulator_host: str | None = None
    relay_loop_seconds: NonNegativeFloat = 50.0
    relay_poll_interval_seconds: PositiveFloat = 1.0
    relay_batch_size: PositiveInt = 100
    relay_publish_timeout_seconds: PositiveFloat = 10.0
    relay_max_attempts: PositiveInt = 10
    # Failed publish n waits between half and all of min(max, base * 2**(n-1)) seconds.
    relay_backoff_base_seconds: PositiveFloat = 1.0
    relay_backoff_max_seconds: PositiveFloat = 300.0
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
    # Ledger rows only guard against redeliveries (Pub/Sub keeps a message at most 7 days).
    notification_ledger_retention_days: PositiveInt = 35

    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise SettingsError("DATABASE_URL must look like postgresql://user:pass@host:port/db")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("REDIS_URL must look like redis://host:port/db")
        for name in ("twilio_auth_token", "otp_pepper"):
            secret = getattr(self, name)
            if secret is not None and secret.get_secret_value().strip().lower() in (
                PLACEHOLDER_SECRETS
            ):
                raise SettingsError(f"{name.upper()} is a placeholder, set a real secret")
        if (
            self.requires_database
            and self.database_url is None
            and not (self.cloud_sql_instance and self.db_user and self.db_name)
        ):
            raise SettingsError(
                "DATABASE_URL is required (or CLOUD_SQL_INSTANCE, DB_USER and DB_NAME)"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return cls.__struct_fields__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The variables of ``environ`` (default: the process's) that name a field."""
        source = os.environ if environ is None else environ
        present = {key.lower(): value for key, value in source.items()}
        values = {name: present[name] for name in cls.__struct_fields__ if name in present}
        try:
            return msgspec.convert(values, cls, strict=False, dec_hook=_decode)
        except msgspec.ValidationError as error:
            raise SettingsError(_one_line(error)) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (checked like the original)."""
        return msgspec.structs.replace(self, **changes)

    def require(self, *names: str) -> Settings:
        """Fail with one line naming the first of ``names`` that is unset."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise SettingsError(f"{name.upper()} is required but not set")
        return self


def is_set_in_environment(name: str) -> bool:
    """Whether the variable for field ``name`` is set (not just defaulted)."""
    return name.upper() in os.environ or name.lower() in os.environ


def _decode(kind: type, value: Any) -> Any:
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError


def _one_line(error: msgspec.ValidationError) -> str:
    """ "Expected `int` >= 1 - at `$.db_pool_size`" -> "DB_POOL_SIZE: expected `int` >= 1"."""
    message, _, where = str(error).partition(" - at `$.")
    name = where.rstrip("`").split(".")[0].split("[")[0]
    message = message.splitlines()[0]
    if not name:
        return message
    return f"{name.upper()}: {message[:1].lower()}{message[1:]}"


def load_settings(*required: str) -> Settings:
    """Read the environment; raise SettingsError with one line naming a bad variable."""
    settings = Settings.from_env()
    return settings.require(*required)
