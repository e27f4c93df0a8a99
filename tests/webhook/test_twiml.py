"""Our TwiML template against twilio's own builder: the same bytes for any reply text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.twiml.messaging_response import MessagingResponse

from shared import twiml

# XML 1.0 cannot carry most control characters or lone surrogates; neither can Twilio.
_XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=[chr(0)]), max_size=300
)


def twilio_reply(text: str) -> str:
    response = MessagingResponse()
    response.message(text)
    return str(response.to_xml())


@settings(max_examples=300, deadline=None)
@given(text=_XML_TEXT)
def test_a_reply_is_what_twilio_builds(text: str) -> None:
    assert twiml.message_reply(text) == twilio_reply(text)


def test_markup_in_a_reply_is_escaped_like_twilio_does() -> None:
    text = "Reply <YES> & \"go\" to 'start'\n> ok"
    assert twiml.message_reply(text) == twilio_reply(text)
    assert "&lt;YES&gt; &amp;" in twiml.message_reply(text)


def test_the_empty_reply_is_what_twilio_builds() -> None:
    assert twiml.empty_reply() == str(MessagingResponse().to_xml())
    assert twiml.message_reply("") == twilio_reply("")
