"""Pure parsers: claim answers (dates, stations, times), phone numbers and OTP codes."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import claim, otp, phone

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2026, 11, 24)),
        ("Yesterday", date(2026, 11, 23)),
        ("monday", date(2026, 11, 23)),
        ("Mon", date(2026, 11, 23)),
        ("on Friday", date(2026, 11, 20)),
        ("tuesday", date(2026, 11, 24)),
        ("last tuesday", date(2026, 11, 17)),
        ("15 Nov", date(2026, 11, 15)),
        ("15th November", date(2026, 11, 15)),
        ("Nov 15", date(2026, 11, 15)),
        ("15/11", date(2026, 11, 15)),
        ("15/11/2026", date(2026, 11, 15)),
        ("15-11-26", date(2026, 11, 15)),
        ("2026-11-15", date(2026, 11, 15)),
        ("1/11", date(2026, 11, 1)),  # day first: 1 November, not 11 January
        ("27 October", date(2026, 10, 27)),  # 28 days back: the edge of the window
    ],
)
def test_journey_dates(text: str, expected: date) -> None:
    assert claim.parse_journey_date(text, now=NOW, window_days=28) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("26 October", "within 28 days"),
        ("25/11", "future"),
        ("1/12/2026", "future"),
        ("2026", "couldn't read"),
        ("Nov", "couldn't read"),
        ("8", "couldn't read"),
        ("0802", "couldn't read"),
        ("31/11", "couldn't read"),
        ("", "couldn't read"),
        ("x" * 500, "couldn't read"),
    ],
)
def test_journey_dates_refused_with_a_reason(text: str, reason: str) -> None:
    refused = claim.parse_journey_date(text, now=NOW, window_days=28)
    assert isinstance(refused, claim.Rejected) and reason in refused.reason


def test_a_date_without_a_year_is_the_most_recent_one() -> None:
    new_year = datetime(2027, 1, 3, 10, tzinfo=UTC)
    assert claim.parse_journey_date("28 Dec", now=new_year, window_days=28) == date(2026, 12, 28)
    far = claim.parse_journey_date("28 Mar", now=new_year, window_days=400)
    assert far == date(2026, 3, 28)


def test_today_is_the_uk_day_not_the_utc_day() -> None:
    late_summer_evening = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)  # 00:30 BST on 2 July
    assert claim.parse_journey_date("today", now=late_summer_evening, window_days=28) == date(
        2026, 7, 2
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:02", time(8, 2)),
        ("8:02", time(8, 2)),
        ("8.02", time(8, 2)),
        ("8:02am", time(8, 2)),
        ("8:02 pm", time(20, 2)),
        ("8am", time(8, 0)),
        ("8 AM", time(8, 0)),
        ("8 p.m.", time(20, 0)),
        ("12am", time(0, 0)),
        ("12pm", time(12, 0)),
        ("0802", time(8, 2)),
        ("802", time(8, 2)),
        ("20:15", time(20, 15)),
        ("20", time(20, 0)),
        ("noon", time(12, 0)),
    ],
)
def test_departure_times(text: str, expected: time) -> None:
    assert claim.parse_departure_time(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("8", "8am or 8pm"),
        ("13pm", "clock"),
        ("25:00", "clock"),
        ("8:60", "clock"),
        ("soon", "read"),
    ],
)
def test_departure_times_refused(text: str, reason: str) -> None:
    refused = claim.parse_departure_time(text)
    assert isinstance(refused, claim.Rejected) and reason in refused.reason


@pytest.mark.parametrize(
    ("journey_date", "departure", "expected"),
    [
        (date(2026, 10, 24), time(8, 2), "2026-10-24T08:02:00+01:00"),
        (date(2026, 10, 25), time(8, 2), "2026-10-25T08:02:00+00:00"),
        (date(2026, 10, 25), time(1, 30), "2026-10-25T01:30:00+01:00"),  # first of the two
        (date(2026, 3, 28), time(8, 2), "2026-03-28T08:02:00+00:00"),
        (date(2026, 3, 29), time(8, 2), "2026-03-29T08:02:00+01:00"),
        (date(2026, 3, 29), time(0, 59), "2026-03-29T00:59:00+00:00"),
        (date(2026, 3, 29), time(2, 0), "2026-03-29T02:00:00+01:00"),
    ],
)
def test_departures_carry_the_offset_of_their_day(
    journey_date: date, departure: time, expected: str
) -> None:
    found = claim.departure_at(journey_date, departure, now=NOW)
    assert isinstance(found, datetime) and found.isoformat() == expected


def test_the_missing_spring_hour_is_refused() -> None:
    refused = claim.departure_at(date(2026, 3, 29), time(1, 30), now=NOW)
    assert isinstance(refused, claim.Rejected) and "clocks went forward" in refused.reason


@pytest.mark.parametrize(
    ("text", "origin", "destination"),
    [
        ("Leeds to York", "Leeds", "York"),
        ("from Leeds to York", "Leeds", "York"),
        ("FROM leeds TO york", "leeds", "york"),
        ("Leeds - York", "Leeds", "York"),
        ("Leeds\u2013York", "Leeds", "York"),
        ("Leeds -> York", "Leeds", "York"),
        ("  Stockton-on-Tees   to  King's Cross ", "Stockton-on-Tees", "King's Cross"),
        ("Bristol Temple Meads to London Paddington.", "Bristol Temple Meads", "London Paddington"),
    ],
)
def test_stations_are_kept_as_typed(text: str, origin: str, destination: str) -> None:
    found = claim.parse_station_answer(text, now=NOW, window_days=28)
    assert isinstance(found, claim.StationAnswer)
    assert (found.origin, found.destination) == (origin, destination)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Leeds", "both stations"),
        ("Leeds to York to Hull", "just two"),
        ("York to york", "the same"),
        ("123 to 456", "letters"),
        (f"{'A' * 61} to York", "at most 60"),
        ("x" * 500, "longer"),
    ],
)
def test_stations_refused(text: str, reason: str) -> None:
    refused = claim.parse_station_answer(text, now=NOW, window_days=28)
    assert isinstance(refused, claim.Rejected) and reason in refused.reason


@given(text=st.text(max_size=300))
def test_the_parsers_never_raise(text: str) -> None:
    claim.parse_journey_date(text, now=NOW, window_days=28)
    claim.parse_departure_time(text)
    claim.parse_station_answer(text, now=NOW, window_days=28)


# --- phone numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "e164"),
    [
        ("whatsapp:+447700900123", "+447700900123"),
        ("whatsapp:+447700900000", "+447700900000"),
        ("whatsapp:+447700900999", "+447700900999"),
        ("whatsapp:+44 7700 900123", "+447700900123"),
        ("whatsapp:+14155238886", "+14155238886"),
        ("whatsapp:+4915123456789", "+4915123456789"),
    ],
)
def test_whatsapp_addresses_become_e164(address: str, e164: str) -> None:
    assert phone.from_whatsapp_address(address) == e164


@pytest.mark.parametrize(
    "address",
    [
        "+447700900123",
        "sms:+447700900123",
        "whatsapp:447700900123",
        "whatsapp:+44123",
        "whatsapp:+4477009001234567",
        "whatsapp:+",
        "whatsapp:",
        "whatsapp:+0123456789",
    ],
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(phone.InvalidPhoneNumber):
        phone.from_whatsapp_address(address)


@given(raw=st.text(max_size=40))
def test_phone_parsing_never_raises_anything_else(raw: str) -> None:
    try:
        assert re.match(r"^\+[1-9][0-9]{1,14}$", phone.normalise_e164(raw))
    except phone.InvalidPhoneNumber:
        pass


@given(national=st.from_regex(r"7[0-9]{9}", fullmatch=True))
def test_the_uk_mobile_shortcut_agrees_with_phonenumbers(national: str) -> None:
    number = "+44" + national
    assert phone.normalise_e164(number) == phone._parsed_e164(number) == number


def test_the_uk_mobile_shortcut_agrees_for_every_three_digit_prefix() -> None:
    # phonenumbers' GB metadata differs by prefix; its "possible" test must not.
    for prefix in range(1000):
        for tail in ("000000", "123456", "999999"):
            number = f"+447{prefix:03d}{tail}"
            assert phone.normalise_e164(number) == phone._parsed_e164(number) == number


@pytest.mark.parametrize(
    "raw",
    ["+44770090012", "+4477009001234", "+44 7700900123", "+4407700900123", "+447\uff1700900123"],
)
def test_near_uk_mobiles_take_the_general_path(raw: str) -> None:
    assert phone._UK_MOBILE_E164.fullmatch(raw.strip()) is None
    try:
        shortcut = phone.normalise_e164(raw)
    except phone.InvalidPhoneNumber:
        shortcut = None
    try:
        general = phone._parsed_e164(raw.strip())
    except phone.InvalidPhoneNumber:
        general = None
    assert shortcut == general


# --- OTP -----------------------------------------------------------------------------------

PEPPER = b"pepper"
PHONE = "+447700900123"


def test_codes_are_six_digits_and_vary() -> None:
    codes = {otp.generate_code() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in codes)
    assert len(codes) > 190


def test_the_hash_is_hmac_sha256_of_phone_and_code() -> None:
    expected = hmac.new(PEPPER, b"+447700900123042042", hashlib.sha256).hexdigest()
    assert otp.hash_code(PEPPER, PHONE, "042042") == expected
    assert otp.hash_code(PEPPER, "+447700900124", "042042") != expected  # bound to the number
    assert otp.hash_code(b"other", PHONE, "042042") != expected  # keyed


def stored(attempts: int = 1, expires_in: int = 300) -> otp.StoredOtp:
    return otp.StoredOtp(
        otp_hash=otp.hash_code(PEPPER, PHONE, "123456"),
        expires_at=NOW + timedelta(seconds=expires_in),
        attempts=attempts,
    )


@pytest.mark.parametrize(
    ("record", "code", "result", "left"),
    [
        (stored(), "123456", otp.OtpResult.VERIFIED, 0),
        (stored(3), "123456", otp.OtpResult.VERIFIED, 0),
        (stored(1), "654321", otp.OtpResult.WRONG, 2),
        (stored(2), "654321", otp.OtpResult.WRONG, 1),
        (stored(3), "654321", otp.OtpResult.EXHAUSTED, 0),
        (stored(expires_in=0), "123456", otp.OtpResult.EXPIRED, 0),
        (stored(expires_in=1), "123456", otp.OtpResult.VERIFIED, 0),
        (None, "123456", otp.OtpResult.NO_CODE, 0),
    ],
)
def test_check_code(
    record: otp.StoredOtp | None, code: str, result: otp.OtpResult, left: int
) -> None:
    check = otp.check_code(
        record, code=code, phone_number=PHONE, pepper=PEPPER, now=NOW, max_attempts=3
    )
    assert check == otp.OtpCheck(result, left)


def test_the_sms_holds_the_code_as_its_only_six_digit_number() -> None:
    body = otp.sms_body("007007", 300)
    assert re.findall(r"\d{6}", body) == ["007007"] and "5 minutes" in body
