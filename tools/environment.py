"""The services and the environment the functions run with on this machine, built once.

The tests (``tests/conftest.py``), the bench (``bench/``) and `make dev`
(``tools/devstack.py``) all get their servers and the functions' variables here:

- ``LocalServices``: PostgreSQL, Redis, the Pub/Sub emulator and the Twilio stand-in this
  run uses, and what it started to get them; ``close`` stops only those, last first.
  ``shared_*`` reuses the server that answers on this machine and starts an embedded one
  where none does (tests, bench); ``embedded_*`` starts one on a chosen port, with kept
  data (`make dev`, which takes a machine's server only when told to, D61).
- ``scratch_database``: a database of the run's own, dropped afterwards.
- ``FunctionEnvironment``: the settings' variables every function reads, named after the
  ``Settings`` fields; ``for_subprocess`` (functions-framework servers), ``apply`` and
  ``applied`` (functions called in this process).

Development tooling: deployed functions never import this module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tools import devservices
from tools.devservices import Started, admin_connection, url_with_database
from tools.devtwilio import RecordedMessage, TwilioStandIn

# They would send the stand-in's calls (and Twilio's callbacks) somewhere else.
DISPLACED = ("TWILIO_EDGE", "TWILIO_REGION", "STATUS_CALLBACK_URL")


# --- servers -------------------------------------------------------------------------


@dataclass
class LocalServices:
    """What a run uses on this machine; ``close`` (or leaving ``with``) stops what it
    started, in reverse order, and nothing it merely reused."""

    started: list[Started] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def __enter__(self) -> LocalServices:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _keep(self, started: Started | None) -> None:
        if started is not None:
            self.started.append(started)
            self._stops.append(_stopper(started))

    def shared_postgres(self) -> str:
        """A server URL (database ``postgres``): TEST_DATABASE_ADMIN_URL or 127.0.0.1:5432
        when it answers, else an embedded one in a temporary folder."""
        url, started = devservices.postgres_admin_url()
        self._keep(started)
        return url

    def shared_redis(self) -> str:
        url, started = devservices.redis_url()
        self._keep(started)
        return url

    def shared_pubsub(self) -> tuple[str | None, str]:
        """(host:port, "") of the emulator that answers or one started; (None, why) when
        none is installed."""
        host, started, why = devservices.pubsub_emulator()
        self._keep(started)
        return host, why

    def embedded_postgres(
        self, *, port: int, data_dir: Path, log_file: Path
    ) -> tuple[str, Started]:
        """(server URL, the server): its data may live elsewhere (``Started.data_dir``)."""
        url, started = devservices.start_embedded_postgres(
            port=port, data_dir=data_dir, log_file=log_file
        )
        self._keep(started)
        return url, started

    def embedded_redis(self, *, port: int, data_dir: Path, log_file: Path) -> str:
        url, started = devservices.start_embedded_redis(
            port=port, data_dir=data_dir, log_file=log_file
        )
        self._keep(started)
        return url

    def embedded_pubsub(self, *, port: int, log_file: Path) -> str:
        host, started = devservices.start_pubsub_emulator(port=port, log_file=log_file)
        self._keep(started)
        return host

    def twilio(
        self,
        account_sid: str,
        auth_token: str,
        *,
        port: int = 0,
        on_message: Callable[[RecordedMessage], None] | None = None,
    ) -> TwilioStandIn:
        standin = TwilioStandIn(account_sid, auth_token, on_message=on_message).start(port)
        self._stops.append(standin.stop)
        return standin

    def close(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            with contextlib.suppress(Exception):  # stop the rest whatever one does
                stop()
        self.started.clear()


def _stopper(started: Started) -> Callable[[], None]:
    # A server may take a while to write its data (PostgreSQL's fast shutdown, Redis's
    # snapshot): longer than Started.stop's default before SIGKILL.
    return lambda: started.stop(timeout=15)


# --- databases -----------------------------------------------------------------------


def drop_database(admin: Any, name: str) -> None:
    """Ends the connections still open to ``name`` (pools of functions), then drops it."""
    admin.run(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name",
        name=name,
    )
    admin.run(f'DROP DATABASE IF EXISTS "{name}"')


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str, *, template: str | None = None) -> Iterator[str]:
    """A new database ``name`` on the server (a copy of ``template`` when given), its URL
    yielded; dropped on the way out, whatever happened inside."""
    admin = admin_connection(admin_url)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        admin.run(f'CREATE DATABASE "{name}"{copy}')
        try:
            yield url_with_database(admin_url, name)
        finally:
            drop_database(admin, name)
    finally:
        admin.close()


# --- the functions' environment --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FunctionEnvironment:
    """The variables the functions read, one field per ``Settings`` field of that name
    (upper-cased); ``None`` leaves a variable to what the process already has."""

    database_url: str
    redis_url: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_api_base_url: str
    twilio_sms_from: str
    twilio_whatsapp_from: str
    webhook_public_url: str
    otp_pepper: str
    google_cloud_project: str
    pubsub_topic: str
    notify_topic: str
    relay_loop_seconds: float
    pubsub_emulator_host: str | None = None
    redis_key_prefix: str | None = None
    terms_version: str | None = None
    log_level: str | None = None
    gdpr_max_run_seconds: int | None = None
    # Not settings: variables for the process itself (PYTHONPATH, PYTHONUNBUFFERED).
    process: Mapping[str, str] = field(default_factory=dict)
    # Variables the functions must not inherit beyond DISPLACED.
    unset: tuple[str, ...] = ()

    def variables(self) -> dict[str, str]:
        named = {
            item.name.upper(): _text(getattr(self, item.name))
            for item in fields(self)
            if item.name not in ("process", "unset") and getattr(self, item.name) is not None
        }
        return {**named, **self.process}

    def removed(self) -> tuple[str, ...]:
        return (*DISPLACED, *self.unset)

    def for_subprocess(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A child's whole environment: ``base`` (this process's) with ours over it."""
        inherited = os.environ if base is None else base
        kept = {key: value for key, value in inherited.items() if key not in self.removed()}
        return {**kept, **self.variables()}

    def apply(self, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
        """Into ``os.environ`` (what in-process functions and children read); returns what
        was set."""
        target = os.environ if environ is None else environ
        for name in self.removed():
            target.pop(name, None)
        variables = self.variables()
        target.update(variables)
        return variables

    @contextlib.contextmanager
    def applied(self) -> Iterator[dict[str, str]]:
        """``apply``, and every touched variable put back as it was on the way out."""
        touched = {*self.removed(), *self.variables()}
        saved = {name: os.environ.get(name) for name in touched}
        try:
            yield self.apply()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "0", as the variables were always written
    return str(value)
