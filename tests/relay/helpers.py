"""Arranging outbox rows in bulk, and reading back what reached an emulator subscription."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from shared.adapters.pubsub import EventPublisher, PublisherConfig
from shared.settings import Settings

Sql = Callable[..., list[dict[str, Any]]]


def aggregate_ids(count: int) -> list[UUID]:
    return [uuid4() for _ in range(count)]


def insert_events(
    sql: Sql,
    *,
    count: int,
    aggregates: list[UUID],
    event_type: str = "user.verified",
    first_seq: int = 0,
    seconds_ago: float = 60.0,
) -> list[UUID]:
    """``count`` events spread round-robin over ``aggregates``; payload ``{"seq": n}`` with
    created_at increasing in seq order (1 ms apart, ending ``seconds_ago`` before now), so
    the order of an aggregate's events is the order of their seq. Ids in seq order."""
    rows = sql(
        """
        INSERT INTO whatsapp_handler.outbox_events
               (id, aggregate_id, aggregate_type, event_type, payload, correlation_id,
                created_at)
        SELECT gen_random_uuid(),
               (CAST(:aggregates AS uuid[]))[1 + (i % :aggregate_count)],
               'user', :event_type,
               jsonb_build_object('seq', :first_seq + i),
               'corr-' || (:first_seq + i),
               now() - make_interval(secs => :seconds_ago)
                     - make_interval(secs => (:count - i) * 0.001)
          FROM generate_series(0, :count - 1) AS i
        RETURNING id, payload
        """,
        aggregates=[str(a) for a in aggregates],
        aggregate_count=len(aggregates),
        event_type=event_type,
        first_seq=first_seq,
        seconds_ago=seconds_ago,
        count=count,
    )
    rows.sort(key=lambda row: row["payload"]["seq"])
    return [UUID(str(row["id"])) for row in rows]


def unpublished_count(sql: Sql) -> int:
    (row,) = sql(
        "SELECT count(*) AS n FROM whatsapp_handler.outbox_events WHERE published_at IS NULL"
    )
    return int(row["n"])


def published_ids(sql: Sql) -> set[UUID]:
    rows = sql("SELECT id FROM whatsapp_handler.outbox_events WHERE published_at IS NOT NULL")
    return {UUID(str(row["id"])) for row in rows}


@dataclass(frozen=True)
class Received:
    message_id: str
    data: dict[str, Any]
    raw: bytes
    attributes: dict[str, str]
    ordering_key: str

    @property
    def event_id(self) -> UUID:
        return UUID(self.attributes["event_id"])


def _subscriber(host: str) -> Any:
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", -1)])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


class Subscription:
    """A subscription of our own on the topic (ordered), created before anything is
    published that a test wants to see; deleted at the end."""

    def __init__(self, host: str, project: str, topic: str) -> None:
        self.client = _subscriber(host)
        self.topic_path = f"projects/{project}/topics/{topic}"
        self.path = self.client.subscription_path(project, f"relay-test-{uuid4().hex[:12]}")
        self.client.create_subscription(
            request={
                "name": self.path,
                "topic": self.topic_path,
                "enable_message_ordering": True,
                "ack_deadline_seconds": 60,
            },
            timeout=10,
        )
        self.received: list[Received] = []

    def pull(self, *, until: Callable[[list[Received]], bool], timeout: float) -> list[Received]:
        """Pull and ack until ``until(all received so far)`` holds or ``timeout`` passes."""
        from google.api_core import exceptions

        deadline = time.monotonic() + timeout
        while not until(self.received) and time.monotonic() < deadline:
            try:
                response = self.client.pull(
                    request={"subscription": self.path, "max_messages": 1000}, timeout=2
                )
            except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
                continue
            messages = list(response.received_messages)
            if not messages:
                time.sleep(0.05)
                continue
            for item in messages:
                message = item.message
                self.received.append(
                    Received(
                        message_id=message.message_id,
                        data=json.loads(message.data),
                        raw=bytes(message.data),
                        attributes=dict(message.attributes),
                        ordering_key=message.ordering_key,
                    )
                )
            self.client.acknowledge(
                request={"subscription": self.path, "ack_ids": [m.ack_id for m in messages]},
                timeout=10,
            )
        return self.received

    def pull_ids(self, expected: Iterable[UUID], *, timeout: float = 20) -> list[Received]:
        """Everything until every expected event arrived, then a short look for extras."""
        wanted = set(expected)
        self.pull(until=lambda got: wanted <= {m.event_id for m in got}, timeout=timeout)
        settle_until = time.monotonic() + 0.5
        self.pull(until=lambda _: time.monotonic() >= settle_until, timeout=1.0)
        return self.received

    def close(self) -> None:
        try:
            self.client.delete_subscription(request={"subscription": self.path}, timeout=5)
        except Exception:  # noqa: S110 - the emulator may be gone already
            pass
        self.client.close()


def by_aggregate(messages: Iterable[Received]) -> dict[str, list[Received]]:
    grouped: dict[str, list[Received]] = defaultdict(list)
    for message in messages:
        grouped[message.ordering_key].append(message)
    return grouped


def first_occurrences(messages: Iterable[Received]) -> list[Received]:
    seen: set[UUID] = set()
    first: list[Received] = []
    for message in messages:
        if message.event_id not in seen:
            seen.add(message.event_id)
            first.append(message)
    return first


def publisher_for(settings: Settings, host: str | None = None) -> EventPublisher:
    config = PublisherConfig.from_settings(settings)
    if host is not None:
        config = PublisherConfig(project=config.project, topic=config.topic, emulator_host=host)
    publisher = EventPublisher(config)
    publisher.ensure_topic_for_local_dev()
    return publisher


class FakeClock:
    """The relay's wall clock, moved by the test (backoff without sleeping)."""

    def __init__(self, start: Any) -> None:
        self.now = start

    def __call__(self) -> Any:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)
