"""Typed identifiers, so a user id is never passed where an event id is meant."""

from __future__ import annotations

from typing import NewType
from uuid import UUID

UserId = NewType("UserId", UUID)
EventId = NewType("EventId", UUID)
PhoneNumber = NewType("PhoneNumber", str)  # always E.164, e.g. +447700900123
CorrelationId = NewType("CorrelationId", str)
