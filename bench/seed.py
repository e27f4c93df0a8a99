"""The bench's data: 1,000,000 users (every tenth inactive) and 1,010,000 outbox rows."""

from __future__ import annotations

import secrets
import time

from tools.devservices import admin_connection

USERS = 1_000_000
INACTIVE_USERS = USERS // 10  # user i is inactive when i % 10 == 9 (see seed)
INACTIVE_DAYS = 200  # older than GDPR_INACTIVITY_DAYS (180); the others are at most 167
PUBLISHED, UNPUBLISHED = 1_000_000, 10_000


def phone(i: int) -> str:
    return f"+4477{i:08d}"


def active_phones(count: int) -> list[str]:
    """``count`` distinct users the GDPR job never touches (user ``i`` is inactive when
    ``i % 10 == 9``), in random order: each is used once, so the per-number rate limit
    (20 a minute) never trips and no request is a deduplicated repeat."""
    picks = secrets.SystemRandom().sample(range(USERS - INACTIVE_USERS), count)
    return [phone(k // 9 * 10 + k % 9) for k in picks]


def seed(url: str) -> float:
    """Seconds it took to write the users, their preferences and the outbox."""
    started = time.perf_counter()
    connection = admin_connection(url)
    try:
        connection.run(
            f"""
            INSERT INTO whatsapp_handler.users
                   (phone_number, display_name, verified_at, otp_verified_at,
                    terms_accepted_at, terms_version, last_active_at)
            SELECT '+4477' || lpad(i::text, 8, '0'), 'Bench ' || i,
                   now() - interval '30 days', now() - interval '30 days',
                   now() - interval '30 days', '2025-11-30',
                   CASE WHEN i % 10 = 9
                        THEN now() - make_interval(days => {INACTIVE_DAYS}, hours => i % 1000)
                        ELSE now() - make_interval(hours => i % 4000)
                   END
              FROM generate_series(0, {USERS - 1}) AS i
            """
        )
        connection.run(
            "INSERT INTO whatsapp_handler.user_preferences (user_id)"
            " SELECT id FROM whatsapp_handler.users"
        )
        connection.run(
            f"""
            INSERT INTO whatsapp_handler.outbox_events
                   (aggregate_id, aggregate_type, event_type, payload, correlation_id,
                    created_at, published_at)
            SELECT CAST(md5('agg-' || (i % 50000)) AS uuid), 'user', 'user.verified',
                   jsonb_build_object('seq', i), 'bench-' || i,
                   now() - make_interval(secs => ({PUBLISHED + UNPUBLISHED} - i) * 0.01),
                   CASE WHEN i < {PUBLISHED} THEN now() END
              FROM generate_series(0, {PUBLISHED + UNPUBLISHED - 1}) AS i
            """
        )
        connection.run("VACUUM ANALYZE whatsapp_handler.users")
        connection.run("VACUUM ANALYZE whatsapp_handler.user_preferences")
        connection.run("VACUUM ANALYZE whatsapp_handler.outbox_events")
    finally:
        connection.close()
    return time.perf_counter() - started
