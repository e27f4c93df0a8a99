"""whatsapp-handler gdpr [--dry-run]: the retention anonymisation, from a shell.

The same run as the daily `gdpr_cleanup` function. `--dry-run` prints how many users
would be anonymised and the oldest last activity, and changes nothing.
"""

from __future__ import annotations

import argparse
import json

HELP = "anonymise users inactive for GDPR_INACTIVITY_DAYS (--dry-run: count only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be anonymised; change nothing"
    )


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from uuid import uuid4

    from shared.db import Database
    from shared.services import gdpr
    from shared.settings import load_settings

    settings = load_settings() if args.dry_run else load_settings("otp_pepper")
    policy = gdpr.RetentionPolicy.from_settings(settings)
    database = Database(settings)
    now = datetime.now(UTC)
    try:
        if args.dry_run:
            preview = gdpr.preview_retention(database, now=now, policy=policy)
            oldest = preview.oldest_last_active_at
            print(
                f"{preview.candidates} user(s) would be anonymised "
                f"(inactive since before {preview.cutoff.isoformat()}); "
                f"oldest last activity: {oldest.isoformat() if oldest else 'none'}"
            )
            return 0
        from shared.adapters.redis_client import redis_client

        client = redis_client(settings)
        try:
            summary = gdpr.run_retention(
                database,
                gdpr.redis_target(settings, client),
                now=now,
                policy=policy,
                correlation_id=f"cli-gdpr-{uuid4().hex}",
            )
        finally:
            client.close()
    finally:
        database.close()
    print(json.dumps(summary.as_dict(), indent=2))
    return 1 if summary.failed_user_ids else 0
