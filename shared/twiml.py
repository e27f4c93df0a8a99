"""TwiML replies: the document twilio's MessagingResponse builds, from a template.

MessagingResponse goes through ElementTree (~25-60 us a reply, on every message); the
reply is always the same two elements around one escaped text, so it is written here
directly. tests/webhook/test_twiml.py checks, on generated texts, that every reply is
byte for byte what MessagingResponse().message(text).to_xml() gives.
"""

from __future__ import annotations

from html import escape  # & < > as xml.sax.saxutils does; saxutils would cost ~4 ms to import

CONTENT_TYPE = "text/xml"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_EMPTY = f"{_DECLARATION}<Response />"


def message_reply(text: str) -> str:
    """One WhatsApp message back to the sender."""
    if not text:
        return f"{_DECLARATION}<Response><Message /></Response>"  # as ElementTree writes it
    return f"{_DECLARATION}<Response><Message>{escape(text, quote=False)}</Message></Response>"


def empty_reply() -> str:
    """Nothing to say (a repeated delivery): Twilio sends no message."""
    return _EMPTY
