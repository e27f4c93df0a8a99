"""The logs written while users register, mistype codes, send hostile input and get
erased contain no OTP code, auth token, pepper, full phone number or message body."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from tests.conftest import TEST_AUTH_TOKEN, TEST_OTP_PEPPER
from tests.webhook.conftest import PHONE, Bot

SECRET_BODY = "my secret journey from Leeds to York, seat 42"
OTHER = "+447700900456"


def test_logs_carry_no_codes_tokens_pepper_phones_or_bodies(
    bot: Bot, captured_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    codes: list[str] = []
    bot.say("hi")
    bot.say("YES")
    codes.append(bot.code())
    wrong = f"{(int(codes[-1]) + 1) % 10**6:06d}"
    bot.say(wrong)
    assert "verified" in bot.say(codes[-1])
    bot.say(SECRET_BODY)
    bot.register(OTHER)
    codes.append(bot.code(OTHER))
    bot.post(bot.form(SECRET_BODY, phone=OTHER), signature="forged")
    bot.post({**bot.form(SECRET_BODY), "From": f"whatsapp:{PHONE} <x>"})
    bot.say("DELETE")
    bot.say("YES")

    logs = captured_logs.getvalue() + capsys.readouterr().out
    lines = [line for line in logs.splitlines() if line.strip()]
    assert len(lines) > 10, "too few log lines: the capture is not working"
    for line in captured_logs.getvalue().splitlines():
        json.loads(line)  # each line is one JSON object
    forbidden: dict[str, Any] = {
        "auth token": TEST_AUTH_TOKEN,
        "pepper": TEST_OTP_PEPPER,
        "message body": SECRET_BODY,
        "phone": PHONE,
        "phone without +": PHONE[1:],
        "other phone": OTHER,
        "other phone without +": OTHER[1:],
        "wrong code": wrong,
    }
    forbidden.update({f"code {code}": code for code in codes})
    for what, needle in forbidden.items():
        # a code is six digits: not inside a longer hex id or the time stamp's microseconds
        pattern = re.compile(rf"(?<![0-9a-fA-F.]){re.escape(needle)}(?![0-9a-fA-F])")
        hits = [line for line in lines if pattern.search(line)]
        assert not hits, f"{what} appears in the logs: {hits[:2]}"
