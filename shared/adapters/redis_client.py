"""The Redis client, built once per instance, with short timeouts: the webhook must answer
Twilio inside 15 s even when Redis does not."""

from __future__ import annotations

import redis

from shared.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry_on_timeout=False,
        decode_responses=True,
    )
