"""Relay bookkeeping on outbox_events, and a ledger of notifications sent.

- attempts / last_error / next_attempt_at / dead_lettered_at: per-event retry with
  backoff; a dead-lettered event is kept but never retried automatically (issue 5).
- notification_deliveries: one row per notification_id, so a Pub/Sub redelivery or two
  instances at once send a notification once (contract 6a).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UP = [
    """
    ALTER TABLE whatsapp_handler.outbox_events
        ADD COLUMN attempts         INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN last_error       TEXT,
        ADD COLUMN next_attempt_at  TIMESTAMPTZ,
        ADD COLUMN dead_lettered_at TIMESTAMPTZ
    """,
    """
    CREATE TABLE whatsapp_handler.notification_deliveries (
        notification_id VARCHAR(128) PRIMARY KEY,
        user_id         UUID,
        -- claimed -> sent | skipped | failed; 'claimed' rows older than a lease may be retried.
        status          VARCHAR(20) NOT NULL,
        reason          TEXT,
        message_sid     VARCHAR(64),
        claimed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        completed_at    TIMESTAMPTZ,
        CONSTRAINT notification_deliveries_status CHECK (
            status IN ('claimed', 'sent', 'skipped', 'failed')
        )
    )
    """,
]

DOWN = [
    "DROP TABLE IF EXISTS whatsapp_handler.notification_deliveries",
    """
    ALTER TABLE whatsapp_handler.outbox_events
        DROP COLUMN IF EXISTS dead_lettered_at,
        DROP COLUMN IF EXISTS next_attempt_at,
        DROP COLUMN IF EXISTS last_error,
        DROP COLUMN IF EXISTS attempts
    """,
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
