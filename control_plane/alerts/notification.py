"""What a channel is told: one notification, built from an incident event (or a test), and what a
sender says happened. Every sender (senders/) takes a channel's config and a notification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from control_plane.settings import Settings

# incident.opened | incident.resolved | incident.flapping | incident.updated | incident.acknowledged
# | incident.reminder | test
TEST = "test"


@dataclass(frozen=True, slots=True)
class MonitorInfo:
    id: str
    name: str
    url: str | None
    type: str


@dataclass(frozen=True, slots=True)
class IncidentInfo:
    id: str
    kind: str  # DOWN | SSL_EXPIRY | DNS_CHANGE | NO_DATA
    cause: str | None
    regions: tuple[str, ...]
    started_at: datetime
    resolved_at: datetime | None
    duration_seconds: int | None
    status: str
    flapping: bool


@dataclass(frozen=True, slots=True)
class Notification:
    """`id` is the idempotency key receivers deduplicate on: the event's id (webhook-id), or the
    test's. PagerDuty deduplicates on the incident's id instead."""

    id: str
    type: str
    occurred_at: datetime
    org_id: str
    monitor: MonitorInfo | None  # None: a test
    incident: IncidentInfo | None  # None: a test
    message: str | None = None  # an update's words, a reminder's count, a test's text
    link: str | None = None  # the incident in the API (public URL + path)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    # False: sending again cannot help (e.g. the receiver says the URL is gone, 404/410), give up now.
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class SendContext:
    settings: Settings
    http: aiohttp.ClientSession  # refuses private addresses at connect time unless allowed
    extra: dict[str, Any] = field(default_factory=dict)


class Sender(Protocol):
    async def __call__(
        self, config: dict[str, Any], notification: Notification, context: SendContext
    ) -> SendOutcome: ...
