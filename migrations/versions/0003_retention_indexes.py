"""Indexes for the two retention jobs.

- idx_users_retention: the GDPR job picks the oldest inactive users that are not yet
  anonymised. On idx_users_last_active alone every batch first walks past all the users
  anonymised before (their last_active_at stays old), so a run over 100k users read
  ~10M index entries; this partial index holds only the candidates.
- idx_notification_deliveries_claimed: the purge job deletes ledger rows past retention.

Plain CREATE INDEX (migrations run in one transaction, which CONCURRENTLY cannot): about a
second of blocked writes per million users, at deploy time.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UP = [
    """
    CREATE INDEX idx_users_retention ON whatsapp_handler.users (last_active_at, id)
     WHERE anonymized_at IS NULL
    """,
    """
    CREATE INDEX idx_notification_deliveries_claimed
        ON whatsapp_handler.notification_deliveries (claimed_at)
    """,
]

DOWN = [
    "DROP INDEX IF EXISTS whatsapp_handler.idx_notification_deliveries_claimed",
    "DROP INDEX IF EXISTS whatsapp_handler.idx_users_retention",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
