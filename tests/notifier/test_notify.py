"""notify end to end: real PostgreSQL, the Twilio stand-in, real CloudEvents (contract 6a)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from shared.db import Database
from shared.services.erasure import ErasureReason, erase_user
from tests.conftest import TEST_WHATSAPP_FROM
from tests.notifier.conftest import (
    MODES,
    Users,
    envelope_for,
    post_event,
    request_envelope,
)

PHONE = "+447700900123"
TEXT = "Your 08:02 Leeds to York was 32 minutes late. Reply CLAIM to claim."
TEMPLATE_EN = "HX" + "e" * 32
TEMPLATE_CY = "HX" + "c" * 32


def notification(user_id: str, **fields: Any) -> dict[str, Any]:
    return {"notification_id": str(uuid4()), "user_id": user_id, "text": TEXT, **fields}


@pytest.mark.parametrize("mode", MODES)
def test_a_verified_user_inside_the_window_gets_exactly_one_whatsapp_message(
    notifier: Any, users: Users, services: Any, log_lines: Any, mode: str
) -> None:
    user_id = users.add(PHONE, active_ago=timedelta(hours=2))
    request = notification(user_id)

    response = post_event(notifier, request_envelope(request), mode)

    assert response.status_code == 200
    (message,) = services.twilio.messages
    assert message.to == f"whatsapp:{PHONE}"
    assert message.from_ == TEST_WHATSAPP_FROM
    assert message.body == TEXT and message.content_sid is None
    (delivery,) = users.deliveries()
    assert delivery["notification_id"] == request["notification_id"]
    assert delivery["user_id"] == user_id
    assert (delivery["status"], delivery["message_sid"]) == ("sent", message.sid)
    assert delivery["completed_at"] is not None
    lines = log_lines()
    sent = [line for line in lines if line["action"] == "notification.sent"]
    assert sent and sent[0]["notification_id"] == request["notification_id"]
    assert sent[0]["message_sid"] == message.sid
    assert all(PHONE not in json.dumps(line) and "Leeds" not in json.dumps(line) for line in lines)


def test_the_same_notification_twice_is_sent_once(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE)
    envelope = request_envelope(notification(user_id))

    first = post_event(notifier, envelope)
    again = post_event(notifier, envelope, "push")  # Pub/Sub redelivers, same id

    assert (first.status_code, again.status_code) == (200, 200)
    assert len(services.twilio.messages) == 1
    assert [row["status"] for row in users.deliveries()] == ["sent"]


def test_the_same_notification_delivered_concurrently_is_sent_once(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE)
    envelope = request_envelope(notification(user_id))
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []

    def deliver() -> None:
        client = notifier.application.test_client()
        barrier.wait()
        statuses.append(post_event(client, envelope).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(services.twilio.messages) == 1
    assert len(statuses) == threads_count
    # Every other attempt either saw it done (acknowledged) or still leased (retry later).
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert post_event(notifier, envelope).status_code == 200  # a later redelivery: done
    assert len(services.twilio.messages) == 1
    assert [row["status"] for row in users.deliveries()] == ["sent"]


def test_outside_the_window_the_template_is_sent_in_the_users_language(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE, active_ago=timedelta(hours=30), language="cy-GB")
    request = notification(
        user_id,
        content_sid={"default": TEMPLATE_EN, "cy": TEMPLATE_CY},
        content_variables={"1": "08:02", "2": "32"},
    )

    assert post_event(notifier, request_envelope(request), "binary").status_code == 200

    (message,) = services.twilio.messages
    assert message.to == f"whatsapp:{PHONE}" and message.from_ == TEST_WHATSAPP_FROM
    assert message.body is None  # free text is not allowed outside the window
    assert message.content_sid == TEMPLATE_CY
    assert json.loads(message.content_variables or "") == {"1": "08:02", "2": "32"}
    (delivery,) = users.deliveries()
    assert (delivery["status"], delivery["reason"]) == ("sent", "template")


def test_outside_the_window_free_text_alone_is_skipped(
    notifier: Any, users: Users, services: Any, log_lines: Any
) -> None:
    user_id = users.add(PHONE, active_ago=timedelta(hours=24, minutes=1))
    request = notification(user_id)

    assert post_event(notifier, request_envelope(request)).status_code == 200

    assert services.twilio.messages == []
    (delivery,) = users.deliveries()
    assert delivery["status"] == "skipped"
    assert delivery["reason"] == "outside_session_window_without_template"
    skipped = [line for line in log_lines() if line["action"] == "notification.skipped"]
    assert skipped[0]["reason"] == "outside_session_window_without_template"


def test_a_template_only_request_inside_the_window_sends_the_template(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE)
    request = notification(user_id, content_sid=TEMPLATE_EN)
    del request["text"]

    assert post_event(notifier, request_envelope(request)).status_code == 200

    (message,) = services.twilio.messages
    assert (message.content_sid, message.body) == (TEMPLATE_EN, None)


def _stopped(users: Users, db: Database) -> str:
    user_id = users.add(PHONE)
    with db.unit_of_work() as uow:  # what the webhook's STOP does
        uow.execute(
            "set_notification_enabled", user_id=user_id, enabled=False, now=datetime.now(UTC)
        )
        uow.commit()
    return user_id


def _erased(users: Users, db: Database) -> str:
    user_id = users.add(PHONE)
    with db.unit_of_work() as uow:
        erase_user(
            uow, user_id, reason=ErasureReason.REQUEST, now=datetime.now(UTC), correlation_id="t"
        )
        uow.commit()
    return user_id


SKIPPED_USERS = {
    "notifications_off": _stopped,
    "blocked": lambda users, db: users.add(PHONE, blocked=True),
    "erased": _erased,
    "unverified": lambda users, db: users.add(PHONE, verified=False),
    "unknown_user": lambda users, db: str(uuid4()),
}


@pytest.mark.parametrize("reason", sorted(SKIPPED_USERS))
def test_users_who_may_not_be_messaged_get_nothing_and_cause_no_retry(
    notifier: Any, users: Users, db: Database, services: Any, log_lines: Any, reason: str
) -> None:
    user_id = SKIPPED_USERS[reason](users, db)
    request = notification(user_id, content_sid=TEMPLATE_EN)

    response = post_event(notifier, request_envelope(request))

    assert response.status_code == 200  # acknowledged: Pub/Sub will not redeliver
    assert services.twilio.messages == []
    (delivery,) = users.deliveries()
    assert (delivery["status"], delivery["reason"]) == ("skipped", reason)
    lines = log_lines()
    assert any(
        line["action"] == "notification.skipped" and line["reason"] == reason for line in lines
    )
    assert all(PHONE not in json.dumps(line) for line in lines)


def test_start_after_stop_is_honoured_at_once(
    notifier: Any, users: Users, db: Database, services: Any
) -> None:
    user_id = _stopped(users, db)
    assert post_event(notifier, request_envelope(notification(user_id))).status_code == 200
    with db.unit_of_work() as uow:  # START
        uow.execute(
            "set_notification_enabled", user_id=user_id, enabled=True, now=datetime.now(UTC)
        )
        uow.commit()

    assert post_event(notifier, request_envelope(notification(user_id))).status_code == 200

    assert len(services.twilio.messages) == 1
    assert sorted(row["status"] for row in users.deliveries()) == ["sent", "skipped"]


def test_a_user_without_a_preferences_row_has_the_defaults(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE, preferences=False)

    assert post_event(notifier, request_envelope(notification(user_id))).status_code == 200

    assert len(services.twilio.messages) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_twilio_failure_that_may_pass_fails_the_delivery_and_a_later_one_sends_once(
    notifier: Any, users: Users, services: Any, log_lines: Any, status: int
) -> None:
    user_id = users.add(PHONE)
    envelope = request_envelope(notification(user_id))
    services.twilio.fail_next(1, status=status)

    failed = post_event(notifier, envelope)

    assert not 200 <= failed.status_code < 300  # Pub/Sub nacks and redelivers with backoff
    assert services.twilio.messages == []
    assert users.deliveries() == []  # the lease is released for the retry
    assert any(line["action"] == "notification.retry" for line in log_lines())

    assert post_event(notifier, envelope, "push").status_code == 200
    assert post_event(notifier, envelope).status_code == 200
    assert len(services.twilio.messages) == 1
    assert [row["status"] for row in users.deliveries()] == ["sent"]


def test_a_permanent_twilio_failure_is_recorded_and_acknowledged(
    notifier: Any, users: Users, services: Any, log_lines: Any
) -> None:
    user_id = users.add(PHONE)
    envelope = request_envelope(notification(user_id))
    services.twilio.fail_next(
        1, status=400, code=21211, message=f"The 'To' number {PHONE} is not a valid phone number."
    )

    response = post_event(notifier, envelope)

    assert response.status_code == 200
    (delivery,) = users.deliveries()
    assert (delivery["status"], delivery["reason"]) == ("failed", "twilio status 400 code 21211")
    assert post_event(notifier, envelope).status_code == 200  # redelivered: not tried again
    assert services.twilio.messages == []
    lines = log_lines()
    assert any(line["action"] == "notification.failed" for line in lines)
    assert all(PHONE not in json.dumps(line) for line in lines)


def test_an_abandoned_lease_is_taken_over_once_it_runs_out(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE)
    request = notification(user_id)
    users.sql(
        "INSERT INTO whatsapp_handler.notification_deliveries"
        " (notification_id, user_id, status, claimed_at) VALUES (:id, :user, 'claimed', :at)",
        id=request["notification_id"],
        user=user_id,
        at=datetime.now(UTC) - timedelta(minutes=10),  # an attempt that died long ago
    )

    assert post_event(notifier, request_envelope(request)).status_code == 200

    assert len(services.twilio.messages) == 1
    assert [row["status"] for row in users.deliveries()] == ["sent"]


def test_a_lease_taken_over_during_the_send_keeps_the_new_holders_row_and_is_logged(
    notifier: Any, users: Users, services: Any, log_lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = users.add(PHONE)
    request = notification(user_id)
    taken_over_at = datetime.now(UTC) + timedelta(minutes=5)

    def another_attempt_takes_the_lease_over(_: Any) -> None:
        # While Twilio answers, the lease runs out and another attempt takes it over.
        users.sql(
            "UPDATE whatsapp_handler.notification_deliveries SET claimed_at = :at"
            " WHERE notification_id = :id",
            at=taken_over_at,
            id=request["notification_id"],
        )

    monkeypatch.setattr(services.twilio, "on_message", another_attempt_takes_the_lease_over)

    response = post_event(notifier, request_envelope(request))

    assert response.status_code == 200  # the message is out: no redelivery
    assert len(services.twilio.messages) == 1
    (delivery,) = users.deliveries()
    assert (delivery["status"], delivery["completed_at"]) == ("claimed", None)
    assert delivery["claimed_at"] == taken_over_at  # the new holder's row is untouched
    actions = [line["action"] for line in log_lines()]
    assert "notification.claim_lost" in actions
    assert "notification.sent" in actions and "notification.unrecorded" not in actions


def test_a_lease_held_elsewhere_makes_the_delivery_retry_later(
    notifier: Any, users: Users, services: Any
) -> None:
    user_id = users.add(PHONE)
    request = notification(user_id)
    users.sql(
        "INSERT INTO whatsapp_handler.notification_deliveries"
        " (notification_id, user_id, status, claimed_at) VALUES (:id, :user, 'claimed', :at)",
        id=request["notification_id"],
        user=user_id,
        at=datetime.now(UTC) - timedelta(seconds=5),
    )

    response = post_event(notifier, request_envelope(request))

    assert response.status_code == 503
    assert services.twilio.messages == []
    assert [row["status"] for row in users.deliveries()] == ["claimed"]


def _request_with(**changes: Any) -> bytes:
    request = {"notification_id": "n-1", "user_id": str(uuid4()), "text": "hello"}
    request.update(changes)
    return json.dumps({key: value for key, value in request.items() if value is not ...}).encode()


MALFORMED = {
    "bad base64": envelope_for("not base64 at all!"),
    "not JSON": envelope_for(b"{not json"),
    "not UTF-8": envelope_for(b"\xff\xfe\x00"),
    "a JSON array": envelope_for(b"[1, 2]"),
    "no user_id": envelope_for(_request_with(user_id=...)),
    "bad uuid": envelope_for(_request_with(user_id="42")),
    "no text nor template": envelope_for(_request_with(text=...)),
    "blank text": envelope_for(_request_with(text="   ")),
    "text too long": envelope_for(_request_with(text="x" * 1601)),
    "bad content_sid": envelope_for(_request_with(content_sid="MG123")),
    "templates without default": envelope_for(_request_with(content_sid={"cy": TEMPLATE_CY})),
    "variables without template": envelope_for(_request_with(content_variables={"1": "x"})),
    "unknown field": envelope_for(_request_with(phone_number=PHONE)),
    "notification_id not a string": envelope_for(_request_with(notification_id=7)),
    "null text": envelope_for(_request_with(text=None, content_sid=TEMPLATE_EN)),
    "no message": {"subscription": "projects/p/subscriptions/s"},
    "no data": {"message": {"messageId": "1", "attributes": {}}},
    "data not an object": "just a string",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_messages_are_acknowledged_with_a_logged_reason(
    notifier: Any, users: Users, services: Any, log_lines: Any, case: str
) -> None:
    users.add(PHONE)
    mode = "binary" if case == "data not an object" else "structured"

    response = post_event(notifier, MALFORMED[case], mode)

    assert response.status_code == 200  # acknowledged: no crash loop
    assert services.twilio.messages == []
    assert users.deliveries() == []
    (line,) = [line for line in log_lines() if line["action"] == "notification.malformed"]
    assert line["reason"] and line["severity"] == "WARNING"
    assert PHONE not in json.dumps(line)


def _fresh_notifier() -> Any:
    """Another instance of the function (its own deps()), for a broken environment."""
    import functions_framework

    from tests.notifier.conftest import SOURCE

    app = functions_framework.create_app(
        target="notify", source=SOURCE, signature_type="cloudevent"
    )
    return app.test_client()


def test_twilio_unreachable_fails_the_delivery_and_releases_the_lease(
    users: Users, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.devservices import free_port

    user_id = users.add(PHONE)
    monkeypatch.setenv("TWILIO_API_BASE_URL", f"http://127.0.0.1:{free_port()}")

    response = post_event(_fresh_notifier(), request_envelope(notification(user_id)))

    assert response.status_code == 503
    assert users.deliveries() == []


def test_database_unreachable_fails_the_delivery_instead_of_dropping_it(
    users: Any, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.devservices import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/gone")

    response = post_event(_fresh_notifier(), request_envelope(notification(str(uuid4()))))

    assert response.status_code == 503
    assert services.twilio.messages == []


def test_a_missing_whatsapp_sender_fails_every_delivery_rather_than_drop_it(
    services: Any, clean_state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_WHATSAPP_FROM")

    response = post_event(_fresh_notifier(), request_envelope(notification(str(uuid4()))))

    assert response.status_code == 500
    assert services.twilio.messages == []
