"""whatsapp-handler doctor: is everything the service needs there? One line per check,
with how to fix what is not.

Checks the environment's settings, or, when `make dev` is running and no DATABASE_URL is
set here, the settings the dev stack gave its functions (``.dev/stack.json``).
"""

from __future__ import annotations

import argparse
import base64
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HELP = "check settings, database, migrations, Redis, Pub/Sub and Twilio; say how to fix"

WEBHOOK_SETTINGS = (
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_sms_from",
    "twilio_whatsapp_from",
    "webhook_public_url",
    "otp_pepper",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        status = "ok  " if self.ok else "FAIL"
        fix = f"  -> {self.fix}" if not self.ok and self.fix else ""
        return f"{status}  {self.name:<12} {self.detail}{fix}"


def redact_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dev-dir", type=Path, default=None, help="the dev stack's folder")
    parser.add_argument(
        "--no-dev-stack", action="store_true", help="check the environment even if make dev runs"
    )


def _guard(name: str, check: Callable[[], Check], fix: str) -> Check:
    try:
        return check()
    except Exception as error:
        first = (str(error).splitlines() or [""])[0][:200]
        return Check(name, False, f"{type(error).__name__}: {first}", fix)


def check_settings() -> tuple[Check, Any]:
    from shared.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        return (
            Check(
                "settings",
                False,
                str(error),
                "export it (README, Configuration), or run `make dev` which sets everything",
            ),
            None,
        )
    return Check("settings", True, "all settings parse"), settings


def check_webhook_settings(settings: Any) -> Check:
    missing = [name.upper() for name in WEBHOOK_SETTINGS if getattr(settings, name) in (None, "")]
    if missing:
        return Check(
            "webhook",
            False,
            "not set: " + ", ".join(missing),
            "export them (README, Configuration); `make dev` generates local ones",
        )
    return Check("webhook", True, "Twilio, OTP and public-URL settings are set")


def check_database(settings: Any) -> Check:
    from tools.devstack import postgres_problem

    fix = "start PostgreSQL, fix DATABASE_URL, or unset it and run `make dev` (embedded)"
    if not settings.database_url and not settings.cloud_sql_instance:
        return Check("database", False, "not checked: no DATABASE_URL", "set DATABASE_URL")
    if settings.database_url:
        problem = postgres_problem(settings.database_url)
        where = redact_url(settings.database_url)
        if problem is None:
            return Check("database", True, f"{where} answers")
        return Check("database", False, f"{where}: {problem}", fix)
    from shared.db import Database

    database = Database(settings)
    try:
        database.ping()
    finally:
        database.close()
    return Check("database", True, f"Cloud SQL {settings.cloud_sql_instance} answers")


def check_migrations(settings: Any) -> Check:
    from tools import migrate

    if not settings.database_url:
        if not settings.cloud_sql_instance:
            return Check("migrations", False, "not checked: no DATABASE_URL", "set DATABASE_URL")
        return Check("migrations", True, "not checked (Cloud SQL: the migration job runs them)")
    current = migrate.current_revision(settings.database_url)
    head = migrate.head_revision()
    if current == head:
        return Check("migrations", True, f"at head ({head})")
    return Check(
        "migrations",
        False,
        f"database at {current or 'nothing'}, code at {head}",
        "whatsapp-handler migrate up",
    )


def check_redis(settings: Any) -> Check:
    from tools.devstack import redis_problem

    where = redact_url(settings.redis_url)
    problem = redis_problem(settings.redis_url)
    if problem is None:
        return Check("redis", True, f"{where} answers")
    return Check(
        "redis",
        False,
        f"{where}: {problem}",
        "start redis-server, fix REDIS_URL, or unset it and run `make dev` (embedded)",
    )


def check_pubsub(settings: Any) -> list[Check]:
    from tools.devservices import emulator_answers

    emulator = settings.pubsub_emulator_host
    if emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator
        if not emulator_answers(emulator):
            return [
                Check(
                    "pubsub",
                    False,
                    f"emulator at {emulator} does not answer",
                    "start it (gcloud beta emulators pubsub start) or run `make dev`",
                )
            ]
    else:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            google.auth.default()
        except DefaultCredentialsError:
            return [Check("pubsub", False, "no emulator and no Google credentials", _PUBSUB_FIX)]
    return [
        _guard("pubsub", partial(_check_topic, settings, topic), _PUBSUB_FIX)
        for topic in (settings.pubsub_topic, settings.notify_topic)
    ]


_PUBSUB_FIX = (
    "set PUBSUB_EMULATOR_HOST for the emulator, or `gcloud auth application-default login`"
)


def _check_topic(settings: Any, topic: str) -> Check:
    import google.cloud.pubsub_v1 as pubsub_v1
    from google.api_core.exceptions import NotFound

    where = "emulator" if settings.pubsub_emulator_host else "Google Cloud"
    publisher = pubsub_v1.PublisherClient()
    path = publisher.topic_path(settings.google_cloud_project, topic)
    try:
        publisher.get_topic(request={"topic": path}, timeout=5)
    except NotFound:
        return Check(
            "pubsub",
            False,
            f"topic {path} does not exist ({where})",
            "`make dev` creates it on the emulator; in Google Cloud, Terraform does",
        )
    finally:
        publisher.stop()
    return Check("pubsub", True, f"topic {path} exists ({where})")


def check_twilio(settings: Any) -> Check:
    base = settings.twilio_api_base_url.rstrip("/")
    if not settings.twilio_account_sid or settings.twilio_auth_token is None:
        return Check(
            "twilio",
            False,
            f"{base}: no credentials",
            "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        )
    path = f"/2010-04-01/Accounts/{settings.twilio_account_sid}.json"
    if "api.twilio.com" not in base:
        path = "/dev/messages?to=%2B0"  # the stand-in's own page
    pair = f"{settings.twilio_account_sid}:{settings.twilio_auth_token.get_secret_value()}"
    request = urllib.request.Request(  # noqa: S310 - the configured Twilio base URL
        base + path, headers={"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        return Check(
            "twilio",
            False,
            f"{base} unreachable: {error}",
            "check TWILIO_API_BASE_URL (make dev points it at its stand-in) and the network",
        )
    if status == 401:
        return Check(
            "twilio", False, f"{base} refuses the credentials", "check TWILIO_AUTH_TOKEN / SID"
        )
    if status >= 400:
        return Check("twilio", False, f"{base} answered {status}", "check TWILIO_API_BASE_URL")
    return Check("twilio", True, f"{base} answers and accepts the credentials")


def check_functions(functions: Mapping[str, str]) -> list[Check]:
    checks = []
    for name, url in functions.items():
        if name == "notify":
            continue  # a CloudEvent target: no GET
        try:
            with urllib.request.urlopen(f"{url}health", timeout=5) as response:  # noqa: S310
                checks.append(Check(name, True, f"{url}health answers {response.status}"))
        except urllib.error.HTTPError as error:
            reason = error.read().decode(errors="replace").strip()[:200]
            checks.append(
                Check(name, False, f"{url}health answers {error.code}: {reason}", "see its log")
            )
        except OSError as error:
            checks.append(Check(name, False, f"{url} unreachable: {error}", "restart make dev"))
    return checks


def check_last_dev_run(dev_dir: Path | None) -> Check | None:
    """The line the last `make dev` stopped with, if it could not start (its server's own
    error and what to do)."""
    from tools.devstack import last_error

    line = last_error(dev_dir)
    if line is None:
        return None
    return Check("make dev", False, f"the last run stopped at start-up: {line}")


def run(args: argparse.Namespace) -> int:
    from tools.devstack import load_stack

    stack = None if args.no_dev_stack else load_stack(args.dev_dir)
    if stack is not None and "DATABASE_URL" not in os.environ:
        print(f"checking the running `make dev` stack (pid {stack['pid']})")
        os.environ.update({str(k): str(v) for k, v in dict(stack["environment"]).items()})
    else:
        stack = None
        print("checking this shell's environment (no `make dev` stack in use)")
    checks: list[Check] = []
    if stack is None and not args.no_dev_stack:
        last = check_last_dev_run(args.dev_dir)
        if last is not None:
            checks.append(last)
            print(last.line())
    settings_check, settings = check_settings()
    checks.append(settings_check)
    print(settings_check.line())
    if settings is None:
        # Check what does not need the broken setting, so one run shows every problem.
        from shared.settings import SettingsError
        from tools.devstack import environment_settings

        try:
            settings = environment_settings()
        except SettingsError:
            settings = None
    if settings is not None:
        steps: list[tuple[str, Callable[[], Check | list[Check]], str]] = [
            ("webhook", lambda: check_webhook_settings(settings), ""),
            ("database", lambda: check_database(settings), "check DATABASE_URL"),
            ("migrations", lambda: check_migrations(settings), "whatsapp-handler migrate up"),
            ("redis", lambda: check_redis(settings), "check REDIS_URL"),
            ("pubsub", lambda: check_pubsub(settings), _PUBSUB_FIX),
            ("twilio", lambda: check_twilio(settings), "check TWILIO_API_BASE_URL"),
        ]
        if stack is not None:
            functions = dict(stack.get("functions") or {})
            steps.append(("functions", lambda: check_functions(functions), "see .dev/logs"))
        for name, step, fix in steps:
            try:
                result = step()
            except Exception as error:
                first = (str(error).splitlines() or [""])[0][:200]
                result = Check(name, False, f"{type(error).__name__}: {first}", fix)
            for check in result if isinstance(result, list) else [result]:
                checks.append(check)
                print(check.line())
    failed = sum(not check.ok for check in checks)
    print(f"{failed} problem(s)" if failed else "everything answers")
    return 1 if failed else 0
