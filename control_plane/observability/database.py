"""What /metrics reads from the database at scrape time: each monitor's latest probe per region,
agents holding a lease and monitors assigned per region, the alert outbox and the incident
engine's queue. One query each, by index; the per-monitor read is capped (metrics_monitor_limit).

These describe the shared database, so every replica reports the same values: aggregate them
with max(), not sum() (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.db import Database, brief_error
from control_plane.domain.incident_rules import HEARTBEAT_REGION
from control_plane.models import Agent, AssignmentGrant, CheckResult, IncidentBacklog, Monitor, RegionState
from control_plane.models.alerts import DELIVERY_PENDING, AlertDelivery
from control_plane.models.incidents import IncidentEvent
from control_plane.settings import Settings

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 10.0  # a scrape that waits longer on the database answers without its figures


@dataclass(frozen=True, slots=True)
class MonitorProbe:
    """A monitor's latest result from one region."""

    monitor_id: str
    name: str
    region: str
    up: bool
    response_seconds: float | None
    checked_at: datetime | None


@dataclass(slots=True)
class DatabaseState:
    probes: list[MonitorProbe] = field(default_factory=list)
    probes_dropped: int = 0  # (monitor, region) pairs beyond the limit, not read
    agents_connected: dict[str, int] = field(default_factory=dict)  # region -> agents holding a lease
    assignments: dict[str, int] = field(default_factory=dict)  # region -> monitors granted to an agent
    deliveries_pending: int = 0
    oldest_due_delivery: datetime | None = None
    events_undispatched: int = 0
    oldest_undispatched_event: datetime | None = None
    incident_queue: int = 0
    oldest_queued_result: datetime | None = None
    read_seconds: float = 0.0
    error: str | None = None  # the read failed: only the figures above that were read are set


async def read_database_state(db: Database, settings: Settings, now: datetime) -> DatabaseState:
    """Everything the scrape shows of the database; a failure is reported in `error`, not raised."""
    state = DatabaseState()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS), db.session() as session:
            await _read_probes(session, state, settings.metrics_monitor_limit)
            await _read_agents(session, state, settings, now)
            await _read_outbox(session, state)
    except Exception as exc:  # the process's own metrics are still worth answering
        state.error = brief_error(exc)
        log.warning("metrics: the scrape's database reads failed (traxo_database_up 0): %s", state.error)
    state.read_seconds = time.perf_counter() - started
    return state


async def _read_probes(session: AsyncSession, state: DatabaseState, limit: int) -> None:
    if limit <= 0:
        return
    # The pairs by the states' primary key (limited before anything else), each with its newest
    # result's id: one backward probe of ix_check_results_monitor_id_checked_at per pair shown.
    newest = (
        select(CheckResult.id)
        .where(CheckResult.monitor_id == RegionState.monitor_id, CheckResult.region == RegionState.region)
        .order_by(CheckResult.checked_at.desc())
        .limit(1)
        .correlate(RegionState)
        .scalar_subquery()
    )
    conn = await session.connection()  # Core rows: none of the ORM's per-row work
    pairs = (
        await conn.execute(
            select(
                RegionState.monitor_id,
                RegionState.region,
                RegionState.consecutive_successes,
                RegionState.newest_at,
                Monitor.name,
                cast(Monitor.regions, Text),  # parsed here, once per distinct list
                newest,
            )
            .join(Monitor, Monitor.id == RegionState.monitor_id)
            .where(Monitor.is_active.is_(True))
            .order_by(RegionState.monitor_id, RegionState.region)
            .limit(limit + 1)
        )
    ).all()
    if len(pairs) > limit:
        pairs = pairs[:limit]
        total = await session.scalar(
            select(func.count())
            .select_from(RegionState)
            .join(Monitor, Monitor.id == RegionState.monitor_id)
            .where(Monitor.is_active.is_(True))
        )
        state.probes_dropped = max(0, int(total or 0) - limit)
    # Then those results by primary key (a join planned as a hash join read the whole table).
    results: dict[str, tuple[str, float | None, datetime]] = {}
    result_ids = [pair[-1] for pair in pairs if pair[-1] is not None]
    for condition in among(session, CheckResult.id, result_ids):
        rows = await conn.execute(
            select(
                CheckResult.id, CheckResult.status, CheckResult.response_time, CheckResult.checked_at
            ).where(condition)
        )
        results.update((row[0], (row[1], row[2], row[3])) for row in rows)
    regions_of: dict[str, Sequence[str]] = {}  # by the list's JSON text: most monitors share a few
    for monitor_id, region, successes, newest_at, name, regions, result_id in pairs:
        monitor_regions = regions_of.get(regions)
        if monitor_regions is None:
            monitor_regions = regions_of[regions] = _regions(regions)
        if region not in monitor_regions and region != HEARTBEAT_REGION:
            continue  # a region the monitor no longer runs in: its state row stays, its series go
        found = results.get(result_id) if result_id is not None else None
        if found is None:  # its results aged out: the engine's view of the newest one
            up, response, at = successes > 0, None, newest_at
        else:
            up, response, at = found[0] == "UP", found[1], found[2]
        state.probes.append(
            MonitorProbe(monitor_id, name, region, up, None if response is None else response / 1000, at)
        )


def _regions(value: object) -> Sequence[str]:
    if isinstance(value, str | bytes):  # a driver that hands JSON back as text
        value = orjson.loads(value)
    return value if isinstance(value, list) else ()


