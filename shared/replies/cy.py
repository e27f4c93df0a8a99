"""Welsh (Cymraeg) replies: none yet, so every key falls back to English.

The catalogue is ready for a translator: copy ``en.py``'s ``TEXTS`` here and translate
each text, keeping the ``{fields}`` and the command words the bot reads (YES, CLAIM...).
``shared.replies.is_complete("cy")`` tells when every key has its Welsh text.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.replies.keys import R

TEXTS: Mapping[R, str] = {}
