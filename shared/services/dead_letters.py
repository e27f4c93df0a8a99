"""Dead-lettered outbox events, for the operator: list them, give them back to the relay.

An event is dead-lettered after ``RELAY_MAX_ATTEMPTS`` charged failures (see
``shared/services/relay.py``); it then stops holding its aggregate. Requeued, it gets a
fresh attempt budget and goes out behind whatever its aggregate published meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.db import Database
from shared.logs import get_logger

# The relay's logger: these lines were the relay module's and keep their logger name.
log = get_logger("relay")


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
