"""Arranging users of every kind with literal SQL, and searching for a phone number
everywhere the service keeps data (every table of the database, every Redis key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import redis

from shared.redis_keys import RedisKeys
from shared.settings import load_settings

Sql = Callable[..., list[dict[str, Any]]]


def add_user(
    sql: Sql,
    phone: str,
    *,
    last_active_at: datetime,
    verified: bool = True,
    blocked_at: datetime | None = None,
    block_reason: str | None = None,
    anonymized_at: datetime | None = None,
    display_name: str | None = "Ada",
    user_id: UUID | None = None,
    preferences: bool = True,
) -> UUID:
    (row,) = sql(
        """
        INSERT INTO whatsapp_handler.users
            (id, phone_number, display_name, otp_secret, verified_at, otp_verified_at,
             terms_accepted_at, terms_version, last_active_at, blocked_at, block_reason,
             anonymized_at, created_at, updated_at)
        VALUES (COALESCE(CAST(:user_id AS uuid), gen_random_uuid()), :phone, :display_name,
                :otp_secret, :verified_at, :verified_at, :last_active_at, 'v1',
                :last_active_at, :blocked_at, :block_reason, :anonymized_at,
                :last_active_at, :last_active_at)
        RETURNING id
        """,
        user_id=None if user_id is None else str(user_id),
        phone=phone,
        display_name=display_name,
        otp_secret="ab" * 32,
        verified_at=last_active_at if verified else None,
        last_active_at=last_active_at,
        blocked_at=blocked_at,
        block_reason=block_reason,
        anonymized_at=anonymized_at,
    )
    if preferences:
        sql(
            "INSERT INTO whatsapp_handler.user_preferences (user_id, delay_threshold_minutes)"
            " VALUES (CAST(:user_id AS uuid), 30)",
            user_id=str(row["id"]),
        )
    return UUID(str(row["id"]))


def anon_marker(user_id: UUID) -> str:
    return "ANON-" + user_id.hex[:15]


def redis_keys() -> RedisKeys:
    settings = load_settings()
    assert settings.otp_pepper is not None
    return RedisKeys(settings.redis_key_prefix, settings.otp_pepper.get_secret_value().encode())


def tables_containing(sql: Sql, needle: str) -> list[str]:
    """Every base table of every non-system schema whose rows, as text, contain needle."""
    tables = sql(
        """
        SELECT table_schema, table_name FROM information_schema.tables
         WHERE table_type = 'BASE TABLE'
           AND table_schema NOT IN ('pg_catalog', 'information_schema')
        """
    )
    found = []
    for table in tables:
        name = f'"{table["table_schema"]}"."{table["table_name"]}"'
        (hit,) = sql(
            f"SELECT count(*) AS n FROM {name} AS t WHERE strpos(t::text, :needle) > 0",
            needle=needle,
        )
        if hit["n"]:
            found.append(name)
    return found


def redis_entries_containing(client: redis.Redis, prefix: str, needles: list[str]) -> list[str]:
    """Keys under prefix whose name or value (any type) contains one of needles."""
    found = []
    for raw_key in client.scan_iter(match=f"{prefix}*", count=1000):
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        kind = client.type(raw_key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value: Any = client.get(raw_key)
        elif kind == "hash":
            value = client.hgetall(raw_key)
        elif kind == "list":
            value = client.lrange(raw_key, 0, -1)
        elif kind == "set":
            value = client.smembers(raw_key)
        elif kind == "zset":
            value = client.zrange(raw_key, 0, -1)
        else:
            value = ""
        text = key + " " + repr(value)
        if any(needle in text for needle in needles):
            found.append(key)
    return found
