"""Hostile input at every door but the webhook's message path (tests/faults/test_hostile_input.py
has that): Twilio's status callback, the user API, the scheduled job functions and the
notifier. Hypothesis, 40 examples per property, through functions-framework's test clients
on the real PostgreSQL, Redis, Pub/Sub emulator and Twilio stand-in.

Every answer is a defined one: a 4xx with a JSON ``{"error": ...}``, or the function's normal
answer; never a 5xx, never a stack trace in a body, never a write or a message that the
request was not entitled to."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode
from uuid import UUID

import functions_framework
import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_AUTH_TOKEN, Services, sign
from tests.gdpr.helpers import add_user
from tests.notifier.conftest import MODES, envelope_for, post_event

ROOT = Path(__file__).resolve().parents[2]
FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STATUS_URL = "https://whatsapp-handler.example.test/webhook/status"
PHONE = "+447700900731"
METACHARACTERS = [
    "'; DROP TABLE whatsapp_handler.users; --",
    '" OR 1=1 --',
    "<Response><Message>pwned</Message></Response>",
    "../../etc/passwd",
    "%00",
    "%2e%2e%2f",
    "\\x00\\",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "\u202e\u0000\ufeff",
    "🚆" * 40,
    "A" * 5000,
]
TEXT = st.one_of(st.sampled_from(METACHARACTERS), st.text(max_size=60))
METHODS = st.sampled_from(
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO"]
)
QUERY = st.dictionaries(st.one_of(st.just("dry_run"), TEXT), TEXT, max_size=4)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"{}",
            b'{"dry_run": true}',
            b'{"dry_run": "true"}',
            b'{"dry_run": null}',
            b"[true]",
            b"null",
            b"[" * 5000 + b"]" * 5000,
            b'{"dry_run": true, "dry_run": false}',
            b"\xff\xfe\x00",
            b"x" * 5000,
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | TEXT,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3)
        ),
        max_leaves=10,
    ).map(lambda value: json.dumps(value).encode()),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ]
)


def assert_defined(response: Any, allowed: set[int], path: str = "/") -> None:
    """One of the allowed statuses; no traceback; an error (4xx) is JSON naming it.

    A path with ``//`` is redirected (308) to its merged form by werkzeug's router before
    any function of ours runs: a defined answer too, carrying nothing of ours."""
    body = response.get_data(as_text=True)
    if response.status_code == 308 and "//" in path:
        return
    if response.status_code == 404 and framework_answers(path):
        assert "Traceback" not in body
        return
    assert response.status_code in allowed, f"{response.status_code}: {body[:300]}"
    assert "Traceback" not in body and 'File "' not in body, body[:300]
    if 400 <= response.status_code < 500 and response.request.method != "HEAD":
        assert response.is_json, body[:300]
        assert isinstance(response.get_json().get("error"), str), body[:300]


def framework_answers(path: str) -> bool:
    """Paths functions-framework answers with its own HTML 404, before any function of ours
    runs: a line break in the path (its catch-all route does not match one), and the two
    paths it reserves."""
    decoded = unquote(path)
    return "\n" in decoded or decoded in ("/robots.txt", "/favicon.ico")


def counts(sql: Any) -> dict[str, int]:
    (row,) = sql(
        "SELECT (SELECT count(*) FROM whatsapp_handler.users) AS users,"
        " (SELECT count(*) FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL)"
        "   AS anonymised,"
        " (SELECT count(*) FROM whatsapp_handler.outbox_events) AS events,"
        " (SELECT count(*) FROM whatsapp_handler.notification_deliveries) AS deliveries"
    )
    return {key: int(value) for key, value in row.items()}


def app_for(directory: str, target: str, signature_type: str = "http") -> Any:
    return functions_framework.create_app(  # type: ignore[no-untyped-call]
        target=target,
        source=str(ROOT / f"functions/{directory}/main.py"),
        signature_type=signature_type,
    )


def close_built(module: Any) -> None:
    if module.deps.cache_info().currsize:
        module.deps().close()
    module.deps.cache_clear()


# --- the webhook's POST /status (Twilio's StatusCallback) -------------------------------


@dataclass
class StatusDoor:
    client: Any
    services: Services


@pytest.fixture()
def status_door(clean_state: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusDoor]:
    """A webhook app of its own with STATUS_CALLBACK_URL configured."""
    monkeypatch.setenv("STATUS_CALLBACK_URL", STATUS_URL)
    app = app_for("webhook", "webhook")
    module = sys.modules["main"]
    yield StatusDoor(client=app.test_client(), services=clean_state)
    close_built(module)


STATUS_FIELDS = [
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "ErrorMessage",
    "AccountSid",
    "From",
    "To",
    "ChannelToAddress",
]
STATUS_FORMS = st.dictionaries(
    st.one_of(st.sampled_from(STATUS_FIELDS), st.text(max_size=10)),
    st.one_of(st.sampled_from(["failed", "undelivered", "delivered", "FAILED "]), TEXT),
    max_size=8,
)


def nothing_written(door: StatusDoor, sql: Any) -> None:
    assert counts(sql) == {"users": 0, "anonymised": 0, "events": 0, "deliveries": 0}
    prefix = door.services.redis_prefix
    assert list(door.services.redis.scan_iter(match=f"{prefix}*", count=10_000)) == []
    assert door.services.twilio.messages == []


@FAST
@given(
    form=STATUS_FORMS,
    signature=st.one_of(
        st.just(""),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
        st.sampled_from(["over the message URL", "with another token", "over other fields"]),
    ),
)
def test_unsigned_or_forged_status_callbacks_are_403_and_write_nothing(
    status_door: StatusDoor, sql: Any, form: dict[str, str], signature: str
) -> None:
    forged = {
        "over the message URL": sign("https://whatsapp-handler.example.test/webhook", form),
        "with another token": sign(STATUS_URL, form, token="another-" + TEST_AUTH_TOKEN),
        "over other fields": sign(STATUS_URL, {**form, "MessageStatus": "forged"}),
    }.get(signature, signature)
    assume(forged != sign(STATUS_URL, form))
    response = status_door.client.post(
        "/status",
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": forged},
    )

    assert_defined(response, {400, 403})
    nothing_written(status_door, sql)


@FAST
@given(form=STATUS_FORMS, path=st.sampled_from(["/status", "/status/", "/webhook/status"]))
def test_signed_status_callbacks_with_hostile_fields_never_5xx_and_write_nothing(
    status_door: StatusDoor, sql: Any, form: dict[str, str], path: str
) -> None:
    response = status_door.client.post(
        path,
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": sign(STATUS_URL, form)},
    )

    assert_defined(response, {204, 400, 413})
    nothing_written(status_door, sql)


# --- user_api: any path, method and query ---------------------------------------------


@pytest.fixture()
def user_api(clean_state: Services) -> Iterator[Any]:
    app = app_for("user_api", "user_api")
    module = sys.modules["main"]
    yield app.test_client()
    close_built(module)


def user_paths(user_id: UUID) -> st.SearchStrategy[str]:
    segment = TEXT.map(lambda text: quote(text, safe=""))
    raw = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
    return st.one_of(
        st.sampled_from(
            [
                f"/api/v1/users/{user_id}",
                f"/api/v1/users/{str(user_id).upper()}/preferences",
                f"/api/v1/users/{user_id}/",
                f"//api/v1/users/{user_id}",
                f"/api/v1/users/{user_id}/preferences/extra",
                f"/api/v1/users/{user_id}%00",
                f"/api/v1/users/{{{user_id}}}",
                "/api/v1/users/",
                "/api/v1/users/%2e%2e/%2e%2e/health",
                "/health",
                "/health/",
                "/",
                "/robots.txt",
                "/favicon.ico",
            ]
        ),
        segment.map(lambda s: f"/api/v1/users/{s}"),
        segment.map(lambda s: f"/api/v1/users/{s}/preferences"),
        raw.map(lambda s: "/" + s.replace("?", "").replace("#", "").lstrip("/")),
    )


@pytest.fixture()
def live_user(user_api: Any, sql: Any) -> UUID:
    return add_user(sql, PHONE, last_active_at=datetime.now(UTC) - timedelta(hours=1))


@FAST
@given(data=st.data(), method=METHODS, query=QUERY)
def test_user_api_answers_any_path_method_and_query_without_a_5xx(
    user_api: Any, live_user: UUID, data: st.DataObject, method: str, query: dict[str, str]
) -> None:
    path = data.draw(user_paths(live_user))
    response = user_api.open(path, method=method, query_string=query)

    assert_defined(response, {200, 400, 404, 405, 410}, path)
    if response.status_code == 200 and method != "HEAD":
        assert response.is_json
    if response.status_code == 405:
        assert "GET" in response.headers["Allow"]


# --- the scheduled job functions: outbox_purge, gdpr_cleanup, outbox_relay -----------------


@dataclass
class Jobs:
    purge: Any
    gdpr: Any
    kept_user: UUID


@pytest.fixture()
def jobs(clean_state: Services, sql: Any) -> Iterator[Jobs]:
    purge_app = app_for("outbox_relay", "outbox_purge")
    purge_module = sys.modules["main"]
    gdpr_app = app_for("gdpr_cleanup", "gdpr_cleanup")
    gdpr_module = sys.modules["main"]
    kept = add_user(sql, PHONE, last_active_at=datetime.now(UTC) - timedelta(days=1))
    yield Jobs(purge=purge_app.test_client(), gdpr=gdpr_app.test_client(), kept_user=kept)
    close_built(purge_module)
    close_built(gdpr_module)


def job_request(
    client: Any, method: str, path: str, query: dict[str, str], body: bytes, content_type: Any
) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.open(path, method=method, query_string=query, data=body, headers=headers)


JOB_PATHS = st.one_of(
    st.sampled_from(["/", "/health", "/health/", "//", "/run", "/%2e%2e", "/%3Fx", "/%0A"]),
    TEXT.map(lambda text: "/" + quote(text, safe="/")),
)


@FAST
@given(
    method=METHODS,
    path=JOB_PATHS,
    query=QUERY,
    body=BODIES,
    content_type=CONTENT_TYPES,
    job=st.sampled_from(["purge", "gdpr"]),
)
def test_purge_and_gdpr_jobs_answer_hostile_requests_with_a_4xx_or_their_summary(
    jobs: Jobs,
    sql: Any,
    method: str,
    path: str,
    query: dict[str, str],
    body: bytes,
    content_type: Any,
    job: str,
) -> None:
    client = jobs.purge if job == "purge" else jobs.gdpr
    response = job_request(client, method, path, query, body, content_type)

    assert_defined(response, {200, 400, 404, 405, 413}, path)
    if response.status_code == 200 and method != "HEAD":
        assert response.is_json
        assert isinstance(response.get_json(), dict)
    # The only user was active yesterday: no request, however hostile, erases her.
    assert counts(sql)["anonymised"] == 0
    assert sql(
        "SELECT phone_number FROM whatsapp_handler.users WHERE id = :id", id=str(jobs.kept_user)
    ) == [{"phone_number": PHONE}]


@pytest.fixture()
def relay_client(clean_state: Services, pubsub: str) -> Iterator[Any]:
    """The relay function; built after the pubsub fixture set PUBSUB_EMULATOR_HOST."""
    app = app_for("outbox_relay", "outbox_relay")
    module = sys.modules["main"]
    yield app.test_client()
    close_built(module)


@pytest.mark.pubsub
@FAST
@given(method=METHODS, path=JOB_PATHS, query=QUERY, body=BODIES, content_type=CONTENT_TYPES)
def test_the_relay_function_answers_hostile_requests_with_a_4xx_or_its_summary(
    relay_client: Any, method: str, path: str, query: dict[str, str], body: bytes, content_type: Any
) -> None:
    response = job_request(relay_client, method, path, query, body, content_type)

    assert_defined(response, {200, 404, 405}, path)
    if response.status_code == 200 and method not in ("HEAD",):
        summary = response.get_json()
        if "status" not in summary:  # not /health: the relay's summary
            assert summary["published"] == 0 and summary["failed"] == 0


# --- the notifier: hostile CloudEvents ---------------------------------------------------


NOTIFICATION_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs/events/notification.request.schema.json").read_text()),
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)


@dataclass
class NotifierDoor:
    client: Any
    services: Services
    user_id: str


@pytest.fixture()
def notifier_door(clean_state: Services, sql: Any) -> Iterator[NotifierDoor]:
    """The notifier, and a verified user inside the 24-hour window: a well-formed request
    for her would be sent, so 'nothing sent' means the hostile ones were refused."""
    app = app_for("notifier", "notify", signature_type="cloudevent")
    module = sys.modules["main"]
    user_id = add_user(sql, PHONE, last_active_at=datetime.now(UTC) - timedelta(minutes=5))
    yield NotifierDoor(client=app.test_client(), services=clean_state, user_id=str(user_id))
    close_built(module)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
MUTATIONS = st.sampled_from(
    [
        ("notification_id", "has spaces and ; DROP"),
        ("notification_id", ""),
        ("notification_id", 12),
        ("user_id", PHONE),
        ("user_id", "not-a-uuid"),
        ("user_id", None),
        ("text", ""),
        ("text", "   "),
        ("text", "x" * 1601),
        ("text", ["a list"]),
        ("content_sid", "HX-not-a-sid"),
        ("content_sid", {"cy": "HX" + "0" * 32}),
        ("content_variables", {"1": "x"}),
        ("unexpected", "field"),
    ]
)


@FAST
@given(
    shape=st.sampled_from(["mutated request", "any JSON", "raw data", "broken envelope"]),
    mutation=MUTATIONS,
    value=JSON_VALUES,
    raw=st.binary(max_size=200),
    attributes=st.dictionaries(TEXT, st.one_of(TEXT, JSON_VALUES), max_size=3),
    message_id=st.one_of(TEXT, JSON_VALUES),
    mode=st.sampled_from(MODES),
)
def test_hostile_notification_requests_are_acknowledged_and_nothing_is_sent(
    notifier_door: NotifierDoor,
    shape: str,
    mutation: tuple[str, Any],
    value: Any,
    raw: bytes,
    attributes: dict[str, Any],
    message_id: Any,
    mode: str,
) -> None:
    envelope: Any
    if shape == "mutated request":
        field, bad = mutation
        request = {
            "notification_id": "hostile-1",
            "user_id": notifier_door.user_id,
            "text": "Your train was late.",
            field: bad,
        }
        assert not NOTIFICATION_SCHEMA.is_valid(request)
        envelope = envelope_for(json.dumps(request).encode(), attributes=attributes)
    elif shape == "any JSON":
        assume(not NOTIFICATION_SCHEMA.is_valid(value))
        envelope = envelope_for(json.dumps(value).encode(), attributes=attributes)
    elif shape == "raw data":
        envelope = envelope_for(raw, attributes=attributes)
        try:
            assume(not NOTIFICATION_SCHEMA.is_valid(json.loads(raw)))
        except (ValueError, RecursionError):
            pass
    else:
        envelope = value if not isinstance(value, dict) else {"message": value}
        if isinstance(envelope, dict) and isinstance(envelope["message"], dict):
            envelope["message"].setdefault("data", base64.b64encode(raw).decode() + "!")
    if mode == "binary":  # the test's CloudEvent id (from messageId) becomes a header
        message_id = repr(message_id).encode("ascii", "backslashreplace").decode()
    if isinstance(envelope, dict) and isinstance(envelope.get("message"), dict):
        envelope["message"]["messageId"] = message_id
    if shape == "broken envelope" and mode == "push":
        # A push body that is no Pub/Sub push at all never reaches our function:
        # functions-framework answers it itself (see docs/reliability.md). As CloudEvents,
        # broken envelopes do reach it.
        mode = "structured"

    response = post_event(notifier_door.client, envelope, mode)

    body = response.get_data(as_text=True)
    # 200 acknowledges: no redelivery can make a malformed request well-formed.
    assert response.status_code == 200, f"{response.status_code}: {body[:300]}"
    assert "Traceback" not in body
    assert notifier_door.services.twilio.messages == []


@pytest.mark.parametrize(
    ("body", "answered_by_us"),
    [
        ("[1, 2]", True),
        ('"a string"', True),
        ('[{"message": {"data": "e30="}}]', True),
        ("[]", False),
        ("3", False),
        ("null", False),
        ("true", False),
        ("{}", False),
    ],
)
def test_push_bodies_that_are_not_a_json_object_get_a_4xx_never_a_500(
    notifier_door: NotifierDoor, sql: Any, body: str, answered_by_us: bool
) -> None:
    # Non-empty arrays and strings broke functions-framework's conversion before our code
    # ran (a 500); our TypeError handler answers them, the framework the rest (HTML 400).
    before = counts(sql)

    response = notifier_door.client.post("/", data=body, content_type="application/json")

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    if answered_by_us:
        assert response.get_json() == {"error": "body must be a Pub/Sub push: a JSON object"}
    assert counts(sql) == before
    assert notifier_door.services.twilio.messages == []


def test_a_type_error_of_our_own_stays_a_500_and_is_redelivered(
    notifier_door: NotifierDoor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler above answers only bodies that are not a JSON object: a bug of ours
    in a well-formed push must not be acknowledged as if the push were malformed."""

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise TypeError("a bug of ours")

    monkeypatch.setattr(sys.modules["main"], "deliver_notification", broken)
    request = {"notification_id": "bug-1", "user_id": notifier_door.user_id, "text": "Hi."}

    response = post_event(notifier_door.client, envelope_for(json.dumps(request).encode()), "push")

    assert response.status_code == 500
    assert notifier_door.services.twilio.messages == []


def test_control_a_well_formed_request_for_the_same_user_is_sent(
    notifier_door: NotifierDoor,
) -> None:
    """Without this, 'nothing sent' above could hold because nothing is ever sent."""
    request = {
        "notification_id": "control-1",
        "user_id": notifier_door.user_id,
        "text": "Your train was late.",
    }
    response = post_event(notifier_door.client, envelope_for(json.dumps(request).encode()))

    assert response.status_code == 200
    assert [m.body for m in notifier_door.services.twilio.messages] == ["Your train was late."]
