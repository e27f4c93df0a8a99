"""What the migration job (terraform/migrations.tf) does, done here on the real PostgreSQL.

The job pip-installs the `migrate` archive, runs `whatsapp-handler migrate up` as the
migrator (a non-superuser that owns the database, like a cloudsqlsuperuser member on Cloud
SQL), then runs the Terraform-generated GRANTS_SQL. These tests do the same steps: the
installed archive migrates a database, and the grants let a function's database user read
and write the schema's tables and nothing more.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pg8000.native
import pytest

from tests.terraform.hcl import REPO, load
from tools import migrate
from tools.environment import drop_database

PYTHON = sys.executable


def _connect(url: str, user: str | None = None) -> pg8000.native.Connection:
    parts = urlsplit(url)
    return pg8000.native.Connection(
        user=user or parts.username or "postgres",
        password=None if user else parts.password,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=parts.path.lstrip("/") or "postgres",
    )


def _url_as(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(("postgresql", netloc, f"/{database}", "", ""))


@pytest.fixture
def owned_database(services: Any) -> Iterator[tuple[str, str, str]]:
    """(admin url, migrator role, database owned by it): Cloud SQL's layout, locally."""
    suffix = secrets.token_hex(4)
    migrator, database = f"wh_migrator_{suffix}", f"wh_jobtest_{suffix}"
    admin = _connect(services.admin_url)
    admin.run(f'CREATE ROLE "{migrator}" LOGIN CREATEROLE')
    admin.run(f'CREATE DATABASE "{database}" OWNER "{migrator}"')
    try:
        yield services.admin_url, migrator, database
    finally:
        drop_database(admin, database)
        for (role,) in admin.run(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE :pattern", pattern=f"%{suffix}%"
        ):
            admin.run(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def _rendered_grants(app_role: str, function_users: list[str]) -> list[str]:
    expression = load().locals["grants_sql"]
    strings = [
        s.replace('\\"', '"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', expression) if s != "\\n"
    ]
    static = [s for s in strings if "local.db_iam_user" not in s]
    per_user = next(s for s in strings if "local.db_iam_user" in s)
    statements = [s.replace("${local.app_db_role}", app_role) for s in static]
    for user in function_users:
        statements.append(
            per_user.replace("${local.app_db_role}", app_role).replace(
                "${local.db_iam_user[k]}", user
            )
        )
    return statements


def _install_migrate_archive(tmp_path: Path) -> Path:
    built = subprocess.run(
        [
            PYTHON,
            str(REPO / "terraform" / "build_sources.py"),
            "--out",
            str(tmp_path),
            "--only",
            "migrate",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    archive = Path(json.loads(built.stdout)["migrate"])
    target = tmp_path / "site"
    # The job runs `pip install <archive>[migrate]`; here without dependencies (the
    # project's are in this interpreter already), with the same isolated setuptools build.
    subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(target),
            f"{archive}[migrate]",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    with zipfile.ZipFile(archive) as zipped:
        assert "pyproject.toml" in zipped.namelist()
    return target


def _cli(site: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    env.update(PYTHONPATH=str(site), DATABASE_URL=database_url)
    probe = (
        "import sys, shared, tools.cli; "
        f"assert shared.__file__.startswith({str(site)!r}), shared.__file__; "
        f"assert tools.cli.__file__.startswith({str(site)!r}), tools.cli.__file__; "
        "sys.exit(tools.cli.main(sys.argv[1:]))"
    )
    return subprocess.run(
        [PYTHON, "-c", probe, *args],
        cwd=site.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_installed_archive_migrates_as_the_owner_and_grants_dml_only(
    tmp_path: Path, owned_database: tuple[str, str, str]
) -> None:
    admin_url, migrator, database = owned_database
    suffix = migrator.rsplit("_", 1)[-1]
    app_role, function_user = f"wh_app_{suffix}", f"wh-webhook-{suffix}@proj.iam"
    admin = _connect(admin_url)
    admin.run(f'CREATE ROLE "{function_user}" LOGIN')
    admin.close()
    site = _install_migrate_archive(tmp_path)
    migrator_url = _url_as(admin_url, migrator, database)

    up = _cli(site, migrator_url, "migrate", "up")
    status = _cli(site, migrator_url, "migrate", "status")
    owner = _connect(migrator_url)
    for statement in _rendered_grants(app_role, [function_user]):
        owner.run(statement)
    for statement in _rendered_grants(app_role, [function_user]):  # the job re-runs them
        owner.run(statement)
    owner.close()

    assert up.returncode == 0, up.stderr[-2000:]
    assert status.returncode == 0 and f"current: {migrate.head_revision()}" in status.stdout
    as_function = _connect(_url_as(admin_url, "x", database), user=function_user)
    try:
        as_function.run(
            "INSERT INTO whatsapp_handler.users (phone_number) VALUES ('+447700900123')"
        )
        rows = as_function.run("SELECT count(*) FROM whatsapp_handler.users")
        assert rows == [[1]]
        as_function.run("DELETE FROM whatsapp_handler.users")
        with pytest.raises(pg8000.native.DatabaseError) as refused:
            as_function.run("CREATE TABLE whatsapp_handler.intruder (id int)")
        assert refused.value.args[0]["C"] == "42501"  # insufficient_privilege
        with pytest.raises(pg8000.native.DatabaseError):
            as_function.run("DROP TABLE whatsapp_handler.outbox_events")
    finally:
        as_function.close()
