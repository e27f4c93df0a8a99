"""PostgreSQL access: a small thread-safe pool of pg8000 connections and a unit of work.

- ``DATABASE_URL`` when set; otherwise the Cloud SQL Python Connector with IAM auth,
  imported only on that path (it costs ~0.8 s of cold start).
- Connections live across invocations of a warm instance and are shared safely by the
  threads functions-framework serves requests on (each unit of work borrows one).
- After a database restart the pooled connections are dead. A unit of work whose first
  statement fails with a connection error throws that connection away and retries on a
  fresh one, so callers see no error; a failure later in a transaction is raised as
  DependencyUnavailable (retrying then could repeat half a transaction's effects).
- Named queries run as prepared statements, pipelined (BEGIN with the first statement,
  outbox rows with the next one or the COMMIT): that code reaches into pg8000's
  internals and lives in ``shared/pgwire.py``, which lists each one it touches.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit
from uuid import UUID

import msgspec
import pg8000.dbapi
from pg8000.exceptions import DatabaseError, InterfaceError

from shared import pgwire
from shared.errors import DependencyUnavailable
from shared.events import OutboxEvent
from shared.logs import get_logger
from shared.queries import sql
from shared.settings import Settings

# Every query uses :name parameters (shared/sql/*.sql).
pg8000.dbapi.paramstyle = "named"

log = get_logger("db")

Row = dict[str, Any]
_T = TypeVar("_T")
ConnectionFactory = Callable[[], pg8000.dbapi.Connection]

# SQLSTATE classes that mean "the server went away", not "your SQL is wrong".
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def error_field(error: DatabaseError, field: str) -> str | None:
    """A field of PostgreSQL's error answer ("C": the SQLSTATE, "M": the message); pg8000
    puts them in ``args[0]``."""
    fields = error.args[0] if error.args else None
    return str(fields[field]) if isinstance(fields, dict) and field in fields else None


def is_connection_error(error: BaseException) -> bool:
    """True when the connection, not the statement, is at fault: it is then discarded."""
    if isinstance(error, InterfaceError | OSError | ConnectionError):
        return True
    if isinstance(error, DatabaseError):
        code = error_field(error, "C") or ""
        # A migration changed a column a prepared statement returns: that connection's
        # statements are stale, a fresh connection prepares them anew.
        stale = code == "0A000" and "cached plan" in (error_field(error, "M") or "")
        return stale or code.startswith(_CONNECTION_SQLSTATES)
    return False


# TLS to PostgreSQL on the same machine protects nothing and costs ~16 ms per connection
# (pg8000 builds a fresh default SSL context each time), so a loopback DATABASE_URL
# without an explicit sslmode connects in plain text. Anything else follows libpq.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def ssl_context_for(host: str, sslmode: str | None) -> ssl.SSLContext | bool | None:
    """pg8000's ``ssl_context`` for a libpq ``sslmode``: False plain, None "prefer"."""
    match sslmode:
        case None:
            return False if host in _LOOPBACK_HOSTS else None
        case "disable" | "allow":
            return False
        case "prefer":
            return None
        case "require":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        case "verify-ca" | "verify-full":
            context = ssl.create_default_context()
            context.check_hostname = sslmode == "verify-full"
            return context
    raise ValueError(f"DATABASE_URL sslmode {sslmode!r} is not a libpq sslmode")


