"""docs/events/notification.request.schema.json and the notifier's parser are one contract.

Publishers validate against the JSON Schema; the notifier parses with pydantic. Requests
are drawn field by field from valid and invalid values, and both must give the same
verdict. (hypothesis-jsonschema cannot run with the installed hypothesis; see
tests/user_api/test_openapi.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.notification_policy import MalformedNotification, parse_notification

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(
    (ROOT / "docs/events/notification.request.schema.json").read_text(encoding="utf-8")
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
EN, CY, US = ("HX" + c * 32 for c in "eca")
USER = str(uuid4())

FIELDS: dict[str, tuple[list[Any], list[Any]]] = {  # name: (valid values, invalid values)
    "notification_id": (
        ["n-1", "claim-dispatcher:claim-1234:paid", str(uuid4()), "a" * 128],
        ["", "a" * 129, "has space", "n/1", 7, None],
    ),
    "user_id": ([USER, USER.upper()], ["42", USER.replace("-", ""), "{" + USER + "}", 12, None]),
    "text": (
        ["hi", "x" * 1600, "Llŷr 🚆 08:02"],
        ["", "   ", "x" * 1601, 5, None, ["hi"]],
    ),
    "content_sid": (
        [EN, {"default": EN}, {"default": EN, "cy-GB": CY}, {"default": EN, "en-US": US, "cy": CY}],
        [
            "MG" + "e" * 32,
            "HX123",
            {"cy": CY},
            {"default": "HX1"},
            {"default": EN, "not a tag": CY},
            {},
            [EN],
            None,
        ],
    ),
    "content_variables": (
        [{}, {"1": "08:02", "2": "32"}, {"name": "x" * 1600}],
        [
            {"1": 2},
            {"bad key": "x"},
            {"1": "x" * 1601},
            {str(i): "x" for i in range(101)},
            "x",
            None,
        ],
    ),
    "correlation_id": (["corr-1", "a" * 64], ["has space", "a" * 65, None]),
    "phone_number": ([], ["+447700900123"]),  # not a field: refused
}


def accepted_by_parser(request: dict[str, Any]) -> bool:
    try:
        parse_notification(json.dumps(request).encode())
    except MalformedNotification:
        return False
    return True


def test_the_schema_is_valid_draft_2020_12_and_its_examples_parse() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for name, definition in SCHEMA["properties"].items():
        for example in definition.get("examples", []):
            request: dict[str, Any] = {"notification_id": "n-1", "user_id": USER, "text": "hi"}
            request[name] = example
            if name == "content_variables":
                request["content_sid"] = EN
            assert VALIDATOR.is_valid(request), (name, example)
            assert accepted_by_parser(request), (name, example)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid fields, some left out, now and then a bad one: both verdicts are common."""
    request: dict[str, Any] = {}
    for name, (valid, invalid) in FIELDS.items():
        roll = draw(st.integers(0, 19))
        if roll == 0 and invalid:
            request[name] = draw(st.sampled_from(invalid))
        elif roll >= 6 and valid:
            request[name] = draw(st.sampled_from(valid))
    return request


@settings(max_examples=400, deadline=None)
@given(requests())
def test_the_schema_and_the_parser_agree_on_every_request(request: dict[str, Any]) -> None:
    assert VALIDATOR.is_valid(request) == accepted_by_parser(request)


@given(
    st.fixed_dictionaries(
        {
            "notification_id": st.from_regex(r"\A[A-Za-z0-9._:\-]{1,128}\Z"),
            "user_id": st.uuids().map(str),
            "text": st.text(min_size=1, max_size=1600).filter(str.strip),
        }
    )
)
def test_every_plain_text_request_the_schema_allows_is_accepted(request: dict[str, Any]) -> None:
    assert VALIDATOR.is_valid(request)
    assert accepted_by_parser(request)


def test_the_one_rule_the_schema_cannot_say_a_language_twice_in_different_case() -> None:
    request = {
        "notification_id": "n-1",
        "user_id": USER,
        "content_sid": {"default": EN, "en": EN, "EN": US},
    }
    assert VALIDATOR.is_valid(request)
    with pytest.raises(MalformedNotification, match="twice"):
        parse_notification(json.dumps(request).encode())
