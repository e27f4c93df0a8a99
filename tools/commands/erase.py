"""whatsapp-handler erase USER_ID: erase one person's data on their request (RFC 7.2).

The same routine as `DELETE MY DATA` and the retention job: the users row anonymised,
preferences deleted, unpublished outbox payloads scrubbed, `user.gdpr.erased` emitted,
then their Redis keys deleted. Exit 0 when erased (or already erased), 1 when no such
user, 2 for a malformed id.
"""

from __future__ import annotations

import argparse
import sys

HELP = "erase one user's personal data (GDPR request), by user id"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", help="the user's id (UUID)")


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from uuid import uuid4

    from shared.adapters.redis_client import redis_client
    from shared.db import Database
    from shared.errors import BadRequest
    from shared.services import gdpr
    from shared.services.users_api import parse_user_id
    from shared.settings import load_settings

    try:
        user_id = parse_user_id(args.user_id)
    except BadRequest as error:
        print(f"whatsapp-handler erase: {error.reason}", file=sys.stderr)
        return 2
    settings = load_settings("otp_pepper")
    database = Database(settings)
    client = redis_client(settings)
    try:
        result = gdpr.erase_on_request(
            database,
            gdpr.redis_target(settings, client),
            user_id,
            now=datetime.now(UTC),
            correlation_id=f"cli-erase-{uuid4().hex}",
        )
    finally:
        database.close()
        client.close()
    if result.outcome is gdpr.RequestOutcome.NOT_FOUND:
        print(f"no user {user_id}", file=sys.stderr)
        return 1
    if result.outcome is gdpr.RequestOutcome.ALREADY_ERASED:
        print(f"user {user_id} was already erased; nothing to do")
        return 0
    print(f"user {user_id} erased; {result.redis_keys_deleted} Redis key(s) deleted")
    if result.redis_errors:
        print("warning: Redis clean-up failed; the keys expire within 24 h", file=sys.stderr)
    return 0
