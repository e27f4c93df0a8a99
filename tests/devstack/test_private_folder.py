"""Issue 18: the embedded servers start from a checkout in a private (0700) folder, and
one that cannot start says why in one line, its own last error, which doctor repeats.

As root PostgreSQL runs as `nobody`, who cannot enter a 0700 folder: these tests put
pgserver's files (hard links) and the data folder under one, as a clone in `/root` or
`mktemp -d` has them. As another user the server runs as that user and the same tests
check that nothing changes for them.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devservices
from tools.devservices import EmbeddedServerError, admin_connection, start_embedded_postgres
from tools.devstack import REPO_ROOT

pytestmark = pytest.mark.slow

_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "PUBSUB_EMULATOR_HOST",
    "WH_FORCE_EMBEDDED",
    "WEBHOOK_PUBLIC_URL",
)


def _site_packages() -> Path:
    return devservices._pg_bin_dir().parents[2]


@pytest.fixture()
def private_folder() -> Iterator[Path]:
    """A 0700 folder (what `mktemp -d` makes) holding a copy of pgserver's files."""
    folder = Path(tempfile.mkdtemp(prefix="wh-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    site = folder / "venv" / "site-packages"
    site.mkdir(parents=True)
    for name in ("pgserver", "pgserver.libs"):
        if (_site_packages() / name).is_dir():
            shutil.copytree(_site_packages() / name, site / name, copy_function=_link_or_copy)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture()
def cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's own cache folder, so it builds the copy rather than finding one."""
    folder = Path(tempfile.mkdtemp(prefix="wh-pgcache-"))
    folder.chmod(0o755)
    monkeypatch.setattr(devservices, "PG_INSTALL_CACHE", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _use_binaries_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    bin_dir = folder / "venv" / "site-packages" / "pgserver" / "pginstall" / "bin"
    monkeypatch.setattr(devservices, "_pg_bin_dir", lambda: bin_dir)
    return bin_dir


def _world_traversable_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="wh-pg-fail-"))
    folder.chmod(0o755)
    return folder


def test_embedded_postgres_starts_from_a_private_folder_and_leaves_it_private(
    private_folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_binaries_in(monkeypatch, private_folder)
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")  # `env -i`'s: no sbin
    monkeypatch.chdir(private_folder)  # started from inside the checkout, as make does
    data_dir = private_folder / "checkout" / ".dev" / "postgres"
    home = devservices.postgres_home(data_dir)
    try:
        for _ in range(2):  # the first run makes the copy and the cluster; the second reuses
            url, started = start_embedded_postgres(data_dir=data_dir)
            assert started.data_dir == home
            connection = admin_connection(url)
            try:
                [[answer]] = connection.run("SELECT 6 * 7")
            finally:
                connection.close()
                started.stop()
            assert answer == 42
        assert stat.S_IMODE(private_folder.stat().st_mode) == 0o700  # not opened up
        if os.geteuid() == 0:
            [copy] = cache.glob("whatsapp-handler-pginstall-*")
            assert stat.S_IMODE(copy.stat().st_mode) == 0o755
    finally:
        if not home.is_relative_to(private_folder):  # root's server keeps it in /var/tmp
            shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_copy_missing_a_file_is_made_again_and_one_others_can_write_is_refused(
    private_folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = _use_binaries_in(monkeypatch, private_folder)
    reachable = devservices.reachable_pg_bin_dir()
    assert reachable.is_relative_to(cache) and (reachable / "initdb").is_file()
    (reachable / "initdb").unlink()  # as a /var/tmp cleaner removes old files

    assert devservices.reachable_pg_bin_dir() == reachable
    version = subprocess.run(
        [str(reachable / "initdb"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        **devservices._server_user(),
    )
    assert "16" in version.stdout

    copy = reachable.parents[2]
    copy.chmod(0o777)  # another user could have swapped the binaries
    with pytest.raises(EmbeddedServerError, match="remove it"):
        devservices.reachable_pg_bin_dir(bin_dir)


def test_an_initdb_that_fails_is_one_line_with_initdbs_own_error() -> None:
    folder = _world_traversable_folder()
    data_dir = folder / "postgres"
    (data_dir / "data").mkdir(parents=True)
    (data_dir / "data" / "left-over").write_text("not a cluster")
    try:
        with pytest.raises(EmbeddedServerError) as raised:
            start_embedded_postgres(data_dir=data_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    line = str(raised.value)
    assert "\n" not in line
    assert "initdb" in line and "exists but is not empty" in line  # initdb's own words
    assert "DATABASE_URL" in line  # and what to do


def test_a_postgres_that_exits_at_start_says_why_without_waiting_for_the_timeout() -> None:
    folder = _world_traversable_folder()
    data_dir = folder / "postgres"
    try:
        _, started = start_embedded_postgres(data_dir=data_dir)
        started.stop()
        kept = started.data_dir or data_dir
        with (kept / "data" / "postgresql.conf").open("a") as conf:
            conf.write("\nno_such_setting = 1\n")
        began = time.monotonic()
        with pytest.raises(EmbeddedServerError) as raised:
            start_embedded_postgres(data_dir=data_dir)
        took = time.monotonic() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    line = str(raised.value)
    assert "\n" not in line
    assert "FATAL" in line and "configuration file" in line  # postgres's own last error
    assert "postgres.log" in line  # where the rest is
    assert took < 10  # not the 30 s readiness timeout


def _run_cli(*arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in _INHERITED}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *arguments],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_dev_that_cannot_start_postgres_prints_its_error_once_and_doctor_names_it() -> None:
    folder = _world_traversable_folder()
    dev_dir = folder / ".dev"
    (dev_dir / "postgres" / "data").mkdir(parents=True)
    (dev_dir / "postgres" / "data" / "left-over").write_text("not a cluster")
    try:
        dev = _run_cli(
            "dev", "--free-ports", "--no-emulator", "--dev-dir", str(dev_dir), timeout=120
        )
        doctor = _run_cli("doctor", "--dev-dir", str(dev_dir), timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    output = dev.stdout + dev.stderr
    assert dev.returncode == 1, output
    assert "Traceback" not in output and "CalledProcessError" not in output
    [error] = [line for line in output.splitlines() if " error " in line]
    assert "initdb" in error and "exists but is not empty" in error
    if _answers(5432):  # the machine's server is offered, not taken (D61)
        assert "answers on 127.0.0.1:5432" in output and "DATABASE_URL" in output
    said = error.split(" error ", 1)[1].strip()
    assert doctor.returncode == 1
    assert said in doctor.stdout, doctor.stdout
