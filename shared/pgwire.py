"""What we do with pg8000 beyond its public API, in one place (``shared/db.py`` uses it).

Checked against pg8000 1.31 (``CHECKED_AGAINST``; pyproject.toml pins the minor version).
``tests/test_pgwire.py`` checks every internal below on a real connection and fails
naming the one that moved: read that test's failure, then this list, before a new pg8000.

Internals touched (pg8000 1.31 ``core.py`` / ``dbapi.py``), and why:

- ``Connection._usock`` (the socket): ``raw_socket``. The Cloud SQL connector opens the
  socket itself, so TCP_NODELAY can only be set on the one pg8000 keeps.
- ``Connection._in_transaction`` (a dbapi property): ``in_transaction``,
  ``begin_if_idle``, ``rollback``. dbapi has no public flag for "a transaction is open",
  and we send BEGIN ourselves (in the first statement's write) and ROLLBACK only when owed.
- ``Connection._sock`` (the buffered file over the socket), ``core._write(sock, data)``,
  ``core._flush(sock)``: ``run_pipeline`` writes a whole pipeline at once, as pg8000
  writes its own messages (with its OSError -> InterfaceError mapping).
- ``Connection._client_encoding``: the encoding ``bind_message`` encodes parameters in,
  as ``send_BIND`` does.
- ``core.EXECUTE_MSG``, ``core.SYNC_MSG``: the prebuilt Execute (unnamed portal, all
  rows) and Sync messages.
- ``core.Context(statement, columns=, input_funcs=)`` and its ``rows``, ``row_count``,
  ``columns``, ``error``; ``CoreConnection.handle_messages(context)``: replies are read
  by pg8000's own reader, up to ReadyForQuery, into a context of ours.
- ``CoreConnection.prepare_statement(statement, oids)`` -> ``(name, columns,
  input_funcs)``, with ``name`` null-terminated: each named query is prepared once.
- ``Connection.py_types`` with ``converters.make_params(py_types, values)``: Python values
  to text parameters exactly as pg8000 converts them.
- ``connection.__dict__["_whatsapp_prepared"]``: our per-connection cache of prepared
  statements, kept on the connection so it dies with it (pg8000's classes have no
  ``__slots__``).
- ``CoreConnection.send_BIND``'s message layout: ``bind_message`` builds the same bytes
  (tested byte for byte), without the Flush pg8000 sends after it.
- ``converters.timestamp_in`` / ``timestamptz_in`` (str -> datetime): the fallback of our
  faster timestamp readers, for the forms ``datetime.fromisoformat`` does not read.

Public API used alongside (documented, not listed above): ``dbapi.connect``,
``Connection.register_in_adapter``, ``execute_simple``, ``autocommit``, ``cursor``, and
``pg8000.native.to_statement``.

**Why a pipeline.** pg8000's dbapi cursor re-parses the SQL text for parameters on every
call (~0.1 ms of Python) and sends each statement as Parse, Describe, then Bind/Execute:
three round trips. A named query is instead prepared once per connection; every later run
is a Bind/Execute. And pg8000 waits for each statement's reply before sending the next, so
BEGIN, the statements nobody reads a result of (outbox rows) and COMMIT would each cost a
round trip of their own. They travel instead in the same write as the next statement
(BEGIN, outbox rows) or as the COMMIT (outbox rows): a message's unit of work is two round
trips, not four. pg8000 has no pipeline API, and its send_BIND/send_EXECUTE follow every
message with a Flush, which makes the server answer each one in a TCP segment of its own
(and wake us for each): so the Bind messages are written here, in the protocol's format
(https://www.postgresql.org/docs/current/protocol-message-formats.html), and the replies
read by pg8000's own handle_messages. Measured: two round trips of a message's unit of
work, 296 -> 194 us of client CPU without the Flushes.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import pg8000.converters as pg8000_converters
import pg8000.core as pg8000_core
import pg8000.dbapi
from pg8000.converters import make_params
from pg8000.exceptions import InterfaceError
from pg8000.native import to_statement

# The pg8000 minor version whose internals this module was checked against.
CHECKED_AGAINST = "1.31"


_BEGIN = "BEGIN"
_COMMIT = "COMMIT"
# Where ``prepared`` keeps a connection's prepared statements.
PREPARED_CACHE_KEY = "_whatsapp_prepared"


def raw_socket(connection: pg8000.dbapi.Connection) -> socket.socket | None:
    """The socket under a connection (``_usock``), when it is a plain socket."""
    raw = getattr(connection, "_usock", None)
    return raw if isinstance(raw, socket.socket) else None


def in_transaction(connection: pg8000.dbapi.Connection) -> bool:
    return bool(connection._in_transaction)


def rollback(connection: pg8000.dbapi.Connection) -> None:
    """ROLLBACK over the simple protocol: one round trip (dbapi's rollback() takes three)."""
    if connection._in_transaction:
        connection.execute_simple("rollback")


# --- faster timestamps -------------------------------------------------------------------
# PostgreSQL type oids whose text form pg8000 parses with datetime.strptime (~8 us a
# value, the most expensive part of reading a user row); datetime.fromisoformat reads the
# ISO form PostgreSQL sends 60 times faster. Anything it does not know (infinity, BC
# dates, out-of-range years) goes to pg8000's own parser as before.
_TIMESTAMP_OID, _TIMESTAMPTZ_OID = 1114, 1184


def _timestamp_reader(fallback: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return fallback(text)

    return read


_read_timestamp = _timestamp_reader(pg8000_converters.timestamp_in)
_read_timestamptz = _timestamp_reader(pg8000_converters.timestamptz_in)


def with_fast_timestamps(connection: pg8000.dbapi.Connection) -> pg8000.dbapi.Connection:
    connection.register_in_adapter(_TIMESTAMP_OID, _read_timestamp)
    connection.register_in_adapter(_TIMESTAMPTZ_OID, _read_timestamptz)
    return connection


# --- named queries as prepared statements, pipelined (see the module docstring) ----------


@dataclass(frozen=True)
class Result:
    rows: list[dict[str, Any]]
    row_count: int


@dataclass(frozen=True)
class Prepared:
    name: bytes
    columns: Any
    input_funcs: Any
    statement: str
    make_values: Callable[[Mapping[str, Any]], Any]


# A statement ready to send: the prepared statement and its values, converted.
Bound = tuple[Prepared, Sequence[Any]]

# ``:name`` parameters to ``$n`` (and a values builder), once per query text.
_positional = cache(to_statement)


def prepared(connection: pg8000.dbapi.Connection, query_text: str) -> Prepared:
    prepared_here: dict[str, Prepared] = connection.__dict__.setdefault(PREPARED_CACHE_KEY, {})
    statement = prepared_here.get(query_text)
    if statement is None:
        text, make_values = _positional(query_text)
        name, columns, input_funcs = connection.prepare_statement(text, ())
        statement = Prepared(name, columns, input_funcs, text, make_values)
        prepared_here[query_text] = statement
    return statement


def bind(connection: pg8000.dbapi.Connection, query_text: str, params: Mapping[str, Any]) -> Bound:
    """``query_text`` with ``params`` (already in pg8000's types), ready to send."""
    statement = prepared(connection, query_text)
    values = make_params(connection.py_types, statement.make_values(params))
    return statement, values


def begin_if_idle(connection: pg8000.dbapi.Connection) -> list[Bound]:
    """BEGIN, unless a transaction is open (or the connection autocommits)."""
    if connection.autocommit or connection._in_transaction:
        return []
    return [(prepared(connection, _BEGIN), ())]


def commit_statement(connection: pg8000.dbapi.Connection) -> Bound:
    return prepared(connection, _COMMIT), ()


_INT32 = struct.Struct("!i").pack
_UINT16 = struct.Struct("!H").pack
_NO_FORMAT_CODES = _UINT16(0)  # every parameter and result column in text form


def bind_message(statement_name: bytes, values: Sequence[str | None], encoding: str) -> bytes:
    """Bind (unnamed portal, ``statement_name`` null-terminated) as pg8000's send_BIND
    builds it."""
    body = bytearray(b"\x00" + statement_name + _NO_FORMAT_CODES + _UINT16(len(values)))
    for value in values:
        if value is None:
            body += _INT32(-1)
        else:
            encoded = value.encode(encoding)
            body += _INT32(len(encoded))
            body += encoded
    body += _NO_FORMAT_CODES
    return b"B" + _INT32(len(body) + 4) + body


def run_pipeline(
    connection: pg8000.dbapi.Connection, segments: Sequence[Sequence[Bound]]
) -> Result:
    """Every segment's statements in one write and one round trip; the last segment's
    last statement's rows (the others return none).

    Each segment ends with a Sync: an error skips the rest of its own segment (so a
    segment ending in COMMIT commits all of it or nothing), and is raised once every
    reply has been read, so the connection stays usable for the rollback.
    """
    encoding = connection._client_encoding
    messages = bytearray()
    for segment in segments:
        for statement, values in segment:
            messages += bind_message(statement.name, values, encoding)
            messages += pg8000_core.EXECUTE_MSG
        messages += pg8000_core.SYNC_MSG
    try:
        pg8000_core._write(connection._sock, bytes(messages))
        pg8000_core._flush(connection._sock)
    except (AttributeError, ValueError) as error:  # as pg8000's _send_message reports them
        raise InterfaceError("connection is closed") from error
    first_error: Exception | None = None
    context: Any = None
    for segment in segments:
        last = segment[-1][0]
        # Rows are read for the last statement when it alone returns any; rows of others
        # (a statement sent with the COMMIT that returns some) are read and dropped, so
        # the connection is left with nothing unread.
        if all(statement.columns is None for statement, _ in segment[:-1]):
            columns, input_funcs = last.columns, last.input_funcs
        else:
            columns, input_funcs = [], []
        context = pg8000_core.Context(
            last.statement, columns=columns or [], input_funcs=input_funcs or []
        )
        try:
            connection.handle_messages(context)
        except Exception as error:
            if error is not context.error:
                raise  # not the server's answer: the connection is no longer usable
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    if not context.columns:
        return Result([], context.row_count)
    names = [column["name"] for column in context.columns]
    rows = [dict(zip(names, row, strict=True)) for row in context.rows]
    return Result(rows, context.row_count)
