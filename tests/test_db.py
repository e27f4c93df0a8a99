"""The data-access layer on real PostgreSQL: unit of work, pool, reconnection, queries."""

from __future__ import annotations

import ssl
import threading
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from shared import events
from shared.db import Database, ssl_context_for
from shared.errors import DependencyUnavailable
from shared.queries import all_queries, parse_queries
from shared.settings import load_settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def insert_user(uow: Any, phone: str) -> Any:
    """The new user's row (its id), or None when the number is taken (ON CONFLICT)."""
    return uow.fetch_one(
        "insert_user", phone_number=phone, terms_version="v1", terms_accepted_at=NOW, now=NOW
    )


def register(database: Database, phone: str = "+447700900123") -> Any:
    with database.unit_of_work() as uow:
        row = insert_user(uow, phone)
        assert row is not None
        uow.execute("insert_default_preferences", user_id=row["id"])
        uow.outbox.add(
            events.user_registered(
                row["id"], correlation_id="corr-1", terms_version="v1", registered_at=NOW
            )
        )
        uow.commit()
    return row["id"]


def test_change_and_outbox_row_commit_together(db: Database, sql: Any) -> None:
    user_id = register(db)
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 1}]
    (event,) = sql(
        "SELECT event_type, aggregate_id, correlation_id, payload FROM whatsapp_handler.outbox_events"
    )
    assert event["event_type"] == "user.registered"
    assert str(event["aggregate_id"]) == str(user_id)
    assert event["correlation_id"] == "corr-1"
    assert event["payload"]["user_id"] == str(user_id)


def test_leaving_without_commit_rolls_back_both(db: Database, sql: Any) -> None:
    with db.unit_of_work() as uow:
        row = insert_user(uow, "+447700900124")
        assert row is not None
        uow.outbox.add(
            events.user_registered(
                row["id"], correlation_id="c", terms_version="v1", registered_at=NOW
            )
        )
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]


def test_failure_mid_transaction_leaves_nothing(db: Database, sql: Any) -> None:
    register(db)
    with pytest.raises(Exception, match="idx_users_phone"), db.unit_of_work() as uow:
        uow.outbox.add(events.user_verified(uuid4(), correlation_id="c", verified_at=NOW))
        uow.run_sql("INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123')")
        uow.commit()
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 1}]


def test_concurrent_registration_of_one_number_makes_one_user(db: Database, sql: Any) -> None:
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def attempt() -> None:
        barrier.wait()
        with db.unit_of_work() as uow:
            row = insert_user(uow, "+447700900125")
            uow.commit()
        results.append(row)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for row in results if row is not None) == 1
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 1}]


def test_pool_recovers_after_connections_are_killed(db: Database, sql: Any) -> None:
    register(db)
    # What a database restart does to pooled connections (of this run's database only:
    # the server may be shared with other runs).
    sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'whatsapp-handler' AND pid <> pg_backend_pid()"
        " AND datname = current_database()"
    )
    with db.unit_of_work() as uow:
        assert uow.fetch_one("find_user_by_phone", phone_number="+447700900123") is not None
    db.ping()


def test_preferences_defaults_and_switch(db: Database) -> None:
    user_id = register(db)
    with db.unit_of_work() as uow:
        preferences = uow.fetch_one("find_preferences", user_id=user_id)
        assert preferences is not None
        assert preferences["notification_enabled"] is True
        assert preferences["language"] == "en-GB"
        assert preferences["delay_threshold_minutes"] == 15
        uow.execute("set_notification_enabled", user_id=user_id, enabled=False, now=NOW)
        uow.commit()
    with db.unit_of_work() as uow:
        preferences = uow.fetch_one("find_preferences", user_id=user_id)
        assert preferences is not None and preferences["notification_enabled"] is False


def test_unpublished_poll_returns_oldest_first(db: Database) -> None:
    user_id = register(db)
    with db.unit_of_work() as uow:
        uow.outbox.add(events.user_verified(user_id, correlation_id="corr-2", verified_at=NOW))
        uow.commit()
    with db.unit_of_work() as uow:
        types = [row["event_type"] for row in uow.fetch_all("list_unpublished_events", limit=10)]
    assert types == ["user.registered", "user.verified"]


def test_every_named_query_parses_and_has_a_description() -> None:
    queries = all_queries()
    assert {"find_user_by_phone", "insert_outbox_event", "list_unpublished_events"} <= set(queries)
    assert all(query.description for query in queries.values())


def test_duplicate_query_names_are_refused() -> None:
    text = "-- name: a\n-- one\nSELECT 1;\n-- name: a\n-- two\nSELECT 2;\n"
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries(text)


def test_connections_carry_the_session_settings_from_the_startup_packet(db: Database) -> None:
    with db.unit_of_work() as uow:
        (row,) = uow.run_sql(
            "SELECT current_setting('statement_timeout') AS timeout,"
            " current_setting('application_name') AS app,"
            " (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl"
        )
    assert row == {"timeout": "5s", "app": "whatsapp-handler", "ssl": False}


