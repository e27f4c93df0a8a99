"""Retention anonymisation (RAILREPAY-701) on real PostgreSQL and Redis."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema
import pytest

from shared import events
from shared.adapters.redis_client import redis_client
from shared.db import Database
from shared.services import gdpr
from shared.settings import load_settings
from tests.gdpr.helpers import (
    add_user,
    anon_marker,
    redis_entries_containing,
    redis_keys,
    tables_containing,
)

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=3)
POLICY = gdpr.RetentionPolicy(inactivity_days=180, batch_size=500, max_run_seconds=300)
PHONE = "+447700900731"


@pytest.fixture()
def target(clean_state: Any) -> Any:
    settings = load_settings()
    client = redis_client(settings)
    yield gdpr.redis_target(settings, client)
    client.close()


def run(db: Database, target: Any, policy: gdpr.RetentionPolicy = POLICY, **kw: Any) -> Any:
    return gdpr.run_retention(db, target, now=NOW, policy=policy, correlation_id="gdpr-t", **kw)


def add_inactive_users(sql: Any, count: int) -> None:
    for index in range(count):
        add_user(sql, f"+4477009007{index:02d}", last_active_at=OLD)


def user(sql: Any, user_id: UUID) -> dict[str, Any]:
    (row,) = sql("SELECT * FROM whatsapp_handler.users WHERE id = :id", id=str(user_id))
    return row


def erased_events(sql: Any) -> dict[str, int]:
    rows = sql(
        "SELECT payload ->> 'user_id' AS user_id, count(*) AS n"
        " FROM whatsapp_handler.outbox_events WHERE event_type = 'user.gdpr.erased'"
        " GROUP BY 1"
    )
    return {row["user_id"]: row["n"] for row in rows}


def has_preferences(sql: Any, user_id: UUID) -> bool:
    rows = sql(
        "SELECT 1 FROM whatsapp_handler.user_preferences WHERE user_id = CAST(:id AS uuid)",
        id=str(user_id),
    )
    return bool(rows)


def assert_fully_anonymised_or_untouched(sql: Any, user_id: UUID, phone: str) -> bool:
    """True when anonymised, False when untouched; fails on anything in between."""
    row = user(sql, user_id)
    events_for_user = erased_events(sql).get(str(user_id), 0)
    if row["anonymized_at"] is None:
        assert row["phone_number"] == phone
        assert row["display_name"] == "Ada" and row["otp_secret"] is not None
        assert has_preferences(sql, user_id)
        assert events_for_user == 0
        return False
    assert row["phone_number"] == anon_marker(user_id)
    assert row["display_name"] is None and row["otp_secret"] is None
    assert row["blocked_at"] is not None and row["block_reason"] == "GDPR_RETENTION"
    assert not has_preferences(sql, user_id)
    assert events_for_user == 1
    return True


def test_each_kind_of_user_is_handled_right(db: Database, sql: Any, target: Any) -> None:
    inactive = add_user(sql, "+447700900701", last_active_at=OLD)
    active = add_user(sql, "+447700900702", last_active_at=RECENT)
    just_inside = add_user(sql, "+447700900703", last_active_at=POLICY.cutoff(NOW))
    blocked_long_ago = NOW - timedelta(days=300)
    blocked = add_user(
        sql,
        "+447700900704",
        last_active_at=OLD,
        blocked_at=blocked_long_ago,
        block_reason="ABUSE",
    )
    already = add_user(
        sql,
        "ANON-" + "0" * 15,
        last_active_at=OLD,
        anonymized_at=NOW - timedelta(days=20),
        blocked_at=NOW - timedelta(days=20),
        block_reason="GDPR_RETENTION",
        display_name=None,
        preferences=False,
    )

    summary = run(db, target)

    assert summary.anonymised == 2 and summary.status == "complete"
    assert summary.failed_user_ids == () and summary.batches == 1
    assert assert_fully_anonymised_or_untouched(sql, inactive, "+447700900701")
    assert not assert_fully_anonymised_or_untouched(sql, active, "+447700900702")
    assert not assert_fully_anonymised_or_untouched(sql, just_inside, "+447700900703")
    assert assert_fully_anonymised_or_untouched(sql, blocked, "+447700900704")
    # The earlier block keeps its time; the reason becomes the erasure's.
    assert user(sql, blocked)["blocked_at"] == blocked_long_ago
    # Anonymised once, never processed again: no second event, nothing changed.
    assert user(sql, already)["anonymized_at"] == NOW - timedelta(days=20)
    assert str(already) not in erased_events(sql)
    (event,) = sql(
        "SELECT payload, correlation_id FROM whatsapp_handler.outbox_events"
        " WHERE payload ->> 'user_id' = :id",
        id=str(inactive),
    )
    assert event["payload"] == {
        "user_id": str(inactive),
        "erased_at": NOW.isoformat(),
        "reason": "GDPR_RETENTION",
    }
    assert event["correlation_id"] == "gdpr-t"

    assert run(db, target).anonymised == 0  # re-running is a no-op


def test_after_erasure_the_number_is_nowhere(
    db: Database, sql: Any, target: Any, clean_state: Any
) -> None:
    user_id = add_user(sql, PHONE, last_active_at=OLD)
    bystander = add_user(sql, "+447700900732", last_active_at=RECENT)
    with db.unit_of_work() as uow:
        uow.outbox.add(
            events.journey_submitted(
                user_id,
                correlation_id="c",
                journey_id=user_id,
                journey_date="2026-05-01",
                origin="Leeds",
                destination="York",
                departure="2026-05-01T08:02:00+01:00",
                media=[events.Media("https://api.twilio.com/media/ME1", "image/jpeg")],
                submitted_at=OLD,
            )
        )
        uow.commit()
    keys = redis_keys()
    client = clean_state.redis
    # What the webhook keeps about a person: conversation state and rate-limit counters.
    client.set(keys.conversation(PHONE), json.dumps({"state": "claim", "from": PHONE}))
    client.set(keys.inbound_rate(PHONE, 29_000_000), 4)
    client.set(keys.otp_rate(PHONE, 480_000), 2)
    client.set(keys.conversation("+447700900732"), "{}")
    client.set(keys.inbound_rate("+447700900732", 29_000_000), 1)
    digits = PHONE.removeprefix("+44")  # the national part catches other spellings too
    assert tables_containing(sql, digits) == ['"whatsapp_handler"."users"']
    assert redis_entries_containing(client, clean_state.redis_prefix, [digits])

    summary = run(db, target)

    assert summary.anonymised == 1 and summary.redis_keys_deleted == 1
    assert tables_containing(sql, digits) == []
    assert tables_containing(sql, "Leeds") == []  # free text of an unpublished event
    assert redis_entries_containing(client, clean_state.redis_prefix, [digits]) == []
    assert not client.exists(keys.conversation(PHONE))
    # The counters hold the tag and a count, and expire with their window (D70).
    assert client.exists(keys.inbound_rate(PHONE, 29_000_000))
    assert client.exists(keys.otp_rate(PHONE, 480_000))
    # Someone else's keys and row are left alone.
    assert client.exists(keys.conversation("+447700900732"))
    assert client.exists(keys.inbound_rate("+447700900732", 29_000_000))
    assert user(sql, bystander)["phone_number"] == "+447700900732"


def test_batches_are_bounded_and_oldest_first(db: Database, sql: Any, target: Any) -> None:
    ids = [
        add_user(sql, f"+4477009007{index:02d}", last_active_at=OLD - timedelta(days=index))
        for index in range(10)
    ]
    small = gdpr.RetentionPolicy(inactivity_days=180, batch_size=3, max_run_seconds=300)

    summary = run(db, target, small)

    assert (summary.anonymised, summary.batches, summary.status) == (10, 4, "complete")
    rows = sql(
        "SELECT payload ->> 'user_id' AS user_id FROM whatsapp_handler.outbox_events"
        " ORDER BY created_at"
    )
    assert [UUID(row["user_id"]) for row in rows] == list(reversed(ids))


def test_a_spent_time_budget_stops_between_batches_and_the_next_run_goes_on(
    db: Database, sql: Any, target: Any
) -> None:
    add_inactive_users(sql, 5)
    small = gdpr.RetentionPolicy(inactivity_days=180, batch_size=2, max_run_seconds=10)
    ticks = iter([0.0, 0.0, 11.0])  # start, before batch 1, before batch 2

    first = run(db, target, small, clock=lambda: next(ticks))
    second = run(db, target, small)

    assert (first.anonymised, first.batches, first.status) == (2, 1, "time_budget_spent")
    assert (second.anonymised, second.status) == (3, "complete")


def test_two_runs_at_once_share_the_work_and_both_finish(
    db: Database, sql: Any, target: Any
) -> None:
    phones = {add_user(sql, f"+4477009007{i:02d}", last_active_at=OLD): i for i in range(40)}
    # Slow each anonymisation a little so the two runs really overlap.
    sql(
        """
        CREATE FUNCTION whatsapp_handler.test_slow() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END $$
        """
    )
    sql(
        "CREATE TRIGGER test_slow BEFORE UPDATE ON whatsapp_handler.users"
        " FOR EACH ROW EXECUTE FUNCTION whatsapp_handler.test_slow()"
    )
    small = gdpr.RetentionPolicy(inactivity_days=180, batch_size=4, max_run_seconds=60)
    start = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def one_run() -> None:
        start.wait()
        try:
            results.append(run(db, target, small))
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=one_run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sql("DROP TRIGGER IF EXISTS test_slow ON whatsapp_handler.users")
        sql("DROP FUNCTION IF EXISTS whatsapp_handler.test_slow()")

    assert errors == [] and len(results) == 2
    assert sorted(result.status for result in results) == ["complete", "complete"]
    assert sum(result.anonymised for result in results) == 40
    assert all(result.anonymised > 0 for result in results)  # both did some of the work
    assert erased_events(sql) == {str(user_id): 1 for user_id in phones}


def test_a_batch_failing_midway_leaves_each_user_whole_and_a_rerun_completes(
    db: Database, sql: Any, target: Any
) -> None:
    users = {
        add_user(sql, f"+4477009007{i:02d}", last_active_at=OLD - timedelta(minutes=i)): (
            f"+4477009007{i:02d}"
        )
        for i in range(12)
    }
    oldest_first = sorted(users, key=lambda u: user(sql, u)["last_active_at"])
    poison = oldest_first[6]  # in the middle of the second batch of five
    sql(
        f"""
        CREATE FUNCTION whatsapp_handler.test_refuse() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN
             IF OLD.id = '{poison}'::uuid THEN RAISE EXCEPTION 'refused by the test'; END IF;
             RETURN NEW;
           END $$
        """
    )
    sql(
        "CREATE TRIGGER test_refuse BEFORE UPDATE ON whatsapp_handler.users"
        " FOR EACH ROW EXECUTE FUNCTION whatsapp_handler.test_refuse()"
    )
    policy = gdpr.RetentionPolicy(inactivity_days=180, batch_size=5, max_run_seconds=60)
    try:
        failed_run = run(db, target, policy)
        outcome = {
            user_id: assert_fully_anonymised_or_untouched(sql, user_id, phone)
            for user_id, phone in users.items()
        }
    finally:
        sql("DROP TRIGGER IF EXISTS test_refuse ON whatsapp_handler.users")
        sql("DROP FUNCTION IF EXISTS whatsapp_handler.test_refuse()")

    assert failed_run.failed_user_ids == (poison,) and failed_run.status == "failed_users"
    assert failed_run.anonymised == 11
    assert [user_id for user_id, done in outcome.items() if not done] == [poison]

    rerun = run(db, target, policy)

    assert (rerun.anonymised, rerun.status) == (1, "complete")
    assert all(
        assert_fully_anonymised_or_untouched(sql, user_id, phone)
        for user_id, phone in users.items()
    )
    assert erased_events(sql) == {str(user_id): 1 for user_id in users}


def test_dry_run_counts_and_changes_nothing(db: Database, sql: Any) -> None:
    add_user(sql, "+447700900701", last_active_at=OLD)
    add_user(sql, "+447700900702", last_active_at=OLD - timedelta(days=40))
    add_user(sql, "+447700900703", last_active_at=RECENT)

    preview = gdpr.preview_retention(db, now=NOW, policy=POLICY)

    assert preview.candidates == 2
    assert preview.oldest_last_active_at == OLD - timedelta(days=40)
    assert preview.as_dict()["would_anonymise"] == 2
    assert (
        sql("SELECT count(*) AS n FROM whatsapp_handler.users WHERE anonymized_at IS NULL")[0]["n"]
        == 3
    )
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]


def test_each_audit_row_is_the_event_that_events_builds_and_fits_its_schema(
    db: Database, sql: Any, target: Any
) -> None:
    ids = [
        add_user(sql, f"+4477009007{index:02d}", last_active_at=OLD - timedelta(days=index))
        for index in range(3)
    ]

    run(db, target)

    rows = sql(
        "SELECT id, aggregate_id, aggregate_type, event_type, event_version, payload,"
        " metadata, correlation_id, published_at FROM whatsapp_handler.outbox_events"
        " ORDER BY created_at"
    )
    schema = json.loads(
        (
            Path(__file__).resolve().parents[2] / "docs/events/user.gdpr.erased.schema.json"
        ).read_text()
    )
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for row, user_id in zip(rows, reversed(ids), strict=True):  # oldest first
        built = events.user_gdpr_erased(
            user_id, correlation_id="gdpr-t", erased_at=NOW, reason="GDPR_RETENTION"
        )
        validator.validate(row["payload"])
        assert row["payload"] == built.payload
        assert (
            UUID(str(row["aggregate_id"])),
            row["aggregate_type"],
            row["event_type"],
            row["event_version"],
            row["correlation_id"],
            row["metadata"],
            row["published_at"],
        ) == (
            built.aggregate_id,
            built.aggregate_type,
            built.event_type,
            built.event_version,
            built.correlation_id,
            None,
            None,
        )
    assert len({str(row["id"]) for row in rows}) == 3  # an event id of its own each


class _SteppingClock:
    """Every reading is 0.1 s after the previous one; a pause moves it on by its length."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        self.now += 0.1
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_the_job_pauses_after_each_batch_in_proportion_to_its_duration(
    db: Database, sql: Any, target: Any
) -> None:
    add_inactive_users(sql, 5)
    small = gdpr.RetentionPolicy(inactivity_days=180, batch_size=2, max_run_seconds=300)
    clock = _SteppingClock()

    summary = run(db, target, small, clock=clock, sleep=clock.sleep)

    assert (summary.anonymised, summary.batches, summary.status) == (5, 3, "complete")
    # Each batch "took" 0.1 s on this clock; no pause once nothing is left.
    ratio = gdpr._PAUSE_PER_BATCH_SECOND
    assert ratio > 0
    assert clock.pauses == [pytest.approx(0.1 * ratio)] * 3


