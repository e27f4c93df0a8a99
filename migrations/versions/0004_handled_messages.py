"""The durable replay record: the MessageSids that changed state (issue 19).

Twilio's signature carries no time stamp, and the Redis de-duplication key lives only
MESSAGE_DEDUPE_TTL_SECONDS: a recorded request replayed later would act again. Every
MessageSid whose message reaches the unit of work is inserted here in that same
transaction; one found here is a retry and changes nothing. The daily outbox purge
deletes rows older than HANDLED_MESSAGE_RETENTION_DAYS (idx_handled_messages_handled_at).
A row holds the sid and a time only: no number, no text.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UP = [
    """
    CREATE TABLE whatsapp_handler.handled_messages (
        message_sid VARCHAR(34) PRIMARY KEY
            CONSTRAINT chk_handled_messages_sid CHECK (message_sid ~ '^(SM|MM)[0-9a-f]{32}$'),
        handled_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE INDEX idx_handled_messages_handled_at
        ON whatsapp_handler.handled_messages (handled_at)
    """,
]

DOWN = [
    "DROP TABLE IF EXISTS whatsapp_handler.handled_messages",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
