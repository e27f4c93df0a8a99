"""End to end: `whatsapp-handler dev` as a developer runs it, driven by the chat client's code.

The stack runs as a subprocess with embedded PostgreSQL/Redis/emulator on free ports and
its own `.dev` folder; a new WhatsApp user goes from first message to verified, the OTP
read from the Twilio stand-in, `user.verified` seen in the event sink; Ctrl-C (SIGINT)
must leave no process behind. A second stack without the emulator shows outbox rows and
keeps the users across a restart.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pg8000.native
import pytest

from tools.commands.chat import (
    ChatTarget,
    WebhookReply,
    fetch_messages,
    resolve_target,
    send_text,
)
from tools.devstack import REPO_ROOT, EnvironmentSettings, load_stack

pytestmark = pytest.mark.slow

# Settings a test session may have put in this process's environment: the stack must not
# inherit them (it starts its own services).
_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "PUBSUB_EMULATOR_HOST",
    "PUBSUB_TOPIC",
    "NOTIFY_TOPIC",
    "WEBHOOK_PUBLIC_URL",
)
_OTP = re.compile(r"(?<!\d)(\d{6})(?!\d)")


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    dev_dir: Path
    output: Path
    stack: dict[str, Any]

    @property
    def target(self) -> ChatTarget:
        if not self.stack.get("webhook_url"):
            pytest.fail(
                "the dev stack serves no webhook: functions/webhook/main.py (target webhook) "
                "is missing or failed to start\n" + self.output.read_text()
            )
        return resolve_target(
            url=None,
            token=None,
            public_url=None,
            whatsapp_to=None,
            stack=self.stack,
            environment=EnvironmentSettings.from_env(),
        )

    def events(self) -> list[dict[str, Any]]:
        path = self.dev_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_stack(dev_dir: Path, *extra: str) -> RunningStack:
    environment = {key: value for key, value in os.environ.items() if key not in _INHERITED}
    environment["WH_FORCE_EMBEDDED"] = "1"
    output = dev_dir.parent / f"dev-{secrets.token_hex(3)}.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "dev",
                "--embedded",
                "--free-ports",
                "--dev-dir",
                str(dev_dir),
                "--relay-every",
                "0.5",
                *extra,
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like a terminal: the test signals it alone
        )
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        stack = load_stack(dev_dir)
        if stack is not None and stack.get("pid") == process.pid:
            return RunningStack(process, dev_dir, output, stack)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_quietly(process)
    pytest.fail("the dev stack did not become ready:\n" + output.read_text())


def stop_quietly(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- processes, from /proc ------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()  # [state, ppid, pgrp, ...]


def descendants(root: int) -> dict[int, str]:
    """Every live process under ``root``: pid -> start time (tells a reused pid apart)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def still_alive(processes: dict[int, str]) -> list[int]:
    alive = []
    for pid, started in processes.items():
        fields = _stat(pid)
        if fields is not None and fields[19] == started and fields[0] != "Z":
            alive.append(pid)
    return alive


# --- the chat, as the developer would use it --------------------------------------------


def new_number() -> str:
    return f"+447700900{secrets.randbelow(1000):03d}"


def say(target: ChatTarget, number: str, text: str) -> WebhookReply:
    reply = send_text(target, number, text)
    assert reply.status == 200, reply
    assert reply.content_type.startswith(("text/xml", "application/xml")), reply
    assert reply.texts, reply
    return reply


