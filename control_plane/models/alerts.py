"""Where incident events go: an organization's alert channels, one delivery per event and channel
(claimed, sent, retried until delivered or given up), and every attempt at it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.timefmt import utcnow
from control_plane.db import Base, UTCDateTime

CHANNEL_TYPES = ("EMAIL", "SLACK", "WEBHOOK", "PAGERDUTY", "APPRISE")

# A delivery's life: pending (due at next_attempt_at) -> delivered | failed (gave up) | skipped
# (nothing to send: the channel was disabled or deleted, or the event must not page anyone).
DELIVERY_PENDING = "pending"
DELIVERY_DELIVERED = "delivered"
DELIVERY_FAILED = "failed"
DELIVERY_SKIPPED = "skipped"


class AlertChannel(Base):
    __tablename__ = "alert_channels"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    # Whole, secrets included (never answered whole: the API masks them).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_alert_channels_org_id_created_at", "org_id", "created_at"),)


class AlertDelivery(Base):
    """One notification to one channel: an incident event's, a reminder's, or a test's. Fanned out
    from the outbox once per (event, channel) (the unique key), claimed by one worker at a time
    (`claimed_until`, a lease: a worker killed mid-send leaves it to be sent again, under the same
    idempotency key), retried with backoff until `give_up_at`."""

    __tablename__ = "alert_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(40))
    channel_id: Mapped[str] = mapped_column(ForeignKey("alert_channels.id", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident_events.id", ondelete="CASCADE"), default=None
    )  # None: a test notification
    incident_id: Mapped[str | None] = mapped_column(String(40), default=None)
    kind: Mapped[str] = mapped_column(String(32))  # the event type (incident.opened, …) or "test"
    # What receivers deduplicate on (webhook-id; PagerDuty's dedup_key is the incident's id).
    idempotency_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DELIVERY_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        UniqueConstraint("event_id", "channel_id", name="uq_alert_deliveries_event_id_channel_id"),
        Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_channel_id_created_at", "channel_id", "created_at"),
    )


class DeliveryAttempt(Base):
    """One try at a delivery: when, how it went, how long it took, what the receiver said."""

    __tablename__ = "alert_delivery_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("alert_deliveries.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(40))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | failed
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        Index("ix_alert_delivery_attempts_channel_id_attempted_at", "channel_id", "attempted_at"),
        Index("ix_alert_delivery_attempts_delivery_id", "delivery_id"),
    )
