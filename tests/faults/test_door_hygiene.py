"""Issue 19, item 6 and three smaller items at the webhook's door: control characters in a
message, a value PostgreSQL refuses, a broken chunked body, X-Cloud-Trace-Context, and
unsigned POSTs to /status when no status callbacks are configured."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Services
from tests.webhook.conftest import PHONE, Bot, twiml_messages
from tools import devservices as svc

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "105445aa7843bc8bf206b12000100000"


def submitted(outbox: Any) -> list[dict[str, Any]]:
    return [row for row in outbox() if row["event_type"] == "journey.submitted"]


def to_the_summary(bot: Bot, stations: str) -> str:
    bot.register()
    assert "Which day" in bot.say("CLAIM")
    assert "Which stations" in bot.say("yesterday")
    reply = bot.say(stations)
    bot.say("08:02")
    return reply + "\n" + bot.say("SKIP")


# --- control characters ------------------------------------------------------------------


def test_a_nul_in_a_claim_answer_is_stripped_and_the_claim_is_submitted(
    bot: Bot, outbox: Any
) -> None:
    """Issue 19: `Leeds\\x00 to York` then `YES` was a 500 on every YES (JSONB refuses
    \\u0000), leaving the passenger stuck until CANCEL."""
    to_the_summary(bot, "Leeds\x00 to York")

    done = bot.say("YES")

    assert "We'll message you here" in done
    (row,) = submitted(outbox)
    assert (row["payload"]["origin"], row["payload"]["destination"]) == ("Leeds", "York")


@pytest.mark.parametrize("unwanted", ["\x01", "\ufffe", "\uffff"])
def test_characters_xml_cannot_carry_never_reach_the_twiml(bot: Bot, unwanted: str) -> None:
    bot.register()
    bot.say("CLAIM")
    bot.say("yesterday")

    response = bot.send(f"Leeds{unwanted} to York")

    (reply,) = twiml_messages(response)  # parses: well-formed XML
    assert "Leeds to York" in reply
    assert unwanted not in response.get_data(as_text=True)


def test_a_value_the_database_refuses_is_a_400_and_no_log_line_carries_the_text(
    bot: Bot, outbox: Any, captured_logs: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    """A state saved before the stripping (or any other way to a class-22 data error):
    a 400, never a 500, nothing written, no text of the message in any log line or
    traceback; the state is dropped, so the passenger is not stuck."""
    to_the_summary(bot, "Leeds to York")
    key = bot.webhook.module.deps().services.keys.conversation(PHONE)
    stored = bot.services.redis.get(key)
    assert stored is not None and b"Leeds" in stored
    bot.services.redis.set(key, stored.replace(b"Leeds", b"Lee\\u0000ds"), keepttl=True)
    before = outbox()

    response = bot.send("YES")

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json() == {"error": "the message holds a value that cannot be stored"}
    assert outbox() == before and submitted(outbox) == []
    logs = captured_logs.getvalue()
    output = capfd.readouterr()
    everything = logs + output.out + output.err
    assert "webhook.data_error" in logs and '"sqlstate":"22P05"' in logs
    for needle in ("Lee", "u0000ds", "Traceback"):
        assert needle not in everything, needle
    assert "CLAIM" in bot.say("MENU")  # not stuck: the poisoned state is gone


# --- X-Cloud-Trace-Context and /status ----------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 7000,
        f"{TRACE_ID}/1;o=1 <script>",
        f"{TRACE_ID}x/1",
        "not-a-trace/1;o=1",
        f"{TRACE_ID}/12a",
    ],
)
def test_the_trace_header_is_logged_only_in_its_documented_shape(
    bot: Bot, captured_logs: io.StringIO, hostile: str
) -> None:
    def traces_logged(header: str) -> set[str | None]:
        captured_logs.seek(0)
        captured_logs.truncate()
        bot.send("hi", headers={"X-Cloud-Trace-Context": header})
        lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
        assert lines
        return {line.get("logging.googleapis.com/trace") for line in lines}

    assert traces_logged(f"{TRACE_ID}/1;o=1") == {TRACE_ID}
    assert traces_logged(f"{TRACE_ID}/18446744073709551615") == {TRACE_ID}
    assert traces_logged(hostile) == {None}
    assert hostile not in captured_logs.getvalue()


def test_unsigned_status_posts_without_a_callback_url_write_no_error_line(
    bot: Bot, sql: Any, captured_logs: io.StringIO
) -> None:
    for _ in range(5):
        response = bot.post(
            {"MessageSid": "SM" + "f" * 32, "MessageStatus": "failed"},
            signature="forged",
            path="/status",
        )
        assert response.status_code == 403

    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert lines
    assert [line for line in lines if line["severity"] in ("ERROR", "CRITICAL")] == []
    assert sql("SELECT count(*) AS n FROM whatsapp_handler.outbox_events") == [{"n": 0}]


# --- a broken chunked body, on the served function (gunicorn decodes the chunks) ----------


@pytest.fixture(scope="module")
def served_webhook(services: Services) -> Iterator[int]:
    port = svc.free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "functions-framework"),
            "--source",
            "functions/webhook/main.py",
            "--target",
            "webhook",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the webhook did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def raw_status(port: int, request: bytes, *, half_close: bool = False) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


HEAD = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Twilio-Signature: x\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@pytest.mark.parametrize(
    ("body", "half_close"),
    [
        (b"zz\r\nBody=hi\r\n0\r\n\r\n", False),  # a chunk size that is no number
        (b"7\r\nBody=hi0\r\n\r\n", False),  # a chunk without its terminator
        (b"40\r\nBody=hi", True),  # the body ends inside a chunk
    ],
)
def test_a_broken_chunked_body_is_a_400(
    served_webhook: int, clean_state: Any, body: bytes, half_close: bool
) -> None:
    assert raw_status(served_webhook, HEAD + body, half_close=half_close) == 400
    # The control: a well-formed chunked body is read (and refused as unsigned).
    assert raw_status(served_webhook, HEAD + b"7\r\nBody=hi\r\n0\r\n\r\n") == 403
