"""What the passenger's words mean, before any phase decides what to do with them: the
commands and their synonyms, everyday yes and no, and the values a sentence plainly
holds (an OTP code, a clock time, the answer asked to be changed). Pure functions of text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from enum import StrEnum

from shared import claim as claims
from shared.conversation.model import STEP_PHASES, Phase
from shared.otp import is_code_shaped


class Command(StrEnum):
    HELP = "help"
    MENU = "menu"
    STOP = "stop"
    START = "start"
    DELETE_MY_DATA = "delete my data"
    YES = "yes"
    NO = "no"
    RESEND = "resend"
    CLAIM = "claim"
    STATUS = "status"
    CANCEL = "cancel"
    SKIP = "skip"
    BACK = "back"
    ENGLISH = "english"
    CYMRAEG = "cymraeg"


KEYWORDS: Mapping[str, Command] = {
    **{command.value: command for command in Command},
    "delay": Command.CLAIM,
    "delete my details": Command.DELETE_MY_DATA,
    "unsubscribe": Command.STOP,
    "go back": Command.BACK,
    "previous": Command.BACK,
    "welsh": Command.CYMRAEG,
}
# Everyday ways to say yes or no (issue 20). A bare "ok" or "👍" does not erase anyone:
# the erasure confirmation takes only a reply that starts with the word YES.
YES_WORDS = frozenset(
    {
        "yeah",
        "yea",
        "yep",
        "yup",
        "y",
        "ok",
        "okay",
        "k",
        "sure",
        "correct",
        "\U0001f44d",
        "\u2705",
        "\u2714",
        "\u2714\ufe0f",
        "that's right",
        "thats right",
        "yes it is",
    }
)
NO_WORDS = frozenset({"nope", "nah", "n", "\U0001f44e", "\u274c"})
# Words dropped before a sentence is matched against KEYWORDS again, so "I want to make a
# claim", "Claim please" and "Please delete my data" are the commands they name.
FILLER_WORDS = frozenset(
    {
        "please",
        "pls",
        "plz",
        "i",
        "i'd",
        "id",
        "i'm",
        "im",
        "want",
        "wanna",
        "would",
        "like",
        "to",
        "make",
        "a",
        "an",
        "the",
        "my",
        "me",
        "can",
        "could",
        "you",
        "new",
        "let's",
        "lets",
        "let",
        "just",
        "all",
        "of",
        "thanks",
        "thank",
        "do",
        "need",
    }
)
# Menu choices by number, only where the menu offers them.
PHASE_KEYWORDS: Mapping[Phase, Mapping[str, Command]] = {
    Phase.MENU: {"1": Command.CLAIM, "2": Command.STATUS},
}

# Skin tones and the emoji presentation selector: "👍🏽" is "👍".
_EMOJI_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f]")


def normalise_text(text: str) -> str:
    plain = _EMOJI_MODIFIERS.sub("", text.replace("\u2019", "'"))
    return " ".join(plain.casefold().split()).strip(" .!,")


def _without_fillers(words: str) -> str:
    kept = (word.strip(",;:") for word in words.split())
    return " ".join(word for word in kept if word and word not in FILLER_WORDS)


LOOSE_KEYWORDS: Mapping[str, Command] = {
    _without_fillers(words): command for words, command in KEYWORDS.items()
}


def is_affirmative(text: str) -> bool:
    words = normalise_text(text)
    return words in YES_WORDS or _without_fillers(words) == Command.YES.value


def parse_command(text: str, phase: Phase) -> Command | None:
    words = normalise_text(text)
    exact = PHASE_KEYWORDS.get(phase, {}).get(words) or KEYWORDS.get(words)
    if exact is not None:
        return exact
    if words in YES_WORDS:
        # Erasing is for good: there, only an answer that starts with YES confirms it.
        return None if phase is Phase.CONFIRM_ERASURE else Command.YES
    if words in NO_WORDS:
        return Command.NO
    loose = _without_fillers(words)
    return LOOSE_KEYWORDS.get(loose) if loose else None


_CODE_IN_TEXT = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){5}(?![0-9])")


def code_in(text: str) -> str | None:
    """The 6-digit code in "224641", "224 641", "code is 224641", "my code is 224-641":
    the text's only digits, six of them, written together."""
    found = _CODE_IN_TEXT.findall(text)
    digits = [character for character in text if character.isascii() and character.isdigit()]
    if len(found) != 1 or len(digits) != 6:
        return None
    code = "".join(character for character in found[0] if character.isdigit())
    return code if is_code_shaped(code) else None


_FIELD_WORDS: Mapping[str, Phase] = {
    "date": Phase.CLAIM_DATE,
    "day": Phase.CLAIM_DATE,
    "station": Phase.CLAIM_STATIONS,
    "stations": Phase.CLAIM_STATIONS,
    "time": Phase.CLAIM_TIME,
    "departure": Phase.CLAIM_TIME,
    "ticket": Phase.CLAIM_TICKET,
    "photo": Phase.CLAIM_TICKET,
}
_CHANGE_WORDS = frozenset({"change", "wrong", "fix", "edit", "correct", "update", "redo"})
_WORD = re.compile(r"[a-z0-9']+")
MAX_REQUEST_WORDS = 8


def requested_field(text: str, phase: Phase) -> Phase | None:
    """The answer a passenger asks to change: "change date", "the time is wrong", and at
    the summary also a bare "time" or its number there (1 to 4)."""
    words = _WORD.findall(normalise_text(text))
    if not words or len(words) > MAX_REQUEST_WORDS:
        return None
    if phase is Phase.CLAIM_CONFIRM and len(words) == 1 and words[0] in ("1", "2", "3", "4"):
        return STEP_PHASES[int(words[0]) - 1]
    fields = {_FIELD_WORDS[word] for word in words if word in _FIELD_WORDS}
    if len(fields) != 1:
        return None
    asked = any(word in _CHANGE_WORDS for word in words)
    if asked or (phase is Phase.CLAIM_CONFIRM and len(words) <= 2):
        return fields.pop()
    return None


# Words that make a message with only a date a claim ("my train yesterday was late").
_CLAIM_WORDS = frozenset({"claim", "delay", "delayed", "late", "cancelled", "canceled"})


def _words(text: str) -> set[str]:
    return set(_WORD.findall(normalise_text(text)))


def mentions_a_delay(text: str) -> bool:
    """Whether the text names a claim or a delay ("late", "cancelled", ...)."""
    return bool(_words(text) & _CLAIM_WORDS)


def asks_for_a_change(text: str) -> bool:
    """Whether the text asks for something to change ("wrong", "fix", ...)."""
    return bool(_words(text) & _CHANGE_WORDS)


_TIME_IN_TEXT = re.compile(
    r"(?<![0-9/.:])(?:[0-9]{1,2}[:.][0-9]{2}(?:\s*[ap]\.?m\.?)?|[0-9]{1,2}\s*[ap]\.?m\.?)"
    r"(?![0-9/:])"
)


def time_in(text: str) -> time | None:
    """A clock time the text plainly gives: the whole answer, or one inside a sentence."""
    found = claims.parse_departure_time(text)
    if isinstance(found, time):
        return found
    inside = _TIME_IN_TEXT.findall(text.casefold())
    if len(inside) == 1:
        found = claims.parse_departure_time(inside[0])
        if isinstance(found, time):
            return found
    return None
