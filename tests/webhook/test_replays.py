"""Issue 19, items 1 and 2: a captured signed request never acts twice.

Twilio's signature is an HMAC over the URL and the sorted ``name + value`` pairs glued
together with no separator, so one signed request can be re-split into other fields
under the same signature; and it carries no time stamp, so it can be replayed after the
Redis de-duplication key has expired. Every field we act on has its exact shape, and a
MessageSid that changed state is kept in PostgreSQL (handled_messages): a re-split is
refused or is the same message, and a replay, however late, changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from shared.adapters.twilio_form import parse_twilio_form
from shared.errors import BadRequest
from tests.conftest import TEST_ACCOUNT_SID, TEST_WEBHOOK_URL, sign
from tests.webhook.conftest import PHONE, Bot, reply_text, twiml_messages

PHOTO = ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM9/Media/ME9", "image/png")


def counts(sql: Any) -> dict[str, int]:
    (row,) = sql(
        "SELECT (SELECT count(*) FROM whatsapp_handler.users) AS users,"
        " (SELECT count(*) FROM whatsapp_handler.users WHERE anonymized_at IS NOT NULL)"
        "   AS anonymised,"
        " (SELECT count(*) FROM whatsapp_handler.outbox_events) AS events,"
        " (SELECT count(*) FROM whatsapp_handler.handled_messages) AS handled"
    )
    return {name: int(value) for name, value in row.items()}


def forget_dedupe_keys(bot: Bot, *sids: str) -> None:
    """What the de-duplication TTL does, now: Redis no longer knows these MessageSids."""
    keys = bot.webhook.module.deps().services.keys
    bot.services.redis.delete(*(keys.message_sid(sid) for sid in sids))


def twilio_form(bot: Bot, text: str, media: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """Everything Twilio posts for a WhatsApp message, unknown fields included."""
    form = bot.form(text, media=media)
    sid = form["MessageSid"]
    return {
        **form,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "ProfileName": "Ada",
        "WaId": PHONE[1:],
        "MessageType": "image" if media else "text",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


# --- re-splits under one signature ------------------------------------------------------


def concatenation(form: dict[str, str]) -> tuple[str, list[int]]:
    """What Twilio's signature covers (after the URL), and where each key and value starts."""
    text, cuts = "", []
    for name, value in sorted(form.items()):
        cuts += [len(text), len(text) + len(name)]
        text += name + value
    return text, cuts


def resplit(text: str, cuts: list[int]) -> dict[str, str] | None:
    """The form whose keys start at cuts[0], cuts[2], ... and values at cuts[1], ..."""
    if not cuts or cuts[0] != 0 or len(cuts) % 2:
        return None
    bounds = [*cuts, len(text)]
    form: dict[str, str] = {}
    for index in range(0, len(cuts), 2):
        name = text[bounds[index] : bounds[index + 1]]
        if not name or name in form:
            return None
        form[name] = text[bounds[index + 1] : bounds[index + 2]]
    return form


# An edit of the cut list: move one cut, drop a key/value pair (merged into the value
# before it), or cut a new key/value pair out of the text.
EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.integers(1, 60), st.integers(-12, 12)),
        st.tuples(st.just("merge"), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("split"), st.integers(1, 2000), st.integers(1, 16)),
    ),
    min_size=1,
    max_size=4,
)


