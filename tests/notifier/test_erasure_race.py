"""An erasure racing a notification (issue 19): the notifier reads the number, commits its
lease, then sends. Nothing may go to a number whose erasure committed before the send.

The race is arranged at the two seams the notifier is given: its Twilio adapter (an
erasure starts just before the real send) and its database (an erasure commits between
the lease and the send). Everything else is real: PostgreSQL, the shared erasure, the
Twilio stand-in.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from shared.adapters.twilio_messages import SentMessage, TwilioMessages
from shared.db import Database, UnitOfWork
from shared.notification_policy import NotificationRequest
from shared.services.erasure import ErasureReason, erase_user
from shared.services.notifications import (
    DeliveryStatus,
    NotifierConfig,
    deliver_notification,
)
from shared.settings import Settings, load_settings
from tests.notifier.conftest import Users

PHONE = "+447700900123"
HOLD_SECONDS = 0.5  # what an erasure gets to commit before the send goes on


def erase(database: Database, user_id: UUID) -> None:
    with database.unit_of_work() as uow:
        erase_user(
            uow, user_id, reason=ErasureReason.REQUEST, now=datetime.now(UTC), correlation_id="race"
        )
        uow.commit()


def is_erased(database: Database, user_id: UUID) -> bool:
    with database.unit_of_work() as uow:
        row = uow.fetch_one("find_user_by_id", user_id=user_id)
    assert row is not None
    return row["anonymized_at"] is not None


class ErasureStartsBeforeTheSend(TwilioMessages):
    """Twilio's adapter; just before each send an erasure of the recipient starts in
    another thread and gets HOLD_SECONDS to commit."""

    def __init__(self, settings: Settings, database: Database, user_id: UUID) -> None:
        super().__init__(settings)
        self.database, self.user_id = database, user_id
        self.erasure = threading.Thread(target=erase, args=(database, user_id))
        self.erased_at_send: bool | None = None

    def send(self, **kwargs: Any) -> SentMessage:
        self.erasure.start()
        self.erasure.join(HOLD_SECONDS)
        self.erased_at_send = is_erased(self.database, self.user_id)
        return super().send(**kwargs)


class ErasureCommitsAfterTheLease(Database):
    """The database; an erasure of the user commits right after the lease's transaction."""

    def __init__(self, settings: Settings, user_id: UUID) -> None:
        super().__init__(settings)
        self.user_id = user_id
        self.units = 0

    def unit_of_work(self) -> UnitOfWork:
        self.units += 1
        if self.units == 2:  # the lease is committed; what comes next is the send's
            erase(self, self.user_id)
        return super().unit_of_work()


def request_for(user_id: str) -> NotificationRequest:
    return NotificationRequest(
        notification_id=str(uuid4()), user_id=UUID(user_id), text="Your claim moved."
    )


def test_an_erasure_during_the_send_waits_for_it(db: Database, users: Users, services: Any) -> None:
    user_id = users.add(PHONE)
    settings = load_settings()
    messages = ErasureStartsBeforeTheSend(settings, db, UUID(user_id))

    result = deliver_notification(
        db,
        messages,
        request_for(user_id),
        config=NotifierConfig.from_settings(settings),
        now=datetime.now(UTC),
    )

    assert result.status is DeliveryStatus.SENT
    assert messages.erased_at_send is False  # the message went to a number not yet erased
    assert len(services.twilio.messages) == 1
    messages.erasure.join(5)  # and the erasure goes on as soon as the send is done
    assert not messages.erasure.is_alive() and is_erased(db, UUID(user_id))
    assert [row["status"] for row in users.deliveries()] == ["sent"]


def test_an_erasure_committed_after_the_lease_stops_the_send(users: Users, services: Any) -> None:
    user_id = users.add(PHONE)
    settings = load_settings()
    database = ErasureCommitsAfterTheLease(settings, UUID(user_id))
    try:
        result = deliver_notification(
            database,
            TwilioMessages(settings),
            request_for(user_id),
            config=NotifierConfig.from_settings(settings),
            now=datetime.now(UTC),
        )
        assert is_erased(database, UUID(user_id))
    finally:
        database.close()

    assert (result.status, result.reason) == (DeliveryStatus.SKIPPED, "erased")
    assert services.twilio.messages == []
    assert [(row["status"], row["reason"]) for row in users.deliveries()] == [("skipped", "erased")]