@pytest.mark.parametrize(
    ("host", "sslmode", "expected"),
    [
        ("127.0.0.1", None, False),  # loopback: TLS protects nothing here
        ("localhost", None, False),
        ("10.1.2.3", None, None),  # elsewhere: libpq's default, "prefer"
        ("10.1.2.3", "disable", False),
        ("127.0.0.1", "prefer", None),
    ],
)
def test_sslmode_maps_to_pg8000_as_libpq_reads_it(
    host: str, sslmode: str | None, expected: object
) -> None:
    assert ssl_context_for(host, sslmode) is expected


def test_sslmode_require_encrypts_and_verify_full_checks_the_host() -> None:
    required = ssl_context_for("10.1.2.3", "require")
    verified = ssl_context_for("10.1.2.3", "verify-full")
    assert isinstance(required, ssl.SSLContext) and required.verify_mode == ssl.CERT_NONE
    assert isinstance(verified, ssl.SSLContext) and verified.check_hostname
    with pytest.raises(ValueError, match="sslmode 'sometimes'"):
        ssl_context_for("10.1.2.3", "sometimes")


def test_a_migration_that_changes_a_returned_column_costs_one_fresh_connection(
    db: Database, sql: Any
) -> None:
    register(db)
    with db.unit_of_work() as uow:  # prepares find_user_by_phone on a pooled connection
        assert uow.fetch_one("find_user_by_phone", phone_number="+447700900123") is not None
    sql("ALTER TABLE whatsapp_handler.users ALTER COLUMN display_name TYPE VARCHAR(200)")
    try:
        with db.unit_of_work() as uow:  # stale statement: retried on a fresh connection
            row = uow.fetch_one("find_user_by_phone", phone_number="+447700900123")
        assert row is not None and row["phone_number"] == "+447700900123"
    finally:
        sql("ALTER TABLE whatsapp_handler.users ALTER COLUMN display_name TYPE VARCHAR(100)")


# --- statements that travel with the next one or the COMMIT ---------------------------------


def test_an_outbox_row_is_seen_by_the_statements_after_it(db: Database, sql: Any) -> None:
    user_id = uuid4()
    with db.unit_of_work() as uow:
        uow.outbox.add(events.user_verified(user_id, correlation_id="c", verified_at=NOW))
        (row,) = uow.fetch_all("list_events_for_aggregate", aggregate_id=user_id)
        assert row["event_type"] == "user.verified"
        # Not committed yet: another connection does not see it.
        assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]
        uow.commit()
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 1}]


def test_a_statements_row_count_leaves_out_the_rows_sent_before_it(db: Database) -> None:
    user_id = register(db)
    with db.unit_of_work() as uow:
        uow.outbox.add(events.user_verified(user_id, correlation_id="c", verified_at=NOW))
        uow.outbox.add(events.user_verified(user_id, correlation_id="d", verified_at=NOW))
        assert uow.execute("accept_terms", user_id=user_id, terms_version="v2", now=NOW) == 1
        uow.commit()


def test_an_outbox_row_failing_at_the_commit_takes_the_whole_transaction(
    db: Database, sql: Any
) -> None:
    event = events.user_verified(uuid4(), correlation_id="c", verified_at=NOW)
    with db.unit_of_work() as uow:
        uow.outbox.add(event)
        uow.commit()

    with pytest.raises(Exception, match="outbox_events_pkey"), db.unit_of_work() as uow:
        row = insert_user(uow, "+447700900125")
        assert row is not None
        uow.outbox.add(event)  # the same event id again: fails, but only at the commit
        uow.commit()

    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 0}]
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 1}]
    register(db)  # the connection went back to the pool clean
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.users") == [{"n": 1}]


def test_a_statement_sent_with_the_commit_that_returns_rows_leaves_the_connection_clean(
    db: Database, sql: Any
) -> None:
    user_id = register(db)
    for _ in range(3):  # the pool's connection is reused: nothing may be left unread on it
        with db.unit_of_work() as uow:
            uow.execute_later("find_user_by_id", user_id=user_id)
            (row,) = uow.fetch_all("find_user_by_id", user_id=user_id)
            assert row["id"] == user_id
            uow.execute_later("find_user_by_phone", phone_number="+447700900123")
            uow.commit()
    with db.unit_of_work() as uow:
        assert uow.fetch_one("find_user_by_phone", phone_number="+447700900123") is not None


def test_a_connection_lost_just_before_the_commit_is_a_503_not_a_crash(
    clean_state: Any, sql: Any
) -> None:
    database = Database(load_settings())  # fresh connections: COMMIT not yet prepared
    try:
        with pytest.raises(DependencyUnavailable), database.unit_of_work() as uow:
            (row,) = uow.run_sql("SELECT pg_backend_pid() AS pid")
            uow.outbox.add(events.user_verified(uuid4(), correlation_id="c", verified_at=NOW))
            sql("SELECT pg_terminate_backend(:pid)", pid=row["pid"])
            uow.commit()
        assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]
        with database.unit_of_work() as uow:  # the dead connection did not go back
            assert uow.fetch_one("find_user_by_phone", phone_number="+447700900199") is None
    finally:
        database.close()
