"""The Redis client, built once per instance, with short timeouts: the webhook must answer
Twilio inside 15 s even when Redis does not."""

from __future__ import annotations

import threading
from typing import Any

import redis

from shared.settings import Settings


class PerThreadRedis(redis.Redis):
    """Every command runs on a connection of the calling thread's own.

    redis-py's pool locks, and checks the borrowed connection with a poll(2), on every
    command: ~20 us each, three times per webhook message. functions-framework serves a
    request on one thread from start to end, so each serving thread keeps one connection
    instead (a single-connection client over the same pool); it goes back to the pool
    when the thread ends. Pipelines, pub/sub and MONITOR borrow from the pool as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._per_thread = threading.local()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        own: redis.Redis | None = getattr(self._per_thread, "client", None)
        if own is None:
            own = redis.Redis(connection_pool=self.connection_pool, single_connection_client=True)
            self._per_thread.client = own
        return own.execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        own: redis.Redis | None = getattr(self._per_thread, "client", None)
        if own is not None:
            own.close()
            self._per_thread.client = None
        super().close()  # disconnects the pool: other threads' connections too


def redis_client(settings: Settings) -> redis.Redis:
    return PerThreadRedis.from_url(
        settings.redis_url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry_on_timeout=False,
        decode_responses=True,
    )
