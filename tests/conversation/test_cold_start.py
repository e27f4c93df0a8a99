"""What the webhook's cold start pays for, seen by a fresh interpreter: a module that is
slow to load (phonenumbers, the station list, rapidfuzz) is imported only when a message
needs it (D87). Each row runs a script and reads what it printed."""

from __future__ import annotations

import subprocess
import sys

import pytest

COLD_START = [
    pytest.param(
        # ~14 ms of the cold start, paid only for numbers off the UK mobile shortcut.
        "import sys; from shared import phone; "
        "phone.normalise_e164('+447700900123'); print('phonenumbers' in sys.modules); "
        "phone.normalise_e164('+14155238886'); print('phonenumbers' in sys.modules)",
        ["False", "True"],
        id="phonenumbers-only-for-numbers-off-the-shortcut",
    ),
    pytest.param(
        # Importing the module reads nothing; the list loads on first use, rapidfuzz on
        # the first typo.
        "import sys; from shared import stations as s; "
        "print(s.default_index.cache_info().currsize, 'rapidfuzz' in sys.modules); "
        "s.resolve('Leeds'); print(s.default_index.cache_info().currsize, 'rapidfuzz' in sys.modules); "
        "s.resolve('Edinbrugh'); print('rapidfuzz' in sys.modules)",
        ["0", "False", "1", "False", "True"],
        id="the-station-list-on-first-use-and-rapidfuzz-on-the-first-typo",
    ),
    pytest.param(
        "import sys; from shared import claim; print('shared.stations' in sys.modules); "
        "claim.parse_departure_time('8am'); print('shared.stations' in sys.modules); "
        "from datetime import UTC, datetime; "
        "claim.parse_station_answer('Leeds to York', now=datetime.now(UTC), window_days=28); "
        "print('shared.stations' in sys.modules, 'rapidfuzz' in sys.modules)",
        ["False", "False", "True", "False"],
        id="the-claim-parsers-load-the-station-list-at-a-stations-answer",
    ),
    pytest.param(
        # The conversation package and its store, as the webhook imports them: the
        # station list waits for a stations answer (free text at the menu is one: it may
        # name a journey).
        "import sys; from datetime import UTC, datetime; from uuid import UUID; "
        "from shared import conversation as c; "
        "from shared.adapters import conversation_store; "
        "print('shared.stations' in sys.modules); "
        "user = c.UserView(UUID(int=1), verified=True, blocked=False, terms_version='v'); "
        "config = c.ConversationConfig(terms_version='v', terms_url='u', claim_window_days=28, "
        "otp_ttl_seconds=300, support_email='e', conversation_idle_seconds=86400); "
        "now = datetime.now(UTC); "
        "menu = c.step(None, c.Inbound('SM1', 'HELP', user=user), now, config).state; "
        "print('shared.stations' in sys.modules); "
        "asked = c.step(menu, c.Inbound('SM2', 'CLAIM', user=user), now, config).state; "
        "dated = c.step(asked, c.Inbound('SM3', 'yesterday', user=user), now, config).state; "
        "print(dated.phase, 'shared.stations' in sys.modules); "
        "c.step(dated, c.Inbound('SM4', 'Leeds to York', user=user), now, config); "
        "print('shared.stations' in sys.modules)",
        ["False", "False", "claim_stations", "False", "True"],
        id="the-conversation-loads-the-station-list-at-its-first-stations-answer",
    ),
]


@pytest.mark.parametrize(("script", "shown"), COLD_START)
def test_a_slow_import_waits_for_the_message_that_needs_it(script: str, shown: list[str]) -> None:
    printed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert printed == shown
