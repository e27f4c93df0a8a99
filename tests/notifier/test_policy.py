"""The pure notification core: who may be messaged, the 24-hour window, template choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.notification_policy import (
    NotificationRequest,
    Send,
    SendTemplate,
    Skip,
    SkipReason,
    choose_template,
    decide,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
EN, CY, US, DEFAULT = ("HX" + c * 32 for c in "ecad")


def user(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid4(),
        "phone_number": "+447700900123",
        "verified_at": NOW - timedelta(days=3),
        "blocked_at": None,
        "anonymized_at": None,
        "last_active_at": NOW - timedelta(hours=1),
    }
    row.update(changes)
    return row


def preferences(**changes: Any) -> dict[str, Any]:
    return {"notification_enabled": True, "language": "en-GB", **changes}


def request(text: str | None = "Your claim was paid", **changes: Any) -> NotificationRequest:
    return NotificationRequest(notification_id="n-1", user_id=uuid4(), text=text, **changes)


@pytest.mark.parametrize(
    ("row", "prefs", "reason"),
    [
        (None, None, SkipReason.UNKNOWN_USER),
        (user(anonymized_at=NOW, blocked_at=NOW), None, SkipReason.ERASED),
        (user(blocked_at=NOW), preferences(), SkipReason.BLOCKED),
        (user(verified_at=None), preferences(), SkipReason.UNVERIFIED),
        (user(), preferences(notification_enabled=False), SkipReason.NOTIFICATIONS_OFF),
    ],
)
def test_only_verified_unblocked_opted_in_users_are_messaged(
    row: Any, prefs: Any, reason: SkipReason
) -> None:
    templated = request(templates={"default": DEFAULT})
    assert decide(row, prefs, templated, now=NOW, window=WINDOW) == Skip(reason)


def test_inside_the_window_free_text_is_sent_even_when_a_template_is_offered() -> None:
    decision = decide(
        user(), preferences(), request(templates={"default": EN}), now=NOW, window=WINDOW
    )
    assert decision == Send("Your claim was paid")


@pytest.mark.parametrize(
    ("silent_for", "inside"),
    [
        (timedelta(0), True),
        (timedelta(hours=23, minutes=59, seconds=59), True),
        (timedelta(hours=24), False),
        (timedelta(days=30), False),
        (-timedelta(minutes=1), True),  # our clock slightly behind the database's
    ],
)
def test_the_window_is_24_hours_since_the_users_last_message(
    silent_for: timedelta, inside: bool
) -> None:
    row = user(last_active_at=NOW - silent_for)
    with_template = request(templates={"default": EN}, content_variables={"1": "x"})

    text_only = decide(row, preferences(), request(), now=NOW, window=WINDOW)
    templated = decide(row, preferences(), with_template, now=NOW, window=WINDOW)

    if inside:
        assert text_only == templated == Send("Your claim was paid")
    else:
        assert text_only == Skip(SkipReason.OUTSIDE_SESSION_WINDOW)
        assert templated == SendTemplate(EN, {"1": "x"})


def test_a_template_only_request_sends_the_template_in_or_out_of_the_window() -> None:
    only_template = request(text=None, templates={"default": EN})
    for silent_for in (timedelta(hours=1), timedelta(days=2)):
        row = user(last_active_at=NOW - silent_for)
        assert decide(row, preferences(), only_template, now=NOW, window=WINDOW) == SendTemplate(EN)


def test_a_user_without_preferences_has_the_defaults() -> None:
    outside = user(last_active_at=NOW - timedelta(days=2))
    templated = request(templates={"default": DEFAULT, "en-GB": EN})
    assert decide(user(), None, request(), now=NOW, window=WINDOW) == Send("Your claim was paid")
    assert decide(outside, None, templated, now=NOW, window=WINDOW) == SendTemplate(EN)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("cy-GB", CY),  # its language
        ("CY-gb", CY),  # case does not matter
        ("en-GB", EN),  # the exact tag
        ("en-AU", EN),  # another region of the language, alphabetically first
        ("fr-FR", DEFAULT),
        ("", DEFAULT),
    ],
)
def test_the_template_variant_follows_the_users_language(language: str, expected: str) -> None:
    templates = {"default": DEFAULT, "cy": CY, "en-gb": EN, "en-us": US}
    assert choose_template(templates, language) == expected


def test_a_single_template_serves_every_language_and_none_means_no_template() -> None:
    assert choose_template({"default": EN}, "cy-GB") == EN
    assert choose_template({}, "en-GB") is None


def test_template_variables_go_to_twilio_as_a_json_object_of_strings() -> None:
    assert SendTemplate(EN, {"1": "08:02", "name": "Llŷr"}).variables_json() == (
        '{"1":"08:02","name":"Llŷr"}'
    )
    assert SendTemplate(EN).variables_json() is None


optional_time = st.none() | st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)


@given(
    verified_at=optional_time,
    blocked_at=optional_time,
    anonymized_at=optional_time,
    last_active_at=optional_time,
    enabled=st.none() | st.booleans(),
    language=st.text(max_size=10),
    text=st.none() | st.text(min_size=1, max_size=20),
    templates=st.dictionaries(st.sampled_from(["default", "en", "cy-gb"]), st.just(EN)),
)
def test_any_user_state_gets_a_decision_and_free_text_only_inside_the_window(
    verified_at: Any,
    blocked_at: Any,
    anonymized_at: Any,
    last_active_at: Any,
    enabled: bool | None,
    language: str,
    text: str | None,
    templates: dict[str, str],
) -> None:
    row = user(
        verified_at=verified_at,
        blocked_at=blocked_at,
        anonymized_at=anonymized_at,
        last_active_at=last_active_at,
    )
    prefs = (
        None if enabled is None else preferences(notification_enabled=enabled, language=language)
    )

    decision = decide(row, prefs, request(text, templates=templates), now=NOW, window=WINDOW)

    may_message = (
        verified_at is not None
        and blocked_at is None
        and anonymized_at is None
        and enabled is not False
    )
    if not may_message:
        assert isinstance(decision, Skip)
    if isinstance(decision, Send):
        assert last_active_at is not None and NOW - last_active_at < WINDOW
    if isinstance(decision, SendTemplate):
        assert decision.content_sid in templates.values()
