"""The pg8000 internals shared/pgwire.py relies on, checked on a real connection.

Each check is named after the internal it guards: when a pg8000 upgrade moves one, the
failing test's id and message say which, and shared/pgwire.py's docstring says what it
was for. The pipeline itself is tested through the unit of work in tests/test_db.py.
"""

from __future__ import annotations

import inspect
import io
import re
import socket
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pg8000.converters
import pg8000.core
import pg8000.dbapi
import pytest
from pg8000.core import FLUSH_MSG, CoreConnection

from shared import pgwire
from shared.db import connection_factory
from shared.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def connection(services: Any) -> Iterator[pg8000.dbapi.Connection]:
    connection = connection_factory(load_settings())()
    yield connection
    connection.close()


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_installed_pg8000_is_the_minor_version_pgwire_was_checked_against() -> None:
    installed = metadata.version("pg8000")
    assert installed.startswith(pgwire.CHECKED_AGAINST + "."), (
        f"pg8000 {installed} is installed; shared/pgwire.py was checked against "
        f"{pgwire.CHECKED_AGAINST}: re-check every internal its docstring lists, then "
        "raise CHECKED_AGAINST and the pin in pyproject.toml"
    )


def test_pyproject_pins_pg8000_to_that_minor_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if re.match(r"pg8000\b", d)]
    major, minor = (int(part) for part in pgwire.CHECKED_AGAINST.split("."))
    assert re.fullmatch(rf"pg8000>={major}\.{minor}(\.\d+)?,<{major}\.{minor + 1}", pin), pin


# --- pg8000's module-level internals ------------------------------------------------------
# (internal, check): each check raises AssertionError naming what moved.

MODULE_INTERNALS: list[tuple[str, Callable[[], None]]] = [
    (
        "core._write(sock, d)",
        lambda: _expect(parameters(pg8000.core._write) == ["sock", "d"], "core._write"),
    ),
    (
        "core._flush(sock)",
        lambda: _expect(parameters(pg8000.core._flush) == ["sock"], "core._flush"),
    ),
    (
        "core.EXECUTE_MSG",
        # Execute, length 9, unnamed portal, no row limit.
        lambda: _expect(
            pg8000.core.EXECUTE_MSG == b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00", "EXECUTE_MSG"
        ),
    ),
    ("core.SYNC_MSG", lambda: _expect(pg8000.core.SYNC_MSG == b"S\x00\x00\x00\x04", "SYNC_MSG")),
    (
        "core.Context(statement, columns=, input_funcs=)",
        lambda: _expect(
            {"statement", "columns", "input_funcs"} <= set(parameters(pg8000.core.Context))
            and _context_attributes() == {"rows", "row_count", "columns", "error"},
            "core.Context",
        ),
    ),
    (
        "CoreConnection.handle_messages(context)",
        lambda: _expect(
            parameters(CoreConnection.handle_messages) == ["self", "context"], "handle_messages"
        ),
    ),
    (
        "CoreConnection.prepare_statement(statement, oids)",
        lambda: _expect(
            parameters(CoreConnection.prepare_statement)[:3] == ["self", "statement", "oids"],
            "prepare_statement",
        ),
    ),
    (
        "dbapi.Connection._in_transaction",
        lambda: _expect(
            isinstance(
                inspect.getattr_static(pg8000.dbapi.Connection, "_in_transaction"), property
            ),
            "dbapi.Connection._in_transaction (a property)",
        ),
    ),
    (
        "converters.make_params(py_types, values)",
        lambda: _expect(
            parameters(pg8000.converters.make_params) == ["py_types", "values"], "make_params"
        ),
    ),
    (
        "converters.timestamp_in / timestamptz_in",
        lambda: _expect(
            pg8000.converters.timestamp_in("2026-01-02 03:04:05.5")
            == datetime(2026, 1, 2, 3, 4, 5, 500000)
            and pg8000.converters.timestamptz_in("2026-01-02 03:04:05+00")
            == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "converters.timestamp_in / timestamptz_in",
        ),
    ),
]


def _expect(holds: bool, internal: str) -> None:
    assert holds, f"pg8000 internal {internal} moved or changed: see shared/pgwire.py"


def _context_attributes() -> set[str]:
    context = pg8000.core.Context("SELECT 1", columns=[], input_funcs=[])
    return {"rows", "row_count", "columns", "error"} & set(vars(context))


