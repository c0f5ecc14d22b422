"""What the incident engine keeps: each monitor's and region's state, the queue of results it has
yet to evaluate, incidents with their timeline, and the outbox of incident events (alerts deliver
from it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.timefmt import utcnow
from control_plane.db import Base, UTCDateTime

# Incident kinds: a monitor down (its checks failing, or a heartbeat late), a certificate inside
# its expiry threshold, DNS answers that changed, and checks that stopped arriving.
KIND_DOWN = "DOWN"
KIND_SSL_EXPIRY = "SSL_EXPIRY"
KIND_DNS_CHANGE = "DNS_CHANGE"
KIND_NO_DATA = "NO_DATA"
INCIDENT_KINDS = (KIND_DOWN, KIND_SSL_EXPIRY, KIND_DNS_CHANGE, KIND_NO_DATA)


class Incident(Base):
    """A monitor's downtime (or one of the other kinds): opened and resolved by the incident
    engine. At most one open incident of a kind per monitor, enforced by a partial unique index,
    so two replicas can never open two."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=KIND_DOWN)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cause: Mapped[str | None] = mapped_column(Text, default=None)
    # The regions failing when it opened (and any that failed while it was open).
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The latest status of its timeline: investigating | identified | monitoring | resolved.
    status: Mapped[str] = mapped_column(String(16), default="investigating")
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    # A dependency (config.dependsOn) that was down when this opened: no alert goes out for it.
    suppressed_by: Mapped[str | None] = mapped_column(String(40), default=None)
    in_maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(40), default=None)  # a user id
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Alerting: when its "opened" notice was fanned out to channels (held back while in
    # maintenance: sent when the window ends if it is still open), and its reminders.
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reminders: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_incidents_monitor_id_started_at", "monitor_id", "started_at"),
        Index("ix_incidents_org_id_started_at", "org_id", "started_at"),
        Index(
            "uq_incidents_one_open_per_kind",
            "monitor_id",
            "kind",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )


class IncidentUpdate(Base):
    """One entry of an incident's timeline: the engine's own (opened, regions, flapping,
    resolved) and people's (a status and a message, an acknowledgement)."""

    __tablename__ = "incident_updates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))  # system | update | acknowledged
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    message: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str | None] = mapped_column(String(40), default=None)  # a user id; None: the engine
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_incident_updates_incident_id_created_at", "incident_id", "created_at"),)


class IncidentEvent(Base):
    """The outbox: every incident change, written in the transaction that made it, for alert
    delivery to take. `suppressed_by` (a dependency down) and `in_maintenance` say why an event
    must not page anyone; the record is kept either way."""

    __tablename__ = "incident_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(40))
    monitor_id: Mapped[str] = mapped_column(String(40))
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    # incident.opened | incident.resolved | incident.flapping | incident.updated | incident.acknowledged
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    in_maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    suppressed_by: Mapped[str | None] = mapped_column(String(40), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # When alert delivery fanned it out to its channels' deliveries (None: not yet).
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        Index("ix_incident_events_occurred_at", "occurred_at"),
        Index("ix_incident_events_incident_id", "incident_id"),
        Index(
            "ix_incident_events_undispatched",
            "occurred_at",
            sqlite_where=text("dispatched_at IS NULL"),
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )


class MonitorState(Base):
    """A monitor as the engine last judged it: down or not, its open DOWN incident, and its recent
    transitions (flapping). `version` makes every change compare-and-set."""

    __tablename__ = "monitor_states"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(40))
    down: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When it went down or up, within the last hour (ISO strings): more than the flap threshold
    # keeps one incident open, flagged flapping.
    transitions: Mapped[list[str]] = mapped_column(JSON, default=list)
    # DNS: the last answers seen (a change raises a DNS_CHANGE incident). SSL: the certificate
    # expiry an SSL_EXPIRY incident was raised for (raised once per certificate).
    dns_answers: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    ssl_expiry_noted: Mapped[str | None] = mapped_column(String(40), default=None)


class RegionState(Base):
    """One region's run of results for a monitor: consecutive failures and successes, whether it
    is failing, and the newest result counted (an older one, replayed late, never flips it)."""

    __tablename__ = "monitor_region_states"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    failing: Mapped[bool] = mapped_column(Boolean, default=False)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_successes: Mapped[int] = mapped_column(Integer, default=0)
    newest_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)  # the newest failure's words
    no_data: Mapped[bool] = mapped_column(Boolean, default=False)  # its NO_DATA incident is open


class IncidentBacklog(Base):
    """A stored result the engine has not evaluated yet: queued in the results' own transaction,
    taken (deleted) in the transaction that applies it, so each is evaluated exactly once and a
    crash in between loses none (the engine's sweep takes what a crashed process left)."""

    __tablename__ = "incident_backlog"

    result_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    monitor_id: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was scheduled, else checked
    up: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Only what the engine reads of a result's details (SSL expiry, DNS answers).
    signal: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_incident_backlog_queued_at", "queued_at"),)


class MaintenanceWindow(Base):
    """Scheduled downtime for one monitor or (no monitor) the whole organization. A recurring
    window (`recurrence`, a cron expression in `timezone`) lasts `duration_minutes` from each
    occurrence between starts_at and ends_at."""

    __tablename__ = "maintenance_windows"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    monitor_id: Mapped[str | None] = mapped_column(
        ForeignKey("monitors.id", ondelete="CASCADE"), default=None
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    recurrence: Mapped[str | None] = mapped_column(String(200), default=None)
    duration_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_maintenance_windows_org_id_starts_at", "org_id", "starts_at"),)


class HeartbeatState(Base):
    """A HEARTBEAT monitor's pings as its schedule needs them: the last ping and success, runs
    started and not yet finished (by `rid`), and the deadline the next ping is due by."""

    __tablename__ = "heartbeat_states"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    last_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # rid (or "" for a start without one) -> ISO time it started; bounded by the pings code.
    open_runs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # The next ping is due by this (grace not included); the deadline sweep reads it.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The deadline already reported missed (a late heartbeat is reported once per deadline).
    missed_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    version: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_heartbeat_states_due_at", "due_at"),)
