"""Phone numbers as Twilio hands them to us: ``whatsapp:+E164`` -> ``+E164``. Pure.

Twilio has already vouched for the number (it delivered the WhatsApp message), so we check
its shape only: E.164 and a *possible* number for its country. Not numbering-plan
validity: Ofcom's drama range +447700900000..999, used in tests and examples, is not
assigned to any network and ``is_valid_number`` rejects it; ``is_possible_number`` does not.
"""

from __future__ import annotations

import re

from shared.ids import PhoneNumber

WHATSAPP_PREFIX = "whatsapp:"
_E164_SHAPE = re.compile(r"^\+[1-9][0-9]{1,14}$")
# A UK mobile number already in E.164 form: what Twilio sends for nearly every passenger.
# phonenumbers decides "possible" for +44 by the national number's length alone (10 digits
# is possible), strips no national prefix from one that starts with 7, and formats it back
# unchanged; so its parse (~40 us of a webhook request's CPU) is skipped for these,
# and phonenumbers is imported only for other numbers.
# tests/conversation/test_parsing.py checks both paths agree on every such number's form.
_UK_MOBILE_E164 = re.compile(r"\+447[0-9]{9}")


class InvalidPhoneNumber(ValueError):
    """The value is not a number in E.164 shape; the message is safe to show."""


def normalise_e164(raw: str) -> PhoneNumber:
    """``+44 7700 900123`` -> ``+447700900123``; InvalidPhoneNumber unless possible."""
    candidate = raw.strip()
    if _UK_MOBILE_E164.fullmatch(candidate):
        return PhoneNumber(candidate)
    return _parsed_e164(candidate)


def _parsed_e164(candidate: str) -> PhoneNumber:
    """The general path, by phonenumbers."""
    # Imported here: ~14 ms of the webhook's cold start, and the shortcut above serves
    # most numbers without it (sys.modules makes later calls' import a dict lookup).
    import phonenumbers

    if not candidate.startswith("+") or len(candidate) > 32:
        raise InvalidPhoneNumber("phone number must be in E.164 form, e.g. +447700900123")
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("phone number is not a number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("phone number has the wrong length for its country")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not _E164_SHAPE.match(e164):
        raise InvalidPhoneNumber("phone number is not in E.164 form")
    return PhoneNumber(e164)


def from_whatsapp_address(address: str) -> PhoneNumber:
    """Twilio's ``From`` for WhatsApp, ``whatsapp:+447700900123``, to E.164."""
    if not address.startswith(WHATSAPP_PREFIX):
        raise InvalidPhoneNumber("From must look like whatsapp:+447700900123")
    return normalise_e164(address.removeprefix(WHATSAPP_PREFIX))


def whatsapp_address(phone_number: str) -> str:
    return f"{WHATSAPP_PREFIX}{phone_number}"
