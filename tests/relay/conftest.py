"""Relay fixtures: the run's topic on the shared emulator, a publisher, a subscription."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.adapters.pubsub import EventPublisher
from shared.relay_policy import RelayPolicy
from shared.settings import Settings, load_settings
from tests.relay.helpers import Subscription, publisher_for


@pytest.fixture(scope="session")
def relay_settings(pubsub: str) -> Settings:
    """Read after the pubsub fixture set PUBSUB_EMULATOR_HOST."""
    settings = load_settings()
    assert settings.pubsub_emulator_host == pubsub
    return settings


@pytest.fixture(scope="session")
def publisher(relay_settings: Settings) -> Iterator[EventPublisher]:
    built = publisher_for(relay_settings)  # creates the run's topic
    yield built
    built.close()


@pytest.fixture()
def subscription(
    publisher: EventPublisher, relay_settings: Settings, pubsub: str
) -> Iterator[Subscription]:
    created = Subscription(pubsub, relay_settings.google_cloud_project, relay_settings.pubsub_topic)
    yield created
    created.close()


@pytest.fixture()
def policy() -> RelayPolicy:
    return RelayPolicy(batch_size=100, publish_timeout_seconds=5.0, loop_seconds=0.0)