def _without_nagle(sock: socket.socket) -> socket.socket:
    """TCP_NODELAY and keepalive on a connection's socket.

    pg8000 writes a large Bind (a GDPR batch's 500 ids, a batch of outbox rows) in more
    than one segment; with Nagle's algorithm the last one waits for the server's delayed
    ACK, ~40 ms per statement (measured: 45 ms -> 3 ms for a 500-id DELETE).
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def connection_factory(settings: Settings) -> ConnectionFactory:
    """How to open one connection, decided once from the settings."""
    # Sent in the startup packet, so a new connection costs no extra round trips.
    session = {
        "application_name": "whatsapp-handler",
        "startup_params": {"statement_timeout": str(int(settings.db_statement_timeout_ms))},
    }
    if settings.database_url:
        parts = urlsplit(settings.database_url)
        host = parts.hostname or "127.0.0.1"
        sslmode = dict(parse_qsl(parts.query)).get("sslmode")
        kwargs: dict[str, Any] = {
            "user": unquote(parts.username or "postgres"),
            "host": host,
            "port": parts.port or 5432,
            "database": unquote(parts.path.lstrip("/") or "postgres"),
            "timeout": settings.db_connect_timeout_seconds,
            "ssl_context": ssl_context_for(host, sslmode),
            **session,
        }
        if parts.password:
            kwargs["password"] = unquote(parts.password)

        def connect() -> pg8000.dbapi.Connection:
            sock = socket.create_connection((host, kwargs["port"]), kwargs["timeout"])
            connection = pg8000.dbapi.connect(**kwargs, sock=_without_nagle(sock))
            return pgwire.with_fast_timestamps(connection)

        return connect

    # Production path: Cloud SQL with IAM database authentication, no password anywhere.
    from google.cloud.sql.connector import Connector, IPTypes

    connector = Connector(ip_type=IPTypes.PRIVATE, refresh_strategy="lazy")
    instance, user, database = settings.cloud_sql_instance, settings.db_user, settings.db_name
    if not (instance and user and database):
        raise ValueError(
            "CLOUD_SQL_INSTANCE, DB_USER and DB_NAME are required without DATABASE_URL"
        )

    def connect_cloud_sql() -> pg8000.dbapi.Connection:
        connection: pg8000.dbapi.Connection = connector.connect(
            instance, "pg8000", user=user, db=database, enable_iam_auth=True, **session
        )
        # The connector opens the socket itself; pg8000 keeps it (see pgwire.raw_socket).
        raw = pgwire.raw_socket(connection)
        if raw is not None:
            _without_nagle(raw)
        return pgwire.with_fast_timestamps(connection)

    return connect_cloud_sql


class ConnectionPool:
    """At most ``max_size`` connections; borrowers wait (bounded) when all are out."""

    def __init__(self, connect: ConnectionFactory, max_size: int, wait_seconds: float = 10.0):
        self._connect = connect
        self._max_size = max_size
        self._wait_seconds = wait_seconds
        self._idle: list[pg8000.dbapi.Connection] = []
        self._open = 0
        self._condition = threading.Condition()

    def acquire(self) -> pg8000.dbapi.Connection:
        deadline = time.monotonic() + self._wait_seconds
        with self._condition:
            while not self._idle and self._open >= self._max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DependencyUnavailable("database pool exhausted")
                self._condition.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except Exception as error:
            with self._condition:
                self._open -= 1
                self._condition.notify()
            raise DependencyUnavailable("database unreachable") from error

    def release(self, connection: pg8000.dbapi.Connection, *, broken: bool = False) -> None:
        if broken:
            _close_quietly(connection)
            with self._condition:
                self._open -= 1
                self._condition.notify()
            return
        with self._condition:
            self._idle.append(connection)
            self._condition.notify()

    def discard_idle(self) -> None:
        """Close every idle connection (borrowed ones come back as usual)."""
        with self._condition:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._condition.notify_all()
        for connection in idle:
            _close_quietly(connection)

    def close(self) -> None:
        self.discard_idle()

    @contextmanager
    def connection(self) -> Iterator[pg8000.dbapi.Connection]:
        connection = self.acquire()
        broken = False
        try:
            yield connection
        except BaseException as error:
            broken = is_connection_error(error)
            if not broken:
                _rollback_quietly(connection)
            raise
        finally:
            self.release(connection, broken=broken)


def _close_quietly(connection: pg8000.dbapi.Connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: S110 - closing a dead socket may fail; it is going anyway
        pass


def _rollback_quietly(connection: pg8000.dbapi.Connection) -> None:
    try:
        pgwire.rollback(connection)
    except Exception:  # noqa: S110 - the connection is returned broken-or-clean either way
        pass


def _to_db(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    return value


def _to_db_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _to_db(value) for key, value in params.items()}


class Executor(Protocol):
    def fetch_all(self, query_name: str, **params: Any) -> list[Row]: ...
    def fetch_one(self, query_name: str, **params: Any) -> Row | None: ...
    def execute(self, query_name: str, **params: Any) -> int: ...
    def execute_later(self, query_name: str, **params: Any) -> None: ...


class UnitOfWork:
    """One transaction. Leaving the ``with`` block without ``commit()`` rolls back.

    ``execute_later`` statements (outbox rows) are sent with the next statement or the
    COMMIT, in the same round trip and in the order they were asked for.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._connection: pg8000.dbapi.Connection | None = None
        self._statements_run = 0
        self._committed = False
        self._later: list[tuple[str, Mapping[str, Any]]] = []
        self.outbox = OutboxRepository(self)

    def __enter__(self) -> UnitOfWork:
        self._connection = self._pool.acquire()
        self._statements_run = 0
        self._committed = False
        self._later = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._later = []
        broken = exc is not None and is_connection_error(exc)
        if not self._committed and not broken:
            try:
                pgwire.rollback(connection)
            except Exception as error:
                broken = is_connection_error(error)
        self._pool.release(connection, broken=broken)

    def commit(self) -> None:
        """The statements waiting to be sent, then COMMIT: one round trip, all or none."""
        connection = self._require_connection()
        if not self._later and not pgwire.in_transaction(connection):
            self._committed = True  # nothing was written: nothing to send
            return
        started = time.perf_counter()
        try:
            # Inside the try: a statement's first use on this connection prepares it,
            # which is a round trip of its own that can meet a dead connection too.
            segment = [
                *pgwire.begin_if_idle(connection),
                *self._bind_later(connection),
                pgwire.commit_statement(connection),
            ]
            pgwire.run_pipeline(connection, [segment])
        except Exception as error:
            if is_connection_error(error):
                raise DependencyUnavailable("database connection lost at commit") from error
            raise
        self._log_later(started)
        self._committed = True

    def rollback(self) -> None:
        self._later = []
        pgwire.rollback(self._require_connection())

    def _require_connection(self) -> pg8000.dbapi.Connection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside its with-block")
        return self._connection

    def _on_live_connection(self, run: Callable[[pg8000.dbapi.Connection], _T]) -> _T:
        for attempt in (1, 2):
            connection = self._require_connection()
            try:
                result = run(connection)
            except Exception as error:
                if not is_connection_error(error):
                    raise
                if attempt == 1 and self._statements_run == 0:
                    # A stale pooled connection (the database restarted): nothing of this
                    # transaction has happened yet, so a fresh connection is a clean retry.
                    # The other idle ones died with it, so they go too.
                    self._pool.release(connection, broken=True)
                    self._pool.discard_idle()
                    self._connection = None
                    self._connection = self._pool.acquire()
                    continue
                raise DependencyUnavailable("database connection lost") from error
            self._statements_run += 1
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def run_sql(self, query_text: str, **params: Any) -> list[Row]:
        """Run literal SQL (tests, migrations checks); application code names its queries."""
        bound = _to_db_params(params)
        if self._later:
            started = time.perf_counter()
            self._on_live_connection(
                lambda connection: pgwire.run_pipeline(
                    connection, [[*pgwire.begin_if_idle(connection), *self._bind_later(connection)]]
                )
            )
            self._log_later(started)

        def run(connection: pg8000.dbapi.Connection) -> list[Row]:
            cursor = connection.cursor()
            cursor.execute(query_text, bound)
            return _rows(cursor)

        return self._on_live_connection(run)

    def _run_named(self, query_name: str, params: Mapping[str, Any]) -> pgwire.Result:
        started = time.perf_counter()
        text = sql(query_name)

        def run(connection: pg8000.dbapi.Connection) -> pgwire.Result:
            begin = pgwire.begin_if_idle(connection)
            statement = pgwire.bind(connection, text, _to_db_params(params))
            if not self._later:
                return pgwire.run_pipeline(connection, [[*begin, statement]])
            # The waiting statements in a segment of their own: their row counts stay
            # out of this statement's.
            return pgwire.run_pipeline(
                connection, [[*begin, *self._bind_later(connection)], [statement]]
            )

        result = self._on_live_connection(run)
        self._log_later(started)
        _log_query(query_name, started)
        return result

    def execute_later(self, query_name: str, **params: Any) -> None:
        """Run this with the next statement or the COMMIT, whichever comes first: for
        statements whose outcome nobody reads (an error still fails the transaction)."""
        self._require_connection()
        self._later.append((query_name, params))

    def _bind_later(self, connection: pg8000.dbapi.Connection) -> list[pgwire.Bound]:
        return [
            pgwire.bind(connection, sql(name), _to_db_params(params))
            for name, params in self._later
        ]

    def _log_later(self, started: float) -> None:
        """The waiting statements were sent (in the round trip that began at ``started``)."""
        for name, _ in self._later:
            _log_query(name, started)
        self._later = []

    def fetch_all(self, query_name: str, **params: Any) -> list[Row]:
        return self._run_named(query_name, params).rows

    def fetch_one(self, query_name: str, **params: Any) -> Row | None:
        rows = self.fetch_all(query_name, **params)
        return rows[0] if rows else None

    def execute(self, query_name: str, **params: Any) -> int:
        return self._run_named(query_name, params).row_count


