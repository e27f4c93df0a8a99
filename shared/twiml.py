"""TwiML replies, built by the twilio library (escaping, the XML declaration, the shape)."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse

CONTENT_TYPE = "text/xml"


def message_reply(text: str) -> str:
    """One WhatsApp message back to the sender."""
    response = MessagingResponse()
    response.message(text)
    return str(response.to_xml())


def empty_reply() -> str:
    """Nothing to say (a repeated delivery): Twilio sends no message."""
    return str(MessagingResponse().to_xml())