def edited(form: dict[str, str], edits: list[tuple[str, int, int]]) -> dict[str, str]:
    """A re-split of ``form`` that keeps its signature (or the example is discarded)."""
    text, cuts = concatenation(form)
    for kind, where, amount in edits:
        if kind == "move":
            index = where % (len(cuts) - 1) + 1
            cuts[index] = min(max(cuts[index] + amount, 1), len(text))
        elif kind == "merge" and len(cuts) > 2:
            pair = (where % (len(cuts) // 2 - 1) + 1) * 2
            del cuts[pair : pair + 2]
        elif kind == "split":
            start = where % len(text)
            cuts += [start, min(start + amount, len(text))]
        cuts.sort()
    candidate = resplit(text, cuts)
    assume(candidate is not None and candidate != form)
    assert candidate is not None
    assume(sign(TEST_WEBHOOK_URL, candidate) == sign(TEST_WEBHOOK_URL, form))
    return candidate


def test_the_reported_resplit_is_refused_and_writes_nothing(bot: Bot, sql: Any) -> None:
    bot.register()
    form = bot.form("STATUS")
    signature = sign(TEST_WEBHOOK_URL, form)
    glued = {name: value for name, value in form.items() if name != "NumMedia"}
    glued["MessageSid"] = form["MessageSid"] + "NumMedia" + form["NumMedia"]
    assert sign(TEST_WEBHOOK_URL, glued) == signature  # the same signature, other fields
    before = counts(sql)

    response = bot.post(glued, signature=signature)

    assert response.status_code == 400
    assert "MessageSid" in response.get_json()["error"]
    assert counts(sql) == before


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(edits=EDITS, media=st.booleans())
def test_a_resplit_that_parses_is_the_same_message(
    bot: Bot, edits: list[tuple[str, int, int]], media: bool
) -> None:
    form = twilio_form(bot, "hello there", media=(PHOTO,) if media else ())
    original = parse_twilio_form(form, TEST_ACCOUNT_SID)
    candidate = edited(form, edits)

    try:
        message = parse_twilio_form(candidate, TEST_ACCOUNT_SID)
    except BadRequest:
        event("refused")
        return
    event("accepted: the same MessageSid")
    assert message.message_sid == original.message_sid
    assert message.phone_number == original.phone_number


def test_every_signed_resplit_is_refused_or_changes_nothing(bot: Bot, sql: Any) -> None:
    """The property of issue 19 on the served webhook: after the real message, every
    re-split with a valid signature is a 400 or an empty reply, and nothing more is
    written or sent, even with the Redis de-duplication key gone each time."""
    bot.register()
    # Unknown fields are allowed, whatever they hold, and change nothing.
    form = {**twilio_form(bot, "", media=(PHOTO,)), "ButtonPayload": "DELETE MY DATA"}
    assert "got your ticket" in reply_text(bot.post(form))
    before, sms = counts(sql), len(bot.services.twilio.messages)
    outcomes: set[int] = set()

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(edits=EDITS)
    def replay(edits: list[tuple[str, int, int]]) -> None:
        candidate = edited(form, edits)
        forget_dedupe_keys(bot, form["MessageSid"])
        bot.clock.advance(minutes=1)  # a fresh inbound rate-limit window each time

        response = bot.post(candidate, signature=sign(TEST_WEBHOOK_URL, form))

        assert response.status_code in (200, 400), response.get_data(as_text=True)
        if response.status_code == 200:
            assert twiml_messages(response) == []
        outcomes.add(response.status_code)
        event(f"status {response.status_code}")
        assert counts(sql) == before
        assert len(bot.services.twilio.messages) == sms

    replay()
    assert 400 in outcomes


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"MessageSid": "SMabc"}, "MessageSid is malformed"),
        ({"MessageSid": "SM" + "A" * 32}, "MessageSid is malformed"),
        ({"MessageSid": "SM" + "a" * 32 + "NumMedia0"}, "MessageSid is malformed"),
        ({"MessageSid": "MG" + "a" * 32}, "MessageSid is malformed"),
        ({"SmsMessageSid": "SM" + "b" * 32}, "SmsMessageSid differs"),
        ({"SmsSid": "SM" + "b" * 32}, "SmsSid differs"),
        ({"AccountSid": None}, "AccountSid is required"),
        ({"AccountSid": "AC" + "2" * 32}, "AccountSid is not this service's account"),
        ({"AccountSid": "AC" + "1" * 32 + "Body"}, "AccountSid is not this service's account"),
        ({"To": None}, "To is required"),
        ({"To": "whatsapp:+447700900998NumMedia0"}, "To must be"),
        ({"NumMedia": None}, "NumMedia"),
        ({"NumMedia": "01"}, "NumMedia"),
        ({"NumMedia": " 0"}, "NumMedia"),
        ({"MediaUrl0": PHOTO[0]}, "MediaUrl0 does not match NumMedia"),
        ({"MediaContentType1": "image/png"}, "MediaContentType1 does not match NumMedia"),
        (
            {
                "NumMedia": "1",
                "MediaUrl0": PHOTO[0],
                "MediaContentType0": "image/png",
                "MediaUrl1": PHOTO[0],
            },
            "MediaUrl1 does not match NumMedia",
        ),
        (
            {
                "NumMedia": "1",
                "MediaUrl0": "http://example.com/m",
                "MediaContentType0": "image/png",
            },
            "MediaUrl0",
        ),
        (
            {"NumMedia": "1", "MediaUrl0": PHOTO[0] + " x", "MediaContentType0": "image/png"},
            "MediaUrl0",
        ),
        (
            {"NumMedia": "1", "MediaUrl0": PHOTO[0], "MediaContentType0": "image/png; x\x00"},
            "MediaContentType0",
        ),
    ],
)
def test_every_field_we_act_on_has_its_exact_shape(
    bot: Bot, sql: Any, change: dict[str, str | None], reason: str
) -> None:
    bot.register()
    form = twilio_form(bot, "hello")
    for name, value in change.items():
        if value is None:
            form.pop(name)
        else:
            form[name] = value
    before, sms = counts(sql), len(bot.services.twilio.messages)

    response = bot.post(form)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert reason.split()[0] in response.get_json()["error"]
    assert counts(sql) == before
    assert len(bot.services.twilio.messages) == sms


