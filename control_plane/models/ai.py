"""What AI monitoring keeps: LLM monitors' events (raw, for a retention period), their hourly
rollups (what usage reads), each organization's events per UTC day (the plan's daily limit), the
insights the worker derives, and each monitor's cost alert."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.timefmt import utcnow
from control_plane.db import Base, UTCDateTime

EVENT_SUCCESS = "success"
EVENT_ERROR = "error"
SOURCE_API = "api"  # POST /api/ai/ingest
SOURCE_OTLP = "otlp"  # POST /api/ai/otlp/.../v1/traces


class AiEvent(Base):
    """One LLM call an application reported. High volume: written by the ingest's group commit,
    kept for a retention period, summed into AiUsageRollup in the same transaction."""

    __tablename__ = "ai_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # evt_...
    org_id: Mapped[str] = mapped_column(String(40))
    # No foreign key (as CheckResult): the ingest holds the monitor's row (FOR KEY SHARE) while it
    # writes, and deleting a monitor deletes its events after the monitor is gone.
    monitor_id: Mapped[str] = mapped_column(String(40))
    # The client's own id for the event (`eventId`; OTLP: trace and span id): a retry with it is
    # stored once and answered the same.
    client_event_id: Mapped[str | None] = mapped_column(String(128), default=None)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)  # of input_tokens
    reasoning_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)  # of output_tokens
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)  # None: the model is unpriced
    price_version: Mapped[str | None] = mapped_column(String(40), default=None)  # the price data's
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(8))  # success | error
    error: Mapped[str | None] = mapped_column(Text, default=None)
    prompt_hash: Mapped[str | None] = mapped_column(String(128), default=None)
    # `metadata` is the declarative base's own attribute: the column keeps the name, not the attribute.
    event_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    rag_docs_retrieved: Mapped[int | None] = mapped_column(Integer, default=None)
    rag_avg_relevance: Mapped[float | None] = mapped_column(Float, default=None)
    rag_retrieval_ms: Mapped[float | None] = mapped_column(Float, default=None)
    rag_context_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    source: Mapped[str] = mapped_column(String(8), default=SOURCE_API)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_ai_events_monitor_id_created_at", "monitor_id", "created_at"),
        Index("ix_ai_events_created_at", "created_at"),
        UniqueConstraint("monitor_id", "client_event_id", name="uq_ai_events_monitor_id_client_event_id"),
    )


class AiUsageRollup(Base):
    """A monitor's events of one hour, provider and model, summed: what ai-usage, insights and
    budgets read, so 30 days of millions of events are a few thousand rows.

    `latency_histogram` is a sparse log-scale histogram (control_plane/domain/histogram.py) of
    latency_ms: p95 of any span is a merge. The rag_* sums count only events that carried the
    field (`rag_*_events` of them), so their averages are over those events.
    """

    __tablename__ = "ai_usage_rollups"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(40))
    events: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)  # of the priced events
    unpriced_events: Mapped[int] = mapped_column(Integer, default=0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    latency_histogram: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    rag_events: Mapped[int] = mapped_column(Integer, default=0)  # events with any rag_* field
    rag_docs_events: Mapped[int] = mapped_column(Integer, default=0)
    rag_docs_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    rag_relevance_events: Mapped[int] = mapped_column(Integer, default=0)
    rag_relevance_sum: Mapped[float] = mapped_column(Float, default=0.0)
    rag_retrieval_events: Mapped[int] = mapped_column(Integer, default=0)
    rag_retrieval_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    rag_context_events: Mapped[int] = mapped_column(Integer, default=0)
    rag_context_tokens_sum: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_ai_usage_rollups_hour", "hour"),)


class AiDailyUsage(Base):
    """An organization's events accepted in one UTC day: the plan's daily limit counts these."""

    __tablename__ = "ai_daily_usage"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the day's UTC midnight
    events: Mapped[int] = mapped_column(Integer, default=0)


class AiInsight(Base):
    """A finding of the insights worker about one monitor's usage. One per (monitor, type,
    subject) — the subject is what it is about (a model, a prompt hash; "" when the type has one),
    so regenerating updates it instead of adding another. `active` is whether the finding still
    holds; a dismissed one keeps the numbers it was dismissed with (`dismissed_numbers`) and comes
    back only when its numbers change materially."""

    __tablename__ = "ai_insights"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ins_...
    org_id: Mapped[str] = mapped_column(String(40))
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200), default="")
    severity: Mapped[str] = mapped_column(String(16))  # info | warning | critical
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    savings: Mapped[float | None] = mapped_column(Float, default=None)  # USD per day
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the API's `metadata`
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    dismissed: Mapped[bool] = mapped_column(Boolean, default=False)
    dismissed_numbers: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("monitor_id", "type", "subject", name="uq_ai_insights_monitor_id_type_subject"),
    )


class CostAlert(Base):
    """A monitor's budgets: the budget worker mails `alert_emails` once per UTC day (month) when
    the spend crosses the daily (monthly) budget, and once at 80% of it."""

    __tablename__ = "cost_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ca_...
    org_id: Mapped[str] = mapped_column(String(40))
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), unique=True)
    daily_budget_usd: Mapped[float | None] = mapped_column(Float, default=None)
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float, default=None)
    alert_emails: Mapped[str] = mapped_column(Text)  # as given: comma-separated
    last_daily_alert: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_monthly_alert: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_daily_warning: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_monthly_warning: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