def _log_query(query_name: str, started: float) -> None:
    # RFC 8.2's whatsapp_db_query_duration_seconds{query=...}: a log-based metric
    # (terraform/monitoring.tf) built on this field.
    if not log.is_enabled(logging.INFO):
        return
    log.info(
        "query",
        action="db.query",
        query=query_name,
        whatsapp_db_query_duration_seconds=round(time.perf_counter() - started, 6),
    )


def _rows(cursor: pg8000.dbapi.Cursor) -> list[Row]:
    if cursor.description is None:
        return []
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# Compact JSON with sorted keys, as json.dumps(sort_keys=True) writes it, ~10x faster: an
# outbox row is written for most webhook messages.
_OUTBOX_JSON = msgspec.json.Encoder(order="sorted")


def _json_text(value: Any) -> str:
    return _OUTBOX_JSON.encode(value).decode()


class OutboxRepository:
    def __init__(self, executor: Executor) -> None:
        self._db = executor

    def add(self, event: OutboxEvent) -> None:
        """Written at the commit, in the same round trip (see UnitOfWork)."""
        self._db.execute_later(
            "insert_outbox_event",
            id=event.event_id,
            aggregate_id=event.aggregate_id,
            aggregate_type=event.aggregate_type,
            event_type=event.event_type,
            event_version=event.event_version,
            payload=_json_text(event.payload),
            metadata=None if event.metadata is None else _json_text(event.metadata),
            correlation_id=event.correlation_id,
        )


class Database:
    """Built once per function instance (see each main.py's ``deps()``)."""

    def __init__(self, settings: Settings, connect: ConnectionFactory | None = None) -> None:
        self.pool = ConnectionPool(connect or connection_factory(settings), settings.db_pool_size)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.pool)

    def ping(self) -> None:
        """Raise DependencyUnavailable unless a round trip to the database works."""
        try:
            with self.unit_of_work() as uow:
                uow.run_sql("SELECT 1")
        except DependencyUnavailable:
            raise
        except Exception as error:
            raise DependencyUnavailable("database unreachable") from error

    def close(self) -> None:
        self.pool.close()
