"""The journeys each user sent, for the warning before the same one goes twice (issue 20).

The conversation state lives 24 hours; a claim window is 28 days. The webhook records a
digest of each journey.submitted (day, stations, time: conversation.journey_fingerprint)
in the same transaction as its outbox row, reads a user's rows of the claim window with
the user row it locks on every message, and warns before the same journey goes again.
A row holds a user id, a SHA-256 digest and a time: no number, no station, no text.
Erasure deletes a user's rows; the daily purge deletes rows older than the claim window.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UP = [
    """
    CREATE TABLE whatsapp_handler.submitted_journeys (
        user_id UUID NOT NULL
            REFERENCES whatsapp_handler.users (id) ON DELETE CASCADE,
        fingerprint CHAR(64) NOT NULL
            CONSTRAINT chk_submitted_journeys_fingerprint CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
        submitted_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (user_id, fingerprint)
    )
    """,
    """
    CREATE INDEX idx_submitted_journeys_submitted_at
        ON whatsapp_handler.submitted_journeys (submitted_at)
    """,
]

DOWN = [
    "DROP TABLE IF EXISTS whatsapp_handler.submitted_journeys",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
