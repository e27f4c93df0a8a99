"""outbox_relay and outbox_purge: the outbox's two scheduled jobs (contract sections 3, 6).

outbox_relay (Cloud Scheduler, every minute)
    POST /        drain and poll for RELAY_LOOP_SECONDS; 200 with a JSON summary
                  {published, failed, dead_lettered, remaining_backlog,
                   oldest_pending_age_seconds, ...}. An overlapping call is harmless:
                  relays share the backlog through SKIP LOCKED.
    GET /health   200 / 503 (database, Pub/Sub)

outbox_purge (Cloud Scheduler, daily)
    POST /                 delete published events older than OUTBOX_RETENTION_DAYS, and
                           the side tables' old rows (shared/services/purge.py ROW_PURGES:
                           notification ledger, replay record, journey record)
    POST /?dry_run=true    count only (or a JSON body {"dry_run": true})
    GET /health            200 / 503 (database)

Who may call them is decided before a request gets here: only the scheduler's service
account holds the invoker role (Terraform, OIDC).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import lru_cache

import flask
import functions_framework

from shared import startup
from shared.adapters.pubsub import EventPublisher
from shared.db import Database
from shared.errors import NotFound, WhatsAppHandlerError
from shared.http import (
    bind_request_context,
    error_response,
    health_response,
    json_response,
    method_not_allowed,
    parse_dry_run,
)
from shared.logs import configure_logging, get_logger
from shared.relay_policy import RelayPolicy
from shared.services import purge, relay
from shared.settings import Settings, load_settings

log = get_logger("outbox_relay")


class Deps:
    """Settings and the pool on first call; the Pub/Sub client (~0.4 s of imports) only
    when the relay first needs it, so the purge never pays for it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(settings)
        self._publisher: EventPublisher | None = None
        self._lock = threading.Lock()

    @property
    def publisher(self) -> EventPublisher:
        with self._lock:
            if self._publisher is None:
                publisher = EventPublisher.from_settings(self.settings)
                if self.settings.pubsub_emulator_host:
                    publisher.ensure_topic_for_local_dev()  # make dev: a fresh emulator
                self._publisher = publisher
            return self._publisher

    def close(self) -> None:
        self.database.close()
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None


@lru_cache(maxsize=1)
def deps() -> Deps:
    settings = load_settings()
    configure_logging(settings.log_level)
    return Deps(settings)


def _ping_database() -> None:
    deps().database.ping()


def _ping_pubsub() -> None:
    deps().publisher.check_reachable()


@functions_framework.http
def outbox_relay(request: flask.Request) -> flask.Response:
    bind_request_context(request)
    if request.path == "/health":
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET")
        return health_response({"database": _ping_database, "pubsub": _ping_pubsub})
    try:
        if request.path not in ("", "/"):
            raise NotFound("Not found")
        if request.method != "POST":
            return method_not_allowed("POST")
        built = deps()
        summary = relay.run_relay(
            built.database, built.publisher, RelayPolicy.from_settings(built.settings)
        )
    except WhatsAppHandlerError as error:  # 404, 503 (database gone)
        return error_response(error)
    except Exception:
        log.exception("relay run failed", action="outbox.relay_failed")
        return json_response({"error": "relay run failed; see the logs"}, status=500)
    return json_response(summary.as_dict())


@functions_framework.http
def outbox_purge(request: flask.Request) -> flask.Response:
    bind_request_context(request)
    if request.path == "/health":
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET")
        return health_response({"database": _ping_database})
    try:
        if request.path not in ("", "/"):
            raise NotFound("Not found")
        if request.method != "POST":
            return method_not_allowed("POST")
        dry_run = parse_dry_run(request)
        built = deps()
        policy = purge.PurgePolicy.from_settings(built.settings)
        now = datetime.now(UTC)
        if dry_run:
            result = purge.preview_purge(built.database, now=now, policy=policy)
        else:
            result = purge.purge_expired(built.database, now=now, policy=policy)
    except WhatsAppHandlerError as error:  # 400, 404, 413, 503
        return error_response(error)
    except Exception:
        log.exception("purge failed", action="outbox.purge_failed")
        return json_response({"error": "purge failed; see the logs"}, status=500)
    return json_response(result.as_dict())


startup.imported()  # last: see shared/startup.py
