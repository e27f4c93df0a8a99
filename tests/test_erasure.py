"""The shared erasure routine on real PostgreSQL and Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared import events
from shared.adapters.redis_client import redis_client
from shared.db import Database
from shared.redis_keys import RedisKeys
from shared.services.erasure import ErasureReason, erase_user, forget_in_redis
from shared.settings import load_settings
from tests.test_db import register

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PHONE = "+447700900123"


def test_erasure_removes_the_number_everywhere(db: Database, sql: Any) -> None:
    settings = load_settings()
    user_id = register(db, PHONE)
    with db.unit_of_work() as uow:
        uow.outbox.add(
            events.journey_submitted(
                user_id,
                correlation_id="c",
                journey_id=user_id,
                journey_date="2026-11-20",
                origin="Leeds",
                destination="York",
                departure="2026-11-20T08:02:00+00:00",
                media=[],
                submitted_at=NOW,
            )
        )
        uow.commit()
    assert settings.otp_pepper is not None
    keys = RedisKeys(settings.redis_key_prefix, settings.otp_pepper.get_secret_value().encode())
    client = redis_client(settings)
    client.set(keys.conversation(PHONE), "{}")
    client.set(keys.inbound_rate(PHONE, 1), 3)

    with db.unit_of_work() as uow:
        erased = erase_user(
            uow, user_id, reason=ErasureReason.REQUEST, now=NOW, correlation_id="c9"
        )
        uow.commit()
    assert erased is not None
    assert forget_in_redis(client, keys, erased.phone_number) == 1  # the counter stays

    (user,) = sql("SELECT * FROM whatsapp_handler.users")
    assert user["phone_number"].startswith("ANON-") and len(user["phone_number"]) == 20
    assert user["block_reason"] == "GDPR_ERASURE_REQUEST"
    assert user["anonymized_at"] is not None and user["otp_secret"] is None
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.user_preferences") == [{"n": 0}]
    dump = str(sql("SELECT payload FROM whatsapp_handler.outbox_events"))
    assert PHONE not in dump and "Leeds" not in dump
    assert [
        row["event_type"]
        for row in sql("SELECT event_type FROM whatsapp_handler.outbox_events ORDER BY created_at")
    ][-1] == "user.gdpr.erased"
    assert not client.exists(keys.conversation(PHONE))
    assert client.exists(keys.inbound_rate(PHONE, 1))  # expires with its window (D70)

    with db.unit_of_work() as uow:  # a second erasure finds nothing to do
        assert (
            erase_user(uow, user_id, reason=ErasureReason.REQUEST, now=NOW, correlation_id="c")
            is None
        )
