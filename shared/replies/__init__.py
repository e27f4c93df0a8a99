"""Every reply the conversation sends, by language (issue 20, section 5).

A translation is a file: ``shared/replies/<language>.py`` holding ``TEXTS``, a mapping
from ``R`` (the reply's key) to its text, with ``{name}`` fields filled by ``say``. English
(``en``) is complete, and a test keeps it so; any other language may leave keys out, and
a missing key falls back to English. Languages are named by their BCP 47 primary subtag
(``en``, ``cy``), so ``en-GB`` and ``cy-GB`` (``user_preferences.language``) find theirs.
Pure data: importing it costs a few dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.replies import cy, en
from shared.replies.keys import R

__all__ = ["R", "catalogue", "is_complete", "say"]


# By BCP 47 primary subtag.
CATALOGUES: Mapping[str, Mapping[R, str]] = {"en": en.TEXTS, "cy": cy.TEXTS}


def catalogue(language: str) -> Mapping[R, str]:
    """The texts for ``language`` (a BCP 47 tag); English for a language we have none of."""
    primary = language.split("-", 1)[0].strip().lower()
    return CATALOGUES[primary] if primary in CATALOGUES else CATALOGUES["en"]


def say(language: str, key: R, **values: object) -> str:
    """The text of ``key`` in ``language``, falling back to English for a missing key."""
    template = catalogue(language).get(key) or en.TEXTS[key]
    return template.format(**values) if values else template


def is_complete(language: str) -> bool:
    """Whether ``language`` has its own text for every key."""
    texts = catalogue(language)
    return all(key in texts for key in R)