# --- replays after the de-duplication TTL --------------------------------------------------


def test_a_recorded_erasure_replayed_after_the_dedupe_ttl_erases_nothing(
    bot: Bot, sql: Any, outbox: Any
) -> None:
    """Issue 19's report: a victim's recorded `DELETE MY DATA` and earlier `YES`,
    replayed with their own signatures once Redis has forgotten them."""
    bot.say("hi")
    terms_yes = bot.form("YES")
    assert "sent a 6-digit code" in reply_text(bot.post(terms_yes))
    assert "verified" in bot.say(bot.code())
    delete = bot.form("DELETE MY DATA")
    assert "YES" in reply_text(bot.post(delete))
    bot.say("NO")
    before, sms, events = counts(sql), len(bot.services.twilio.messages), outbox()
    bot.clock.advance(days=2)
    forget_dedupe_keys(bot, terms_yes["MessageSid"], delete["MessageSid"])

    replies = [twiml_messages(bot.post(delete)), twiml_messages(bot.post(terms_yes))]

    assert replies == [[], []]
    assert counts(sql) == before and before["anonymised"] == 0
    assert outbox() == events
    assert len(bot.services.twilio.messages) == sms
    assert "CLAIM" in bot.say("MENU")  # the user is still there, verified


def test_a_replay_marks_the_sid_done_in_redis_again(bot: Bot, sql: Any) -> None:
    bot.register()
    form = bot.form("STATUS")
    reply_text(bot.post(form))
    forget_dedupe_keys(bot, form["MessageSid"])

    assert twiml_messages(bot.post(form)) == []

    keys = bot.webhook.module.deps().services.keys
    assert bot.services.redis.get(keys.message_sid(form["MessageSid"])) == b"done"
    assert sql(
        "SELECT message_sid, handled_at FROM whatsapp_handler.handled_messages"
        " WHERE message_sid = :sid",
        sid=form["MessageSid"],
    ) == [{"message_sid": form["MessageSid"], "handled_at": bot.clock.now}]


def test_a_message_that_failed_before_commit_leaves_no_replay_record(bot: Bot, sql: Any) -> None:
    bot.say("hi")
    key = bot.webhook.module.deps().services.keys.conversation(PHONE)
    bot.services.redis.delete(key)
    bot.services.redis.rpush(key, "not a conversation")  # reading it fails: WRONGTYPE
    form = bot.form("YES")

    assert bot.post(form).status_code == 503
    assert sql(
        "SELECT count(*) AS n FROM whatsapp_handler.handled_messages WHERE message_sid = :sid",
        sid=form["MessageSid"],
    ) == [{"n": 0}]

    bot.services.redis.delete(key)
    assert len(twiml_messages(bot.post(form))) == 1  # Twilio's retry is served