def test_no_pause_is_taken_that_would_end_past_the_time_budget(
    db: Database, sql: Any, target: Any
) -> None:
    add_inactive_users(sql, 5)
    small = gdpr.RetentionPolicy(inactivity_days=180, batch_size=2, max_run_seconds=1)
    ticks = iter([0.0, 0.0, 0.9])  # start, before batch 1, after it (pause would pass 1.0)
    pauses: list[float] = []

    first = run(db, target, small, clock=lambda: next(ticks), sleep=pauses.append)

    assert (first.anonymised, first.batches, first.status) == (2, 1, "time_budget_spent")
    assert pauses == []


NEW_STATE = json.dumps({"state": "claim", "new": True})


def test_a_person_who_signs_up_again_during_the_run_keeps_their_new_state(
    db: Database, sql: Any, target: Any
) -> None:
    erased_first = add_user(sql, PHONE, last_active_at=OLD - timedelta(days=1))  # batch 1
    add_inactive_users(sql, 3)
    keys = redis_keys()
    client = target.client
    client.set(keys.conversation(PHONE), json.dumps({"state": "claim", "old": True}))
    small = gdpr.RetentionPolicy(inactivity_days=180, batch_size=2, max_run_seconds=300)
    clock = _SteppingClock()
    seen_between_batches: list[bool] = []

    def between_batches(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.pauses) == 1:
            # Batch 1 is committed: its state is gone already, not at the end of the run.
            seen_between_batches.append(bool(client.exists(keys.conversation(PHONE))))
            # The person signs up again (what the webhook writes) and starts a claim.
            add_user(sql, PHONE, last_active_at=NOW)
            client.set(keys.conversation(PHONE), NEW_STATE)
            client.set(keys.otp_rate(PHONE, 480_000), 1)

    summary = run(db, target, small, clock=clock, sleep=between_batches)

    assert (summary.anonymised, summary.batches, summary.status) == (4, 2, "complete")
    assert user(sql, erased_first)["anonymized_at"] == NOW
    assert seen_between_batches == [False]
    assert client.get(keys.conversation(PHONE)) == NEW_STATE
    assert client.get(keys.otp_rate(PHONE, 480_000)) == "1"
    (again,) = sql(
        "SELECT anonymized_at FROM whatsapp_handler.users WHERE phone_number = :p", p=PHONE
    )
    assert again == {"anonymized_at": None}


