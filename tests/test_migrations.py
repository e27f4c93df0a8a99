"""RFC-001 section 9.1, all seven cases, plus concurrency and the E.164 CHECK, on real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pg8000.native
import pytest

from tests.conftest import _admin
from tools import migrate

EXPECTED_INDEXES = {
    "idx_users_phone",
    "idx_users_verified",
    "idx_users_last_active",
    "idx_user_prefs_user",
    "idx_outbox_unpublished",
    "idx_outbox_aggregate",
    "idx_outbox_correlation",
}

# (column, data type, nullable, default contains)
USERS_COLUMNS = {
    "id": ("uuid", "NO", "gen_random_uuid()"),
    "phone_number": ("character varying", "NO", None),
    "display_name": ("character varying", "YES", None),
    "otp_secret": ("character varying", "YES", None),
    "otp_expires_at": ("timestamp with time zone", "YES", None),
    "otp_attempts": ("smallint", "NO", "0"),
    "verified_at": ("timestamp with time zone", "YES", None),
    "otp_verified_at": ("timestamp with time zone", "YES", None),
    "terms_accepted_at": ("timestamp with time zone", "YES", None),
    "terms_version": ("character varying", "YES", None),
    "last_active_at": ("timestamp with time zone", "NO", "now()"),
    "blocked_at": ("timestamp with time zone", "YES", None),
    "block_reason": ("text", "YES", None),
    "anonymized_at": ("timestamp with time zone", "YES", None),
    "created_at": ("timestamp with time zone", "NO", "now()"),
    "updated_at": ("timestamp with time zone", "NO", "now()"),
}
PREFERENCES_COLUMNS = {
    "id": ("uuid", "NO", "gen_random_uuid()"),
    "user_id": ("uuid", "NO", None),
    "notification_enabled": ("boolean", "NO", "true"),
    "language": ("character varying", "NO", "'en-GB'"),
    "timezone": ("character varying", "NO", "'Europe/London'"),
    "delay_threshold_minutes": ("integer", "NO", "15"),
    "auto_claim_enabled": ("boolean", "NO", "true"),
    "created_at": ("timestamp with time zone", "NO", "now()"),
    "updated_at": ("timestamp with time zone", "NO", "now()"),
}
OUTBOX_COLUMNS = {
    "id": ("uuid", "NO", "gen_random_uuid()"),
    "aggregate_id": ("uuid", "NO", None),
    "aggregate_type": ("character varying", "NO", None),
    "event_type": ("character varying", "NO", None),
    "event_version": ("character varying", "NO", "'1.0'"),
    "payload": ("jsonb", "NO", None),
    "metadata": ("jsonb", "YES", None),
    "correlation_id": ("character varying", "NO", None),
    "created_at": ("timestamp with time zone", "NO", "clock_timestamp()"),
    "published_at": ("timestamp with time zone", "YES", None),
    "attempts": ("integer", "NO", "0"),
    "last_error": ("text", "YES", None),
    "next_attempt_at": ("timestamp with time zone", "YES", None),
    "dead_lettered_at": ("timestamp with time zone", "YES", None),
}


def rows(
    connection: pg8000.native.Connection, statement: str, **params: Any
) -> list[dict[str, Any]]:
    result = connection.run(statement, **params)
    names = [column["name"] for column in connection.columns or []]
    return [dict(zip(names, row, strict=True)) for row in result or []]


def schema_tables(database_url: str) -> list[str]:
    """The tables of the whatsapp_handler schema, by name."""
    connection = _admin(database_url)
    try:
        found = rows(
            connection,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'whatsapp_handler'"
            " ORDER BY tablename",
        )
    finally:
        connection.close()
    return [row["tablename"] for row in found]


@pytest.fixture()
def migrated(fresh_database_url: str) -> Any:
    migrate.upgrade(fresh_database_url)
    connection = _admin(fresh_database_url)
    yield connection
    connection.close()


def test_up_creates_schema(migrated: pg8000.native.Connection) -> None:
    found = rows(
        migrated,
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'whatsapp_handler'",
    )
    assert found == [{"schema_name": "whatsapp_handler"}]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("users", USERS_COLUMNS),
        ("user_preferences", PREFERENCES_COLUMNS),
        ("outbox_events", OUTBOX_COLUMNS),
    ],
)
def test_tables_have_their_columns_types_nullability_and_defaults(
    migrated: pg8000.native.Connection, table: str, expected: dict[str, tuple[str, str, str | None]]
) -> None:
    columns = {
        row["column_name"]: row
        for row in rows(
            migrated,
            "SELECT column_name, data_type, is_nullable, column_default, character_maximum_length"
            " FROM information_schema.columns"
            " WHERE table_schema = 'whatsapp_handler' AND table_name = :table",
            table=table,
        )
    }
    assert set(columns) == set(expected)
    for name, (data_type, nullable, default) in expected.items():
        assert columns[name]["data_type"] == data_type, name
        assert columns[name]["is_nullable"] == nullable, name
        if default is None:
            assert columns[name]["column_default"] is None, name
        else:
            assert default in (columns[name]["column_default"] or ""), name


def test_column_lengths_follow_the_rfc(migrated: pg8000.native.Connection) -> None:
    lengths = {
        (row["table_name"], row["column_name"]): row["character_maximum_length"]
        for row in rows(
            migrated,
            "SELECT table_name, column_name, character_maximum_length"
            " FROM information_schema.columns WHERE table_schema = 'whatsapp_handler'"
            " AND character_maximum_length IS NOT NULL",
        )
    }
    assert lengths[("users", "phone_number")] == 20
    assert lengths[("users", "otp_secret")] == 64
    assert lengths[("users", "terms_version")] == 20
    assert lengths[("user_preferences", "language")] == 10
    assert lengths[("user_preferences", "timezone")] == 50
    assert lengths[("outbox_events", "event_version")] == 10
    assert lengths[("outbox_events", "correlation_id")] == 64


def test_all_seven_named_indexes_exist(migrated: pg8000.native.Connection) -> None:
    found = {
        row["indexname"]: row["indexdef"]
        for row in rows(
            migrated,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'whatsapp_handler'",
        )
    }
    assert EXPECTED_INDEXES <= set(found)
    assert "UNIQUE" in found["idx_users_phone"]
    assert "UNIQUE" in found["idx_user_prefs_user"]
    assert "WHERE (verified_at IS NOT NULL)" in found["idx_users_verified"]
    assert "WHERE (published_at IS NULL)" in found["idx_outbox_unpublished"]
    # No index merely duplicates another: one index on users.phone_number, not two.
    phone_indexes = [d for d in found.values() if "users" in d and "(phone_number)" in d]
    assert len(phone_indexes) == 1


def test_duplicate_phone_number_is_rejected(migrated: pg8000.native.Connection) -> None:
    migrated.run("INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123')")
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        migrated.run("INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123')")
    assert raised.value.args[0]["C"] == "23505"  # unique_violation
    assert "idx_users_phone" in raised.value.args[0]["M"]


@pytest.mark.parametrize(
    "phone_number",
    [
        "07700900123",
        "+0447700900123",
        "447700900123",
        "+44 7700 900123",
        "+4477009001234567",
        "+",
        "ANONYMIZED_1234",
        "ANON-XYZ",
        "",
    ],
)
def test_invalid_phone_numbers_are_rejected_by_the_database(
    migrated: pg8000.native.Connection, phone_number: str
) -> None:
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        migrated.run(
            "INSERT INTO whatsapp_handler.users (phone_number) VALUES (:p)", p=phone_number
        )
    assert raised.value.args[0]["C"] in ("23514", "22001")  # check_violation / too long


def test_anonymised_marker_fits_and_is_accepted(migrated: pg8000.native.Connection) -> None:
    migrated.run("INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123')")
    migrated.run(
        "UPDATE whatsapp_handler.users SET phone_number = 'ANON-' || left(replace(id::text, '-', ''), 15)"
    )
    (marker,) = migrated.run("SELECT phone_number FROM whatsapp_handler.users")[0]
    assert marker.startswith("ANON-") and len(marker) == 20


def test_deleting_a_user_cascades_to_preferences(migrated: pg8000.native.Connection) -> None:
    (user_id,) = migrated.run(
        "INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123') RETURNING id"
    )[0]
    migrated.run("INSERT INTO whatsapp_handler.user_preferences (user_id) VALUES (:u)", u=user_id)
    migrated.run("DELETE FROM whatsapp_handler.users WHERE id = :u", u=user_id)
    assert migrated.run("SELECT count(*) FROM whatsapp_handler.user_preferences")[0][0] == 0


def test_one_preferences_row_per_user(migrated: pg8000.native.Connection) -> None:
    (user_id,) = migrated.run(
        "INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123') RETURNING id"
    )[0]
    migrated.run("INSERT INTO whatsapp_handler.user_preferences (user_id) VALUES (:u)", u=user_id)
    with pytest.raises(pg8000.native.DatabaseError):
        migrated.run(
            "INSERT INTO whatsapp_handler.user_preferences (user_id) VALUES (:u)", u=user_id
        )


def test_partial_index_on_verified_users_is_used(migrated: pg8000.native.Connection) -> None:
    # 20,000 users, 1% verified: the planner prefers the partial index for the analytics query.
    migrated.run(
        "INSERT INTO whatsapp_handler.users (phone_number, verified_at)"
        " SELECT '+4477009' || lpad(n::text, 5, '0'),"
        "        CASE WHEN n % 100 = 0 THEN now() - (n || ' minutes')::interval END"
        "   FROM generate_series(1, 20000) AS n"
    )
    migrated.run("ANALYZE whatsapp_handler.users")
    plan = "\n".join(
        row[0]
        for row in migrated.run(
            "EXPLAIN SELECT count(*) FROM whatsapp_handler.users"
            " WHERE verified_at >= now() - interval '30 days'"
        )
    )
    assert "idx_users_verified" in plan


def test_unpublished_poll_uses_the_partial_index(migrated: pg8000.native.Connection) -> None:
    migrated.run(
        "INSERT INTO whatsapp_handler.outbox_events"
        " (aggregate_id, aggregate_type, event_type, payload, correlation_id, published_at)"
        " SELECT gen_random_uuid(), 'user', 'user.registered', '{}'::jsonb, 'c',"
        "        CASE WHEN n % 50 = 0 THEN NULL ELSE now() END"
        "   FROM generate_series(1, 20000) AS n"
    )
    migrated.run("ANALYZE whatsapp_handler.outbox_events")
    plan = "\n".join(
        row[0]
        for row in migrated.run(
            "EXPLAIN SELECT id FROM whatsapp_handler.outbox_events WHERE published_at IS NULL"
            " ORDER BY created_at LIMIT 100"
        )
    )
    assert "idx_outbox_unpublished" in plan


def test_down_drops_everything(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.downgrade(fresh_database_url)
    connection = _admin(fresh_database_url)
    try:
        assert (
            connection.run(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'whatsapp_handler'"
            )[0][0]
            == 0
        )
        assert connection.run("SELECT to_regclass(:n) IS NULL", n=migrate.VERSION_TABLE)[0][0]
    finally:
        connection.close()
    assert migrate.current_revision(fresh_database_url) is None


def test_up_twice_is_a_no_op(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.upgrade(fresh_database_url)
    assert migrate.current_revision(fresh_database_url) == migrate.head_revision()


def test_two_concurrent_ups_both_succeed_and_leave_one_copy(fresh_database_url: str) -> None:
    # Two processes, as two deploys would be: Alembic's context is per process.
    env = {"DATABASE_URL": fresh_database_url, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "tools.cli", "migrate", "up"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outcomes
    connection = _admin(fresh_database_url)
    try:
        assert connection.run(f"SELECT count(*) FROM {migrate.VERSION_TABLE}")[0][0] == 1
    finally:
        connection.close()
    assert schema_tables(fresh_database_url) == [
        "handled_messages",
        "notification_deliveries",
        "outbox_events",
        "submitted_journeys",
        "user_preferences",
        "users",
    ]


def test_cli_migrate_up_status_down(fresh_database_url: str) -> None:
    env = {"DATABASE_URL": fresh_database_url, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "tools.cli", "migrate"]
    up = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    status = subprocess.run(
        [*command, "status"], env=env, capture_output=True, text=True, check=False
    )
    assert "up to date" in status.stdout
    down = subprocess.run([*command, "down"], env=env, capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stderr
    assert "none (empty database)" in down.stdout


def test_cli_names_a_missing_database_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli", "migrate", "status"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "whatsapp-handler: DATABASE_URL is required (or CLOUD_SQL_INSTANCE, DB_USER and DB_NAME)"
    ]


def test_gdpr_selection_skips_anonymised_users_through_the_partial_index(
    migrated: pg8000.native.Connection,
) -> None:
    # 20,000 users long inactive, 19,000 of them already anonymised: the batch query reads
    # the 1,000 candidates from idx_users_retention instead of walking past the others.
    migrated.run(
        "INSERT INTO whatsapp_handler.users (phone_number, last_active_at, anonymized_at)"
        " SELECT '+4477009' || lpad(n::text, 5, '0'), now() - (n || ' days')::interval,"
        "        CASE WHEN n > 1000 THEN now() END"
        "   FROM generate_series(1, 20000) AS n"
    )
    migrated.run("ANALYZE whatsapp_handler.users")
    plan = "\n".join(
        row[0]
        for row in migrated.run(
            "EXPLAIN SELECT id FROM whatsapp_handler.users"
            " WHERE last_active_at < now() - interval '180 days' AND anonymized_at IS NULL"
            " ORDER BY last_active_at, id LIMIT 500 FOR UPDATE SKIP LOCKED"
        )
    )
    assert "idx_users_retention" in plan


def test_the_replay_record_table_refuses_what_is_no_message_sid_and_goes_down_alone(
    fresh_database_url: str,
) -> None:
    """0004 (issue 19): one row per MessageSid that changed state, of Twilio's shape only;
    its `down` drops that table and leaves 0003's schema whole."""
    migrate.upgrade(fresh_database_url)
    connection = _admin(fresh_database_url)
    try:
        sid = "SM" + "0a" * 16
        connection.run(
            "INSERT INTO whatsapp_handler.handled_messages VALUES (:sid, now())", sid=sid
        )
        with pytest.raises(pg8000.native.DatabaseError) as raised:
            connection.run(
                "INSERT INTO whatsapp_handler.handled_messages VALUES (:sid, now())", sid=sid
            )
        assert raised.value.args[0]["C"] == "23505"  # one row per MessageSid
        for bad in ("SMabc", "SM" + "A" * 32, "XX" + "0" * 32):
            with pytest.raises(pg8000.native.DatabaseError) as raised:
                connection.run(
                    "INSERT INTO whatsapp_handler.handled_messages VALUES (:sid, now())", sid=bad
                )
            assert raised.value.args[0]["C"] in ("23514", "22001"), bad
        indexes = rows(
            connection,
            "SELECT indexname FROM pg_indexes WHERE tablename = 'handled_messages'",
        )
        assert {row["indexname"] for row in indexes} == {
            "handled_messages_pkey",
            "idx_handled_messages_handled_at",
        }
    finally:
        connection.close()

    migrate.downgrade(fresh_database_url, "0003")

    assert schema_tables(fresh_database_url) == [
        "notification_deliveries",
        "outbox_events",
        "user_preferences",
        "users",
    ]
    assert migrate.current_revision(fresh_database_url) == "0003"


