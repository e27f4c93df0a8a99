"""whatsapp-handler dead-letters list | requeue EVENT_ID | requeue --all.

Dead-lettered outbox events failed RELAY_MAX_ATTEMPTS times; the relay keeps them and
never retries them by itself. `list` shows them (ids, types, attempts, last error; no
payloads); `requeue` hands one, or all, back to the relay with a fresh attempt budget.
"""

from __future__ import annotations

import argparse

NAME = "dead-letters"
HELP = "list dead-lettered outbox events, or requeue them for the relay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="show dead-lettered events, oldest first")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    requeue = actions.add_parser("requeue", help="send dead-lettered events back to the relay")
    target = requeue.add_mutually_exclusive_group(required=True)
    target.add_argument("event_id", nargs="?", help="the event to requeue")
    target.add_argument("--all", action="store_true", help="requeue every dead-lettered event")


def run(args: argparse.Namespace) -> int:
    from uuid import UUID

    from shared.db import Database
    from shared.services import relay
    from shared.settings import load_settings

    settings = load_settings()
    database = Database(settings)
    try:
        if args.action == "list":
            letters = relay.list_dead_letters(database, limit=args.limit)
            if not letters:
                print("no dead-lettered events")
            for letter in letters:
                print(
                    f"{letter.event_id}  {letter.event_type}  "
                    f"{letter.aggregate_type}:{letter.aggregate_id}  "
                    f"attempts={letter.attempts}  "
                    f"dead_lettered_at={letter.dead_lettered_at.isoformat()}  "
                    f"last_error={letter.last_error or ''}"
                )
            return 0
        event_id: UUID | None = None
        if not args.all:
            try:
                event_id = UUID(args.event_id)
            except ValueError:
                print(f"not an event id: {args.event_id}")
                return 2
        requeued = relay.requeue_dead_letters(database, event_id=event_id)
    finally:
        database.close()
    for requeued_id in requeued:
        print(f"requeued {requeued_id}")
    if event_id is not None and not requeued:
        print(f"{event_id} is not a dead-lettered event")
        return 1
    print(f"{len(requeued)} event(s) requeued")
    return 0
