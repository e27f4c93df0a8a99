"""`whatsapp-handler migrate up | down | status`: Alembic driven from code, never at run time.

Only the CLI imports this module (it is in tools/, which no function archive carries);
the functions never pay for Alembic or SQLAlchemy (the `migrate` extra).
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "public.whatsapp_handler_alembic_version"


def sqlalchemy_url(database_url: str) -> str:
    """postgresql://... -> postgresql+pg8000://... (the driver the functions use too)."""
    scheme, _, rest = database_url.partition("://")
    if scheme not in ("postgresql", "postgres", "postgresql+pg8000"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    return f"postgresql+pg8000://{rest}"


def alembic_config(database_url: str, stdout: io.StringIO | None = None) -> Config:
    config = Config(stdout=stdout) if stdout is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
    if revision == "base":
        # RFC 5.2: `down` leaves no trace, so the bookkeeping table goes too.
        engine = create_engine(sqlalchemy_url(database_url))
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                text("SELECT to_regclass(:name) IS NOT NULL"), {"name": VERSION_TABLE}
            ).scalar()
            if not exists:
                return None
            row = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
            return None if row is None else str(row[0])
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql://x/x")).get_current_head()
    assert head is not None  # noqa: S101 - the migrations folder always has a head
    return head


def status(database_url: str) -> str:
    current = current_revision(database_url)
    head = head_revision()
    state = "up to date" if current == head else "pending migrations"
    return f"current: {current or 'none (empty database)'}  head: {head}  ({state})"
