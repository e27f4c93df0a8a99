"""whatsapp-handler dead-letters list | requeue EVENT_ID | requeue --all.

Dead-lettered outbox events failed RELAY_MAX_ATTEMPTS times; the relay keeps them and
never retries them by itself. `list` shows them (ids, types, attempts, last error; no
payloads); `requeue` hands one, or all, back to the relay with a fresh attempt budget.
Requeued, an event goes out behind whatever its aggregate published meanwhile (a dead
letter stops holding its aggregate, ``shared/services/relay.py``).

The two data functions live here, not in ``shared/``: only this operator's command runs
them, so no function archive needs them (D113, D120).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from shared.logs import get_logger

if TYPE_CHECKING:  # shared.db loads pg8000: imported in run(), so --help stays fast
    from shared.db import Database

# The relay's logger: these lines were the relay module's and keep their logger name.
log = get_logger("relay")

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
    from shared.db import Database
    from shared.settings import load_settings

    settings = load_settings()
    database = Database(settings)
    try:
        if args.action == "list":
            letters = list_dead_letters(database, limit=args.limit)
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
        requeued = requeue_dead_letters(database, event_id=event_id)
    finally:
        database.close()
    for requeued_id in requeued:
        print(f"requeued {requeued_id}")
    if event_id is not None and not requeued:
        print(f"{event_id} is not a dead-lettered event")
        return 1
    print(f"{len(requeued)} event(s) requeued")
    return 0


# --- the data (shared/sql/relay.sql) ----------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    event_id: UUID
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    attempts: int
    last_error: str | None
    created_at: datetime
    dead_lettered_at: datetime


def list_dead_letters(database: Database, *, limit: int = 100) -> list[DeadLetter]:
    with database.unit_of_work() as uow:
        rows = uow.fetch_all("list_dead_letters", limit=limit)
    return [
        DeadLetter(
            event_id=UUID(str(row["id"])),
            event_type=row["event_type"],
            aggregate_type=row["aggregate_type"],
            aggregate_id=UUID(str(row["aggregate_id"])),
            attempts=int(row["attempts"]),
            last_error=row["last_error"],
            created_at=row["created_at"],
            dead_lettered_at=row["dead_lettered_at"],
        )
        for row in rows
    ]


def requeue_dead_letters(database: Database, *, event_id: UUID | None) -> list[UUID]:
    """Give one dead-lettered event (or all, with ``event_id=None``) back to the relay with
    a fresh attempt budget; the ids actually requeued."""
    with database.unit_of_work() as uow:
        if event_id is None:
            rows = uow.fetch_all("requeue_all_dead_letters")
        else:
            rows = uow.fetch_all("requeue_dead_letter", id=event_id)
        uow.commit()
    requeued = [UUID(str(row["id"])) for row in rows]
    if requeued:
        log.info("dead letters requeued", action="outbox.requeued", count=len(requeued))
    return requeued
