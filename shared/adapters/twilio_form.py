"""Twilio's inbound webhook form, read and checked whole: the one place a posted message
becomes an ``InboundMessage`` (issue 21: the size and UTF-8 checks of the body and the
field checks live together).

``read_form`` reads the body itself, bounded (413 past ``MAX_REQUEST_BYTES``, 415 for
another content type, 400 for bytes that are not UTF-8 or too many fields);
``parse_twilio_form`` checks every field we act on for its exact shape (issue 19, D63)
and returns the message, or raises BadRequest with the reason (400). Neither writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from shared.events import Media
from shared.ids import PhoneNumber
from shared.phone import InvalidPhoneNumber, from_whatsapp_address

if TYPE_CHECKING:
    import flask

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 200
MAX_MEDIA = 10  # Twilio delivers at most 10 media per WhatsApp message
MAX_MEDIA_URL_CHARS = 2048
MAX_CONTENT_TYPE_CHARS = 255
MAX_BODY_CHARS = 4096  # WhatsApp's own limit for one message

# Twilio's signature is an HMAC over the URL and the sorted name + value pairs glued
# together with no separator, so the same signed bytes can be split into other fields
# (issue 19). Every field whose value we act on therefore has one exact shape, checked
# whole (fullmatch), so that no boundary can move into or out of it unnoticed; the
# MessageSid (never reused by Twilio, kept in the replay record) then names the message.
_MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-f]{32}")
_WHATSAPP_ADDRESS = re.compile(r"whatsapp:\+[1-9][0-9]{1,14}")
_NUM_MEDIA = re.compile(r"0|[1-9][0-9]?")
# https with a host name and a path of printable ASCII; plain http only to this machine
# (the local Twilio stand-in of `make dev` and the soak), which Twilio never sends.
_MEDIA_URL = re.compile(
    r"(?:https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"|http://(?:127\.0\.0\.1|localhost))(?::[0-9]{1,5})?/[!-~]*"
)
_MIME_NAME = r"[A-Za-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(rf"{_MIME_NAME}/{_MIME_NAME}(?:; ?{_MIME_NAME}={_MIME_NAME})*")
# C0 controls other than tab, newline and carriage return, and the non-characters
# U+FFFE/U+FFFF: not allowed in XML 1.0 (our TwiML echoes text) and \x00 not in JSONB.
_UNWANTED_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class InboundMessage:
    phone_number: PhoneNumber
    message_sid: str
    text: str
    media: tuple[Media, ...] = ()


def is_message_sid(value: str) -> bool:
    return _MESSAGE_SID.fullmatch(value) is not None


def clean_text(text: str) -> str:
    """``text`` without the characters XML 1.0 and JSONB cannot carry (stripped, D65)."""
    return _UNWANTED_CHARACTERS.sub("", text)


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def parse_twilio_form(form: Mapping[str, str], account_sid: str) -> InboundMessage:
    """Twilio's form fields to a message; BadRequest (400, with a reason) otherwise.

    ``account_sid`` is ours (TWILIO_ACCOUNT_SID): Twilio sends it on every webhook.
    Fields we do not act on are ignored, whatever they hold.
    """
    message_sid = _required(form, "MessageSid")
    if not is_message_sid(message_sid):
        raise BadRequest("MessageSid is malformed: SM or MM and 32 lower-case hex digits")
    for alias in ("SmsMessageSid", "SmsSid"):
        if alias in form and form[alias] != message_sid:
            raise BadRequest(f"{alias} differs from MessageSid")
    if _required(form, "AccountSid") != account_sid:
        raise BadRequest("AccountSid is not this service's account")
    sender = _required(form, "From")
    try:
        phone_number = from_whatsapp_address(sender)
    except InvalidPhoneNumber as error:
        raise BadRequest(f"From: {error}") from None
    if sender != f"whatsapp:{phone_number}":
        raise BadRequest("From must be exactly whatsapp:+ and the E.164 number")
    if not _WHATSAPP_ADDRESS.fullmatch(_required(form, "To")):
        raise BadRequest("To must be whatsapp:+ and an E.164 number")
    text = form.get("Body") or ""
    if len(text) > MAX_BODY_CHARS:
        raise BadRequest(f"Body is longer than {MAX_BODY_CHARS} characters")
    return InboundMessage(
        phone_number=phone_number,
        message_sid=message_sid,
        text=clean_text(text),
        media=_media(form),
    )


def _media(form: Mapping[str, str]) -> tuple[Media, ...]:
    raw_count = form.get("NumMedia")
    if raw_count is None or not _NUM_MEDIA.fullmatch(raw_count) or int(raw_count) > MAX_MEDIA:
        raise BadRequest(f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    count = int(raw_count)
    expected = {f"MediaUrl{index}" for index in range(count)}
    expected |= {f"MediaContentType{index}" for index in range(count)}
    for name in form:
        # Beyond NumMedia, or no canonical index (MediaUrl01): exactly NumMedia of each.
        if name.startswith(("MediaUrl", "MediaContentType")) and name not in expected:
            raise BadRequest(f"{name} does not match NumMedia")
    items = []
    for index in range(count):
        url = form.get(f"MediaUrl{index}") or ""
        if len(url) > MAX_MEDIA_URL_CHARS or not _MEDIA_URL.fullmatch(url):
            raise BadRequest(f"MediaUrl{index} must be an https URL")
        content_type = form.get(f"MediaContentType{index}") or ""
        if len(content_type) > MAX_CONTENT_TYPE_CHARS or not _CONTENT_TYPE.fullmatch(content_type):
            raise BadRequest(f"MediaContentType{index} is not a content type")
        items.append(Media(url=url, content_type=content_type.lower()))
    return tuple(items)


def read_form(request: flask.Request, max_bytes: int) -> MultiDict[str, str]:
    """The posted form, read by us so its size is bounded before anything is parsed."""
    if request.mimetype != FORM_CONTENT_TYPE:
        raise UnsupportedMediaType(f"body must be {FORM_CONTENT_TYPE}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
    try:
        raw = request.stream.read(max_bytes + 1)
    except Exception:
        # A broken chunked encoding (gunicorn's InvalidChunkSize, ChunkMissingTerminator,
        # NoMoreData) or a client that went away: the body cannot be read, a 400.
        raise BadRequest("body could not be read") from None
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    except ValueError:
        raise BadRequest(f"more than {MAX_FORM_FIELDS} form fields") from None
    return MultiDict(pairs)
