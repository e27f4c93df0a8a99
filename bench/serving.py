"""Serving the functions as production does (functions-framework), and talking to them."""

from __future__ import annotations

import http.client
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.seed import phone
from tools import devservices

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-" + "0" * 15
PUBLIC_URL = "https://bench.example.invalid/webhook"


def signed(form: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL, form)
    return urlencode(form).encode(), {
        "X-Twilio-Signature": str(signature),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def text_form(sender: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{sender}",
        "To": "whatsapp:+447700900998",
        "Body": body,
        "NumMedia": "0",
    }


def post(
    port: int,
    body: bytes,
    headers: dict[str, str],
    timeout: float = 10,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """One request; on ``connection`` if given (kept alive when the server allows it)."""
    own = connection is None
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def signed_webhook_ok(port: int) -> bool:
    body, headers = signed(text_form(phone(0), "hi"))
    status, _ = post(port, body, headers, timeout=5)
    return status == 200


def answers(port: int) -> bool:
    """Any HTTP reply: the server is up (functions without a signed-form entry point)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        connection.getresponse().read()
        return True
    finally:
        connection.close()


@dataclass(frozen=True)
class Function:
    source: str
    target: str
    ready: Callable[[int], bool] = answers


FUNCTIONS = {
    "webhook": Function("functions/webhook/main.py", "webhook", signed_webhook_ok),
    "hello": Function("bench/hello/main.py", "hello", signed_webhook_ok),
    "notifier": Function("functions/notifier/main.py", "notify"),
    "user_api": Function("functions/user_api/main.py", "user_api"),
    "gdpr_cleanup": Function("functions/gdpr_cleanup/main.py", "gdpr_cleanup"),
    "outbox_relay": Function("functions/outbox_relay/main.py", "outbox_relay"),
}


@dataclass(frozen=True)
class Served:
    port: int
    seconds: float  # from start until it first answered ``ready``
    pid: int


@contextmanager
def serve(function: Function, env: dict[str, str]) -> Iterator[Served]:
    """functions-framework serving ``function`` until the block ends."""
    port = devservices.free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(BIN / "functions-framework"),
            "--source",
            function.source,
            "--target",
            function.target,
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = started + 60
        while True:
            with suppress(OSError):
                if function.ready(port):
                    break
            if time.perf_counter() > deadline or process.poll() is not None:
                raise RuntimeError(f"{function.source}:{function.target} did not answer")
            time.sleep(0.005)
        yield Served(port, time.perf_counter() - started, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its children."""
    pids, total = [pid], 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    while pids:
        current = pids.pop()
        with suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
    return total