@pytest.mark.parametrize(
    "check", [check for _, check in MODULE_INTERNALS], ids=[name for name, _ in MODULE_INTERNALS]
)
def test_pg8000_module_internal_is_where_pgwire_expects_it(check: Callable[[], None]) -> None:
    check()


# --- on a live connection -----------------------------------------------------------------


def test_connection_internal_usock_is_the_socket(connection: Any) -> None:
    assert isinstance(getattr(connection, "_usock", None), socket.socket), (
        "pg8000 internal Connection._usock moved: TCP_NODELAY is no longer set on Cloud SQL"
    )
    assert pgwire.raw_socket(connection) is connection._usock


def test_connection_internal_sock_is_a_buffered_file(connection: Any) -> None:
    sock = getattr(connection, "_sock", None)
    assert all(callable(getattr(sock, name, None)) for name in ("write", "flush", "read")), (
        "pg8000 internal Connection._sock moved or is no longer a file"
    )


def test_connection_internal_client_encoding_is_a_codec_name(connection: Any) -> None:
    encoding = getattr(connection, "_client_encoding", None)
    assert isinstance(encoding, str) and "é".encode(encoding), (
        "pg8000 internal Connection._client_encoding moved"
    )


def test_connection_internal_in_transaction_follows_begin_and_rollback(connection: Any) -> None:
    assert pgwire.in_transaction(connection) is False, "Connection._in_transaction"
    connection.execute_simple("begin")
    assert pgwire.in_transaction(connection) is True, "Connection._in_transaction"
    pgwire.rollback(connection)
    assert pgwire.in_transaction(connection) is False, "Connection._in_transaction"


def test_connection_internal_py_types_feeds_make_params(connection: Any) -> None:
    py_types = getattr(connection, "py_types", None)
    assert isinstance(py_types, dict), "pg8000 internal Connection.py_types moved"
    assert list(pg8000.converters.make_params(py_types, [1, "a", None])) == ["1", "a", None], (
        "pg8000 internal converters.make_params changed"
    )


def test_connection_internal_dict_holds_the_prepared_cache(connection: Any) -> None:
    statement = pgwire.prepared(connection, "SELECT :n::int AS n")
    assert connection.__dict__[pgwire.PREPARED_CACHE_KEY] == {"SELECT :n::int AS n": statement}
    assert pgwire.prepared(connection, "SELECT :n::int AS n") is statement


def test_prepare_statement_returns_a_null_terminated_name_columns_and_readers(
    connection: Any,
) -> None:
    name, columns, input_funcs = connection.prepare_statement("SELECT $1::int AS n", ())
    assert isinstance(name, bytes) and name.endswith(b"\x00"), "prepare_statement's name"
    assert [column["name"] for column in columns] == ["n"], "prepare_statement's columns"
    assert len(input_funcs) == 1, "prepare_statement's input_funcs"


def test_a_pipeline_on_a_real_connection_returns_the_last_statements_rows(
    connection: Any,
) -> None:
    segment = [
        *pgwire.begin_if_idle(connection),
        pgwire.bind(connection, "SELECT :n::int + 1 AS m", {"n": 41}),
    ]
    result = pgwire.run_pipeline(connection, [segment])
    assert result == pgwire.Result([{"m": 42}], 1)
    assert pgwire.in_transaction(connection)
    pgwire.run_pipeline(connection, [[pgwire.commit_statement(connection)]])
    assert not pgwire.in_transaction(connection)


@pytest.mark.parametrize(
    "values",
    [(), ("plain",), (None, "ünïcødé ✓", ""), tuple(str(n) for n in range(300))],
)
def test_bind_messages_are_byte_for_byte_what_pg8000_sends(values: tuple[str | None, ...]) -> None:
    # pg8000's send_BIND writes Bind then Flush; ours leaves the Flush out.
    written = io.BytesIO()
    connection = SimpleNamespace(_client_encoding="utf8", _sock=written)
    connection._send_message = lambda code, data: CoreConnection._send_message(
        connection, code, data
    )
    CoreConnection.send_BIND(connection, b"pg8000_statement_7\x00", values)
    assert written.getvalue() == pgwire.bind_message(b"pg8000_statement_7\x00", values, "utf8") + (
        FLUSH_MSG
    )
