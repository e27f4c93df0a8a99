"""whatsapp-handler purge [--dry-run]: outbox retention (RFC 7.1) from a shell.

The same run as the daily `outbox_purge` function: deletes events published more than
OUTBOX_RETENTION_DAYS ago, then the old rows of the side tables (shared/services/purge.py
ROW_PURGES), in batches. `--dry-run` counts them and changes nothing.
"""

from __future__ import annotations

import argparse
import json

HELP = (
    "delete published outbox events past OUTBOX_RETENTION_DAYS and the side tables' old rows"
    " (--dry-run: count only)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; change nothing"
    )


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from shared.db import Database
    from shared.logs import configure_logging
    from shared.services import purge
    from shared.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    policy = purge.PurgePolicy.from_settings(settings)
    database = Database(settings)
    now = datetime.now(UTC)
    try:
        if args.dry_run:
            result = purge.preview_purge(database, now=now, policy=policy)
        else:
            result = purge.purge_expired(database, now=now, policy=policy)
    finally:
        database.close()
    print(json.dumps(result.as_dict(), indent=2))
    return 0
