"""The GDPR job killed with SIGKILL mid-run: each user is either fully anonymised or
untouched, and a re-run completes the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
USERS = 3000
CLI = str(Path(sys.executable).with_name("whatsapp-handler"))

ERASED = (
    "(SELECT count(*) FROM whatsapp_handler.outbox_events e"
    " WHERE e.event_type = 'user.gdpr.erased' AND e.aggregate_id::text = u.id::text)"
)
PREFS = "EXISTS (SELECT 1 FROM whatsapp_handler.user_preferences p WHERE p.user_id = u.id)"
STATES = f"""
SELECT
  count(*) FILTER (WHERE u.anonymized_at IS NOT NULL
      AND u.phone_number = 'ANON-' || left(replace(u.id::text, '-', ''), 15)
      AND u.display_name IS NULL AND u.otp_secret IS NULL
      AND NOT {PREFS} AND {ERASED} = 1) AS anonymised,
  count(*) FILTER (WHERE u.anonymized_at IS NULL
      AND u.phone_number LIKE '+4477%' AND u.display_name = 'Ada'
      AND u.otp_secret IS NOT NULL AND {PREFS} AND {ERASED} = 0) AS untouched,
  count(*) AS total
FROM whatsapp_handler.users u
"""


def add_inactive_users(sql: Any, n: int) -> None:
    sql(
        """
        INSERT INTO whatsapp_handler.users
            (id, phone_number, display_name, otp_secret, verified_at, otp_verified_at,
             terms_accepted_at, terms_version, last_active_at, created_at, updated_at)
        SELECT gen_random_uuid(), '+4477' || lpad(i::text, 8, '0'), 'Ada', repeat('ab', 32),
               t, t, t, 'v1', t, t, t
        FROM generate_series(1, :n) AS i,
             LATERAL (SELECT now() - interval '400 days' - i * interval '1 minute' AS t) AS x
        """,
        n=n,
    )
    sql(
        "INSERT INTO whatsapp_handler.user_preferences (user_id, delay_threshold_minutes)"
        " SELECT id, 30 FROM whatsapp_handler.users"
    )


def gdpr_job() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CLI, "gdpr"],
        env={**os.environ, "GDPR_BATCH_SIZE": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def test_a_killed_gdpr_job_leaves_each_user_whole_and_a_rerun_completes(sql: Any) -> None:
    add_inactive_users(sql, USERS)
    job = gdpr_job()
    deadline = time.monotonic() + 20
    # Kill it as soon as its first batch is committed, well before the end.
    while time.monotonic() < deadline:
        done = sql(
            "SELECT count(*) AS n FROM whatsapp_handler.outbox_events"
            " WHERE event_type = 'user.gdpr.erased'"
        )[0]["n"]
        if done > 0 or job.poll() is not None:
            break
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.communicate(timeout=10)
    assert job.returncode == -signal.SIGKILL, "the job finished before it could be killed"

    (state,) = sql(STATES)
    assert state["total"] == USERS
    assert state["anonymised"] + state["untouched"] == USERS, state  # nothing in between
    assert 0 < state["untouched"], state

    rerun = gdpr_job()
    _out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    (state,) = sql(STATES)
    assert state == {"anonymised": USERS, "untouched": 0, "total": USERS}