def wait_for(what: str, check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def otp_sent_to(target: ChatTarget, number: str) -> str:
    def latest_code() -> str | None:
        messages, _ = fetch_messages(target, number)
        codes = [
            match[1]
            for message in messages
            if not str(message["to"]).startswith("whatsapp:")
            and (match := _OTP.search(message.get("body") or ""))
        ]
        return codes[-1] if codes else None

    return str(wait_for("the OTP SMS", latest_code))


def user_row(stack: dict[str, Any], number: str) -> dict[str, Any] | None:
    parts = urlsplit(stack["database_url"])
    connection = pg8000.native.Connection(
        user=parts.username or "postgres",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=parts.path.lstrip("/"),
    )
    try:
        rows = connection.run(
            "SELECT id, verified_at FROM whatsapp_handler.users WHERE phone_number = :number",
            number=number,
        )
    finally:
        connection.close()
    return {"id": rows[0][0], "verified_at": rows[0][1]} if rows else None


def run_notify(stack: RunningStack, user_id: str, text: str) -> subprocess.CompletedProcess[str]:
    """`whatsapp-handler notify`, as a developer types it next to the running stack."""
    command = [sys.executable, "-m", "tools.cli", "notify", user_id, text]
    done = subprocess.run(
        [*command, "--dev-dir", str(stack.dev_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def whatsapp_texts(stack: RunningStack, number: str) -> list[str]:
    messages, _ = fetch_messages(stack.target, number)
    return [m["body"] for m in messages if str(m["to"]).startswith("whatsapp:")]


# --- with the emulator ----------------------------------------------------------------------


def dev_dir_for_test() -> Path:
    """A folder the unprivileged embedded PostgreSQL can reach (pytest's tmp is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="wh-devstack-"))
    base.chmod(0o755)
    return base / ".dev"


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    from tools.devservices import emulator_available

    if not emulator_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the dev stack with the Pub/Sub emulator")
        pytest.skip("the Pub/Sub emulator is not installed")
    running = start_stack(dev_dir_for_test())
    yield running
    stop_quietly(running.process)
    shutil.rmtree(running.dev_dir.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def verified_user(stack: RunningStack) -> dict[str, Any]:
    target, number = stack.target, new_number()

    say(target, number, "hi")
    say(target, number, "YES")
    say(target, number, otp_sent_to(target, number))

    row = user_row(stack.stack, number)
    assert row is not None and row["verified_at"] is not None
    return {"number": number, "user_id": str(row["id"])}


def test_a_new_user_registers_verifies_and_user_verified_reaches_the_event_sink(
    stack: RunningStack, verified_user: dict[str, Any]
) -> None:
    def verified_events() -> list[dict[str, Any]]:
        return [
            event
            for event in stack.events()
            if event["data"]["event_type"] == "user.verified"
            and event["data"]["payload"]["user_id"] == verified_user["user_id"]
        ]

    [event] = wait_for("user.verified in the event sink", verified_events)
    assert event["via"] == "pubsub-emulator"
    assert event["attributes"]["event_type"] == "user.verified"
    assert event["attributes"]["aggregate_id"] == verified_user["user_id"]
    assert "user.verified" in stack.output.read_text()  # shown on the console too


def test_notify_reaches_the_user_over_whatsapp_through_the_push_subscription(
    stack: RunningStack, verified_user: dict[str, Any]
) -> None:
    if "notify" not in stack.stack["functions"]:
        pytest.fail("the dev stack serves no notifier: functions/notifier/main.py (notify)")
    text = f"Your claim was approved ({secrets.token_hex(3)})"

    done = run_notify(stack, verified_user["user_id"], text)

    assert done.returncode == 0, done.stderr
    wait_for(
        "the notification in the stand-in",
        lambda: text in whatsapp_texts(stack, verified_user["number"]),
    )


def test_doctor_finds_nothing_wrong_with_the_running_stack(stack: RunningStack) -> None:
    environment = {key: value for key, value in os.environ.items() if key not in _INHERITED}

    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "doctor", "--dev-dir", str(stack.dev_dir)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("settings", "database", "migrations", "redis", "pubsub", "twilio"):
        assert re.search(rf"^ok\s+{name}\b", done.stdout, re.M), done.stdout


def test_sigint_stops_everything_the_stack_started(stack: RunningStack) -> None:
    started = descendants(stack.process.pid)
    assert len(started) >= 5, started  # postgres, redis, emulator, functions

    stack.process.send_signal(signal.SIGINT)
    code = stack.process.wait(timeout=30)

    assert code == 0, stack.output.read_text()
    assert still_alive(started) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(stack.process.pid, 0)
    assert not (stack.dev_dir / "stack.json").exists()


# --- without the emulator -------------------------------------------------------------------


@pytest.fixture()
def dev_dir() -> Iterator[Path]:
    folder = dev_dir_for_test()
    yield folder
    shutil.rmtree(folder.parent, ignore_errors=True)


def test_without_the_emulator_outbox_rows_are_shown_and_users_survive_a_restart(
    dev_dir: Path,
) -> None:
    number = new_number()
    first = start_stack(dev_dir, "--no-emulator")
    try:
        assert first.stack["pubsub_emulator_host"] is None
        say(first.target, number, "hi")
        say(first.target, number, "YES")
        registered = wait_for(
            "user.registered from the outbox sink",
            lambda: [e for e in first.events() if e["data"]["event_type"] == "user.registered"],
        )
        assert registered[0]["via"] == "outbox (not published)"
        assert "NOT published" in first.output.read_text()
        if "notify" in first.stack["functions"]:  # notify is delivered straight to it
            say(first.target, number, otp_sent_to(first.target, number))
            row = user_row(first.stack, number)
            assert row is not None
            text = f"No emulator, still delivered ({secrets.token_hex(3)})"
            run_notify(first, str(row["id"]), text)
            wait_for("the notification", lambda: whatsapp_texts(first, number) == [text])
    finally:
        stop_quietly(first.process)
    assert first.process.returncode == 0

    second = start_stack(dev_dir, "--no-emulator")
    try:
        row = user_row(second.stack, number)
        assert row is not None  # the embedded database kept its data under .dev/
        time.sleep(1.5)  # two sink polls: the event already shown is not shown again
        assert (
            len([e for e in second.events() if e["data"]["event_type"] == "user.registered"]) == 1
        )
    finally:
        stop_quietly(second.process)
