"""Monitors and what their checks leave: raw results, rollups and their queue, screenshots."""

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
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.timefmt import utcnow
from control_plane.db import Base, UTCDateTime
from control_plane.domain.roles import Role as Role  # the column type; importers of models keep it


class Monitor(Base):
    __tablename__ = "monitors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(2048), default=None)
    interval: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(10), default="GET")
    expected_status: Mapped[int | None] = mapped_column(Integer, default=None)
    expected_keyword: Mapped[str | None] = mapped_column(String(500), default=None)
    regions: Mapped[list[str]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Routes unauthenticated pings (HEARTBEAT monitors only): unguessable.
    heartbeat_token: Mapped[str | None] = mapped_column(String(60), unique=True, default=None)
    # The alert channels its incidents go to (ids of its organization's); None: every active one.
    alert_channel_ids: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The newest result, kept here by the results service so that lists never search the history.
    last_check_status: Mapped[str | None] = mapped_column(String(8), default=None)
    last_check_response_time: Mapped[float | None] = mapped_column(Float, default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (Index("ix_monitors_org_id_created_at", "org_id", "created_at"),)


class CheckResult(Base):
    """One check's outcome from one region. High volume: written in batches, kept for a retention period."""

    __tablename__ = "check_results"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # No foreign key: checking one per inserted row cost ingestion a tenth of its throughput.
    # Instead result writers and monitor deletion exclude each other (services/results.py,
    # `exclude_result_writers`), and deleting a monitor deletes its results.
    monitor_id: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))
    response_time: Mapped[float | None] = mapped_column(Float, default=None)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    dns_ms: Mapped[float | None] = mapped_column(Float, default=None)
    tcp_ms: Mapped[float | None] = mapped_column(Float, default=None)
    tls_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ttfb_ms: Mapped[float | None] = mapped_column(Float, default=None)
    download_ms: Mapped[float | None] = mapped_column(Float, default=None)
    total_ms: Mapped[float | None] = mapped_column(Float, default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    agent_id: Mapped[str | None] = mapped_column(String(40), default=None)

    __table_args__ = (
        Index("ix_check_results_monitor_id_checked_at", "monitor_id", "checked_at"),
        Index("ix_check_results_checked_at", "checked_at"),
    )


class CheckRollup(Base):
    """Results of one monitor and region summed over an hour or a day: uptime, averages, p95.

    `histograms` holds, per measure (responseTime and each phase), sparse log-scale bucket counts
    (control_plane/histogram.py), so percentiles of any span are a merge, never a scan.
    """

    __tablename__ = "check_rollups"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    granularity: Mapped[str] = mapped_column(String(4), primary_key=True)  # "hour" | "day"
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    up_count: Mapped[int] = mapped_column(Integer, default=0)
    # Sums and counts of the measures that were present (a TCP check has no TLS phase).
    sums: Mapped[dict[str, float]] = mapped_column(JSON)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    histograms: Mapped[dict[str, dict[str, int]]] = mapped_column(JSON)

    __table_args__ = (
        # Covering on PostgreSQL: the dashboard's 30-day uptime is an index-only scan, not a table scan.
        Index(
            "ix_check_rollups_granularity_bucket_start",
            "granularity",
            "bucket_start",
            postgresql_include=["monitor_id", "count", "up_count"],
        ),
    )


class RollupBacklog(Base):
    """A stored result whose measures are not yet added to its hour's and day's rollups.

    Rewriting two rollup rows per result as results arrive was most of what ingestion cost, so a
    batch queues its results' measures here, in its own transaction, and a periodic job
    (workers/rollups.py) folds them into check_rollups in bulk, deleting what it folded in the
    same transaction. Readers of rollups add what is still queued here in the same statement, so
    whichever side of a fold they read, no result is missed or counted twice. No foreign key:
    a deleted monitor's queued rows are dropped by the fold instead of checked on every insert.
    """

    __tablename__ = "rollup_backlog"

    monitor_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    result_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    region: Mapped[str] = mapped_column(String(64))
    up: Mapped[bool] = mapped_column(Boolean)
    response_time: Mapped[float | None] = mapped_column(Float, default=None)
    dns_ms: Mapped[float | None] = mapped_column(Float, default=None)
    tcp_ms: Mapped[float | None] = mapped_column(Float, default=None)
    tls_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ttfb_ms: Mapped[float | None] = mapped_column(Float, default=None)
    download_ms: Mapped[float | None] = mapped_column(Float, default=None)
    total_ms: Mapped[float | None] = mapped_column(Float, default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)


class CheckScreenshot(Base):
    """A PNG a BROWSER check took (on failure, or by a `screenshot` step); goes with its result."""

    __tablename__ = "check_screenshots"

    check_id: Mapped[str] = mapped_column(
        ForeignKey("check_results.id", ondelete="CASCADE"), primary_key=True
    )
    png: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