def test_the_journey_record_holds_digests_goes_with_its_user_and_goes_down_alone(
    fresh_database_url: str,
) -> None:
    """0005 (issue 20, D125): one row per user and journey digest, of SHA-256's shape only,
    deleted with its user; its `down` drops that table and leaves 0004's schema whole."""
    migrate.upgrade(fresh_database_url)
    connection = _admin(fresh_database_url)
    insert = "INSERT INTO whatsapp_handler.submitted_journeys VALUES (:user_id, :digest, now())"
    try:
        (user,) = rows(
            connection,
            "INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123')"
            " RETURNING id",
        )
        connection.run(insert, user_id=user["id"], digest="ab" * 32)
        with pytest.raises(pg8000.native.DatabaseError) as raised:
            connection.run(insert, user_id=user["id"], digest="ab" * 32)
        assert raised.value.args[0]["C"] == "23505"  # one row per user and journey
        for bad in ("Leeds|York", "AB" * 32, "ab" * 31):
            with pytest.raises(pg8000.native.DatabaseError) as raised:
                connection.run(insert, user_id=user["id"], digest=bad)
            assert raised.value.args[0]["C"] in ("23514", "22001"), bad
        connection.run("DELETE FROM whatsapp_handler.users")
        assert rows(connection, "SELECT * FROM whatsapp_handler.submitted_journeys") == []
    finally:
        connection.close()

    migrate.downgrade(fresh_database_url, "0004")

    tables = schema_tables(fresh_database_url)
    assert "submitted_journeys" not in tables and "handled_messages" in tables
    assert migrate.current_revision(fresh_database_url) == "0004"
