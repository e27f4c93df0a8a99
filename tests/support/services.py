"""Real PostgreSQL, Redis and the Pub/Sub emulator for the tests.

The code lives in shared/devservices.py, which `make dev` uses too; this module keeps
the tests' import path (``tests.support.services``) working.
"""

from __future__ import annotations

from tools.devservices import (
    EMULATOR_BIN,
    Started,
    emulator_answers,
    emulator_available,
    force_embedded,
    free_port,
    group_members,
    port_answers,
    postgres_admin_url,
    pubsub_emulator,
    redis_url,
    start_embedded_postgres,
    start_embedded_redis,
    start_pubsub_emulator,
    wait_until,
)

__all__ = [
    "EMULATOR_BIN",
    "Started",
    "emulator_answers",
    "emulator_available",
    "force_embedded",
    "free_port",
    "group_members",
    "port_answers",
    "postgres_admin_url",
    "pubsub_emulator",
    "redis_url",
    "start_embedded_postgres",
    "start_embedded_redis",
    "start_pubsub_emulator",
    "wait_until",
]