async def _read_agents(
    session: AsyncSession, state: DatabaseState, settings: Settings, now: datetime
) -> None:
    # Holding a lease as the assigner judges it (agents/assigner.py Liveness, without its start-up grace).
    cutoff = now - timedelta(seconds=settings.agent_lease_seconds) * settings.agent_lease_missed_periods
    live = case((Agent.lapsed_at.is_(None) & (Agent.renewed_at >= cutoff), 1), else_=0)
    rows = await session.execute(select(Agent.region, func.sum(live)).group_by(Agent.region))
    state.agents_connected = {region: int(count or 0) for region, count in rows.all()}
    rows = await session.execute(
        select(AssignmentGrant.region, func.count())
        .where(AssignmentGrant.revoked_at.is_(None))
        .group_by(AssignmentGrant.region)
    )
    state.assignments = {region: int(count) for region, count in rows.all()}


async def _read_outbox(session: AsyncSession, state: DatabaseState) -> None:
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(AlertDelivery.next_attempt_at)).where(
                AlertDelivery.status == DELIVERY_PENDING
            )
        )
    ).one()
    state.deliveries_pending, state.oldest_due_delivery = int(count), oldest
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(IncidentEvent.occurred_at)).where(
                IncidentEvent.dispatched_at.is_(None)
            )
        )
    ).one()
    state.events_undispatched, state.oldest_undispatched_event = int(count), oldest
    count, oldest = (await session.execute(select(func.count(), func.min(IncidentBacklog.queued_at)))).one()
    state.incident_queue, state.oldest_queued_result = int(count), oldest


class DatabaseCollector(Collector):
    """A scrape's DatabaseState as metric families, `now` the time the ages are measured at."""

    def __init__(self, state: DatabaseState, now: datetime) -> None:
        self._state, self._now = state, now

    def _age(self, moment: datetime | None) -> float:
        return 0.0 if moment is None else max(0.0, (self._now - moment).total_seconds())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._state
        yield _gauge(
            "traxo_database_up", "1 when this scrape read the database, 0 when it failed", state.error is None
        )
        yield _gauge(
            "traxo_metrics_database_read_seconds",
            "How long this scrape's database reads took",
            state.read_seconds,
        )
        if state.error is not None:
            return
        yield _gauge(
            "traxo_monitor_series_dropped",
            "(monitor, region) pairs left out of the traxo_monitor_* series by TRAXO_METRICS_MONITOR_LIMIT",
            state.probes_dropped,
        )
        agents = GaugeMetricFamily(
            "traxo_agents_connected", "Agents holding a lease, by region", labels=["region"]
        )
        for region, count in sorted(state.agents_connected.items()):
            agents.add_metric([region], count)
        yield agents
        assignments = GaugeMetricFamily(
            "traxo_assignments", "Monitors granted to an agent, by region", labels=["region"]
        )
        for region, count in sorted(state.assignments.items()):
            assignments.add_metric([region], count)
        yield assignments
        yield _gauge(
            "traxo_alert_deliveries_pending",
            "Alert deliveries waiting to be sent or retried",
            state.deliveries_pending,
        )
        yield _gauge(
            "traxo_alert_delivery_lag_seconds",
            "How long the most overdue pending alert delivery has been due (0: none is due)",
            self._age(state.oldest_due_delivery),
        )
        yield _gauge(
            "traxo_alert_outbox_events",
            "Incident events in the outbox not yet fanned out to their channels",
            state.events_undispatched,
        )
        yield _gauge(
            "traxo_alert_outbox_oldest_event_age_seconds",
            "Age of the oldest incident event not yet fanned out (0: none)",
            self._age(state.oldest_undispatched_event),
        )
        yield _gauge(
            "traxo_incident_queue_results",
            "Stored check results the incident engine has yet to evaluate",
            state.incident_queue,
        )
        yield _gauge(
            "traxo_incident_queue_oldest_age_seconds",
            "Age of the oldest result waiting for the incident engine (0: none)",
            self._age(state.oldest_queued_result),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


_PROBE_FAMILIES = (
    ("traxo_monitor_up", "1 when the monitor's latest check from the region was UP, else 0"),
    ("traxo_monitor_response_seconds", "Response time of the monitor's latest check from the region"),
    (
        "traxo_monitor_last_check_timestamp_seconds",
        "When the monitor's latest check from the region ran (Unix time)",
    ),
)


def render_probes(probes: Sequence[MonitorProbe]) -> str:
    """The traxo_monitor_* families in the text format, written here rather than by
    prometheus_client: its generic writer took ~20 µs a sample (0.7 s for the default 10,000 pairs),
    and a probe's three samples share one label set, escaped once."""
    up: list[str] = []
    response: list[str] = []
    checked: list[str] = []
    for probe in probes:
        name, region = _escape(probe.name), _escape(probe.region)
        labels = f'{{monitor_id="{_escape(probe.monitor_id)}",name="{name}",region="{region}"}}'
        up.append(f"traxo_monitor_up{labels} {1.0 if probe.up else 0.0}\n")
        if probe.response_seconds is not None:
            response.append(f"traxo_monitor_response_seconds{labels} {probe.response_seconds!r}\n")
        if probe.checked_at is not None:
            checked.append(
                f"traxo_monitor_last_check_timestamp_seconds{labels} {probe.checked_at.timestamp()!r}\n"
            )
    parts: list[str] = []
    for (family, documentation), samples in zip(_PROBE_FAMILIES, (up, response, checked), strict=True):
        parts.append(f"# HELP {family} {documentation}\n# TYPE {family} gauge\n")
        parts.extend(samples)
    return "".join(parts)


def _escape(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value
