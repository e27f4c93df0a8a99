"""Pub/Sub publishing for the outbox relay: one client per instance, ordered and batched.

- Message ordering is on (ordering key = aggregate id, contract section 6); the client
  refuses ordering keys otherwise.
- Every publish is sent with ``retry=None`` and an RPC timeout. With ordering enabled the
  client would otherwise retry a failed publish *forever*, holding the message (and every
  later one of its key) in memory through an outage and sending it behind the outbox's
  back. The outbox is our retry queue: a failure comes back to the relay, which records
  it, backs off and tries again.
- ``publish_all`` hands a whole batch to the client, then waits once, bounded, for all the
  futures: never one publish after another. After a failure the client pauses that
  ordering key; ``publish_all`` resumes it once the batch is settled.
- ``PUBSUB_EMULATOR_HOST`` (setting ``pubsub_emulator_host``): an insecure channel to the
  emulator with short reconnect backoff, no credentials.

google.cloud.pubsub_v1 costs ~0.4 s to import, so it is imported when a publisher is
built, not when this module is.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.settings import Settings

# Pub/Sub refuses a publish request over 10 MB (and so does the client library).
MAX_REQUEST_BYTES = 10_000_000

# Extra time to wait for the futures beyond the RPC timeout, so an RPC that times out is
# reported by the client (with its reason) rather than by our wait.
_WAIT_GRACE_SECONDS = 1.0


class Outcome(StrEnum):
    PUBLISHED = "published"
    FAILED = "failed"
    # Not attempted: an earlier message of the same ordering key failed first.
    NOT_SENT = "not_sent"


@dataclass(frozen=True)
class OutgoingMessage:
    data: bytes
    attributes: Mapping[str, str]
    ordering_key: str


@dataclass(frozen=True)
class PublishResult:
    outcome: Outcome
    message_id: str | None = None
    error: str | None = None
    # The message itself is at fault (too large, rejected as invalid): sending it again
    # will fail again. Otherwise the failure is about the service (unreachable, timeout).
    permanent: bool = False


@dataclass(frozen=True)
class PublisherConfig:
    project: str
    topic: str
    emulator_host: str | None = None
    # The relay gathers a whole batch before waiting, so a short linger costs little and
    # lets each ordering key's messages travel in one request.
    max_latency_seconds: float = 0.005
    max_messages: int = 1000
    max_bytes: int = 9_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> PublisherConfig:
        return cls(
            project=settings.google_cloud_project,
            topic=settings.pubsub_topic,
            emulator_host=settings.pubsub_emulator_host,
        )


def _emulator_channel(host: str) -> Any:
    import grpc

    return grpc.insecure_channel(
        host,
        options=[
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
            # A restarted emulator is found again within a second, not after gRPC's
            # default backoff of up to two minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


def _describe(error: BaseException) -> str:
    text = str(error).strip().replace("\n", " ")
    return f"{type(error).__name__}: {text}"[:500] if text else type(error).__name__


def request_bytes(topic_path: str, message: OutgoingMessage) -> int:
    """Size of a publish request carrying only ``message``; exact near the limit."""
    estimate = (
        len(topic_path)
        + len(message.data)
        + len(message.ordering_key)
        + sum(len(key) + len(value) for key, value in message.attributes.items())
    )
    if estimate < MAX_REQUEST_BYTES - 64 * 1024:
        return estimate  # far below the limit, however the framing counts
    from google.pubsub_v1 import types as gapic_types

    request = gapic_types.PublishRequest(
        topic=topic_path,
        messages=[
            gapic_types.PubsubMessage(
                data=message.data,
                attributes=dict(message.attributes),
                ordering_key=message.ordering_key,
            )
        ],
    )
    return int(gapic_types.PublishRequest.pb(request).ByteSize())


def _is_permanent(error: BaseException) -> bool:
    from google.api_core import exceptions as api_exceptions
    from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

    return isinstance(
        error,
        publisher_exceptions.MessageTooLargeError
        | api_exceptions.InvalidArgument
        | TypeError
        | UnicodeError,
    )


def _is_paused_key(error: BaseException) -> bool:
    from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

    return isinstance(error, publisher_exceptions.PublishToPausedOrderingKeyException)


class EventPublisher:
    """Built once per function instance (``deps()``); thread-safe like the client it wraps."""

    def __init__(self, config: PublisherConfig) -> None:
        import google.cloud.pubsub_v1 as pubsub_v1

        self.config = config
        kwargs: dict[str, Any] = {}
        if config.emulator_host:
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

            kwargs["transport"] = PublisherGrpcTransport(
                channel=_emulator_channel(config.emulator_host)
            )
        self.client = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_bytes=config.max_bytes,
                max_latency=config.max_latency_seconds,
                max_messages=config.max_messages,
            ),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
            **kwargs,
        )
        self.topic_path: str = self.client.topic_path(config.project, config.topic)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPublisher:
        return cls(PublisherConfig.from_settings(settings))

    def publish_all(
        self, messages: Sequence[OutgoingMessage], *, timeout_seconds: float
    ) -> list[PublishResult]:
        """Publish every message (in order per ordering key); one bounded wait for all.

        Results line up with ``messages``. A message after a failed one of the same key
        is NOT_SENT: publishing it would break the key's order.
        """
        results: list[PublishResult | None] = [None] * len(messages)
        pending: dict[int, concurrent.futures.Future[str]] = {}
        failed_keys: set[str] = set()
        for index, message in enumerate(messages):
            if message.ordering_key in failed_keys:
                results[index] = PublishResult(Outcome.NOT_SENT)
                continue
            size = request_bytes(self.topic_path, message)
            if size > MAX_REQUEST_BYTES:
                # Refused here, not by the client: google-cloud-pubsub 2.x raises
                # MessageTooLargeError after creating an empty batch for the ordering key,
                # and that batch never completes, so the key would publish nothing again
                # in this process.
                failed_keys.add(message.ordering_key)
                results[index] = PublishResult(
                    Outcome.FAILED,
                    error=f"MessageTooLarge: a {size}-byte publish request exceeds "
                    f"Pub/Sub's {MAX_REQUEST_BYTES} bytes",
                    permanent=True,
                )
                continue
            try:
                pending[index] = self.client.publish(
                    self.topic_path,
                    message.data,
                    ordering_key=message.ordering_key,
                    retry=None,
                    timeout=timeout_seconds,
                    **message.attributes,
                )
            except Exception as error:  # raised before anything was sent
                failed_keys.add(message.ordering_key)
                results[index] = PublishResult(
                    Outcome.FAILED, error=_describe(error), permanent=_is_permanent(error)
                )

        concurrent.futures.wait(
            list(pending.values()), timeout=timeout_seconds + _WAIT_GRACE_SECONDS
        )
        for index, future in pending.items():
            key = messages[index].ordering_key
            if not future.done():
                failed_keys.add(key)
                results[index] = PublishResult(
                    Outcome.FAILED, error=f"publish not acknowledged within {timeout_seconds} s"
                )
                continue
            problem = future.exception()
            if problem is None:
                results[index] = PublishResult(Outcome.PUBLISHED, message_id=future.result())
            elif _is_paused_key(problem):
                failed_keys.add(key)
                results[index] = PublishResult(Outcome.NOT_SENT, error=_describe(problem))
            else:
                failed_keys.add(key)
                results[index] = PublishResult(
                    Outcome.FAILED, error=_describe(problem), permanent=_is_permanent(problem)
                )
        for key in failed_keys:
            self.resume(key)
        return [result or PublishResult(Outcome.NOT_SENT) for result in results]

    def resume(self, ordering_key: str) -> None:
        """Let a key publish again after a failure (a no-op if it is not paused)."""
        try:
            self.client.resume_publish(self.topic_path, ordering_key)
        except (RuntimeError, ValueError):
            # Not paused (the failure happened before sending, or the RPC is still in
            # flight): nothing to resume now; a later publish finds it paused and the
            # relay resumes it then.
            pass

    def check_reachable(self, timeout_seconds: float = 3.0) -> None:
        """Raise unless Pub/Sub answers about our topic (health checks)."""
        from google.api_core import exceptions as api_exceptions

        try:
            self.client.get_topic(request={"topic": self.topic_path}, timeout=timeout_seconds)
        except api_exceptions.PermissionDenied:
            # A publisher-only service account may not read topic metadata: the service
            # answered, which is what a health check asks.
            return

    def ensure_topic_for_local_dev(self) -> None:
        """Create the topic on the emulator (make dev, tests). Production topics are
        Terraform's; this refuses to run against real Pub/Sub."""
        if not self.config.emulator_host:
            raise RuntimeError("ensure_topic_for_local_dev runs only against the emulator")
        from google.api_core import exceptions as api_exceptions

        try:
            self.client.create_topic(request={"name": self.topic_path}, timeout=10)
        except api_exceptions.AlreadyExists:
            pass

    def close(self) -> None:
        try:
            self.client.stop()
        except RuntimeError:  # already stopped
            pass
        self.client.transport.close()