def test_a_number_with_a_live_row_again_keeps_its_state_when_its_erasure_is_forgotten(
    db: Database, sql: Any, target: Any
) -> None:
    # The window between a batch's commit and its clean-up: the person is back already.
    erased_id = add_user(sql, PHONE, last_active_at=OLD)
    with db.unit_of_work() as uow:
        erased = gdpr.erase_user(
            uow, erased_id, reason=gdpr.ErasureReason.RETENTION, now=NOW, correlation_id="c"
        )
        uow.commit()
    assert erased is not None
    keys = redis_keys()
    add_user(sql, PHONE, last_active_at=NOW)
    target.client.set(keys.conversation(PHONE), NEW_STATE)
    gone = "+447700900799"
    gone_id = add_user(sql, gone, last_active_at=OLD)
    with db.unit_of_work() as uow:
        also_erased = gdpr.erase_user(
            uow, gone_id, reason=gdpr.ErasureReason.RETENTION, now=NOW, correlation_id="c"
        )
        uow.commit()
    assert also_erased is not None
    target.client.set(keys.conversation(gone), "{}")
    progress = gdpr._Progress()

    gdpr.forget_erased(db, target, [erased, also_erased], progress)

    assert target.client.get(keys.conversation(PHONE)) == NEW_STATE
    assert not target.client.exists(keys.conversation(gone))
    assert progress.redis_keys_deleted == 1
