"""Alembic environment: plain-SQL migrations on pg8000, serialised by an advisory lock.

The whole `upgrade` runs in one transaction, and the first statement in it takes a
transaction-scoped advisory lock: two `migrate up` at once queue here, and the second
then sees the first one's committed version row and has nothing left to do.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

# Any constant works; this one spells "whatsapp" in ASCII digits-ish, to be recognisable.
MIGRATION_LOCK_KEY = 7_756_174_581
VERSION_TABLE = "whatsapp_handler_alembic_version"

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            version_table=VERSION_TABLE,
            version_table_schema="public",
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            context.run_migrations()


run_migrations_online()
