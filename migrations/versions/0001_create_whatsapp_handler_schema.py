"""RFC-001: schema whatsapp_handler with users, user_preferences and outbox_events.

Plain SQL, one statement per op.execute (pg8000 prepares each statement, and a prepared
statement holds one command). Decisions that depart from the RFC text are in
docs/decisions.md (D1-D9).

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UP = [
    "CREATE SCHEMA IF NOT EXISTS whatsapp_handler",
    # gen_random_uuid() is built in since PostgreSQL 13: no uuid-ossp extension needed (D8).
    """
    CREATE TABLE whatsapp_handler.users (
        id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        -- E.164, or the anonymised marker ANON-<15 hex> that fits VARCHAR(20) (D3, D5).
        phone_number      VARCHAR(20) NOT NULL,
        display_name      VARCHAR(100),
        -- keyed hash (HMAC-SHA256 hex) of the current OTP, never the code (D6).
        otp_secret        VARCHAR(64),
        otp_expires_at    TIMESTAMPTZ,
        otp_attempts      SMALLINT NOT NULL DEFAULT 0,
        -- verified_at: first verification of the number; otp_verified_at: latest OTP success (D1).
        verified_at       TIMESTAMPTZ,
        otp_verified_at   TIMESTAMPTZ,
        terms_accepted_at TIMESTAMPTZ,
        terms_version     VARCHAR(20),
        last_active_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        blocked_at        TIMESTAMPTZ,
        block_reason      TEXT,
        -- set once by erasure; a user anonymised once is never selected again (D4).
        anonymized_at     TIMESTAMPTZ,
        created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT users_phone_number_format CHECK (
            phone_number ~ '^\\+[1-9][0-9]{1,14}$' OR phone_number ~ '^ANON-[0-9a-f]{15}$'
        ),
        CONSTRAINT users_otp_attempts_non_negative CHECK (otp_attempts >= 0),
        CONSTRAINT users_block_reason_with_blocked_at CHECK (
            block_reason IS NULL OR blocked_at IS NOT NULL
        )
    )
    """,
    # One index both enforces one account per number and serves the lookup (D2).
    "CREATE UNIQUE INDEX idx_users_phone ON whatsapp_handler.users (phone_number)",
    """
    CREATE INDEX idx_users_verified ON whatsapp_handler.users (verified_at)
     WHERE verified_at IS NOT NULL
    """,
    "CREATE INDEX idx_users_last_active ON whatsapp_handler.users (last_active_at)",
    """
    CREATE TABLE whatsapp_handler.user_preferences (
        id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id                 UUID NOT NULL
                                REFERENCES whatsapp_handler.users (id) ON DELETE CASCADE,
        notification_enabled    BOOLEAN NOT NULL DEFAULT TRUE,
        language                VARCHAR(10) NOT NULL DEFAULT 'en-GB',
        timezone                VARCHAR(50) NOT NULL DEFAULT 'Europe/London',
        delay_threshold_minutes INTEGER NOT NULL DEFAULT 15,
        auto_claim_enabled      BOOLEAN NOT NULL DEFAULT TRUE,
        created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT user_preferences_delay_threshold_positive
            CHECK (delay_threshold_minutes > 0)
    )
    """,
    "CREATE UNIQUE INDEX idx_user_prefs_user ON whatsapp_handler.user_preferences (user_id)",
    """
    CREATE TABLE whatsapp_handler.outbox_events (
        id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        aggregate_id   UUID NOT NULL,
        aggregate_type VARCHAR(50) NOT NULL,
        event_type     VARCHAR(100) NOT NULL,
        event_version  VARCHAR(10) NOT NULL DEFAULT '1.0',
        payload        JSONB NOT NULL,
        metadata       JSONB,
        correlation_id VARCHAR(64) NOT NULL,
        -- clock_timestamp(), not now(): events written in one transaction keep their order (D9).
        created_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        published_at   TIMESTAMPTZ
    )
    """,
    """
    CREATE INDEX idx_outbox_unpublished ON whatsapp_handler.outbox_events (created_at)
     WHERE published_at IS NULL
    """,
    """
    CREATE INDEX idx_outbox_aggregate
        ON whatsapp_handler.outbox_events (aggregate_id, aggregate_type)
    """,
    "CREATE INDEX idx_outbox_correlation ON whatsapp_handler.outbox_events (correlation_id)",
]

DOWN = [
    "DROP TABLE IF EXISTS whatsapp_handler.outbox_events CASCADE",
    "DROP TABLE IF EXISTS whatsapp_handler.user_preferences CASCADE",
    "DROP TABLE IF EXISTS whatsapp_handler.users CASCADE",
    "DROP SCHEMA IF EXISTS whatsapp_handler CASCADE",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
