"""whatsapp-handler migrate up | down | status (contract section 7), on DATABASE_URL."""

from __future__ import annotations

import argparse

HELP = "apply (up), roll back (down) or show (status) the database migrations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument(
        "--revision",
        default=None,
        help="target revision (up: default head; down: default base, i.e. remove everything)",
    )


def run(args: argparse.Namespace) -> int:
    from shared.settings import load_settings
    from tools import migrate

    settings = load_settings("database_url")
    assert settings.database_url is not None  # noqa: S101 - required above
    if args.action == "up":
        migrate.upgrade(settings.database_url, args.revision or "head")
    elif args.action == "down":
        migrate.downgrade(settings.database_url, args.revision or "base")
    print(migrate.status(settings.database_url))
    return 0
