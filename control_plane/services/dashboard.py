"""The dashboard's headline figures, and the cache that keeps their 30-day uptime cheap.

The 30-day uptime sums ~60 daily rollups per monitor (31 days, each region). All but today's belong to
closed days, which change only when late results arrive (an agent replaying its spool), so their
per-monitor sums are kept per organization for a minute; today's rollups are always read live.
Maintenance is left out of the uptime by subtracting the checks inside its windows, read live on
every request (not cached), so a window created, changed or deleted shows at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, case, func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.changes import ChangeFeed
from control_plane.models import CheckRollup, Incident, Monitor, RollupBacklog
from control_plane.models.incidents import KIND_DOWN, KIND_NO_DATA
from control_plane.results import bucket_start
from control_plane.services.maintenance_time import Interval, checks_in_intervals, maintenance_intervals
from control_plane.services.monitors import MONITORS_TOPIC

UPTIME_DAYS = 30
# How late a late result for a closed day may show in the uptime (today's results show at once).
CLOSED_DAYS_TTL = timedelta(minutes=1)

UpCounts = dict[str, tuple[int, int]]  # monitor id -> (up count, count)


@dataclass(frozen=True, slots=True)
class _ClosedDays:
    since: datetime
    until: datetime
    per_monitor: UpCounts
    fetched_at: datetime


class UptimeCache:
    """Per organization, each monitor's up and total counts over the closed days of the window.

    A monitor created or deleted (MONITORS_TOPIC, from any replica) empties it, so the set of
    monitors is always the current one; while the change feed may be missing changes it is bypassed.
    """

    def __init__(self, feed: ChangeFeed, ttl: timedelta = CLOSED_DAYS_TTL, max_entries: int = 10_000) -> None:
        self._feed = feed
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, _ClosedDays] = {}
        self.generation = 0  # a put begun before the latest clear() would store what it may not see
        feed.subscribe(MONITORS_TOPIC, lambda _payload: self.clear())
        feed.on_reset(self.clear)

    def get(self, org_id: str, since: datetime, until: datetime, now: datetime) -> UpCounts | None:
        entry = self._entries.get(org_id)
        if (
            entry is None
            or not self._feed.complete
            or (entry.since, entry.until) != (since, until)
            or not timedelta(0) <= now - entry.fetched_at <= self._ttl
        ):
            return None
        return entry.per_monitor

    def put(
        self,
        org_id: str,
        since: datetime,
        until: datetime,
        per_monitor: UpCounts,
        *,
        now: datetime,
        generation: int,
    ) -> None:
        """Keep what was read since `generation` was current, unless a change came in meanwhile."""
        if generation != self.generation:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[org_id] = _ClosedDays(since, until, per_monitor, now)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


@dataclass(frozen=True, slots=True)
class DashboardStats:
    total_monitors: int
    currently_down: int
    avg_uptime: float | None
    incidents_today: int


async def _up_counts(session: AsyncSession, org_id: str, since: datetime, until: datetime | None) -> UpCounts:
    """Per monitor of the organization: up and total counts of its daily rollups in [since, until),
    plus its results in that span still queued for their rollups (in the same statement, so a fold
    committing meanwhile can neither hide results nor count them twice)."""
    rolled_up = [
        Monitor.org_id == org_id,
        CheckRollup.granularity == "day",
        CheckRollup.bucket_start >= since,
    ]
    queued = [Monitor.org_id == org_id, RollupBacklog.checked_at >= since]
    if until is not None:
        rolled_up.append(CheckRollup.bucket_start < until)
        queued.append(RollupBacklog.checked_at < until)
    counted = union_all(
        select(
            CheckRollup.monitor_id.label("monitor_id"),
            CheckRollup.up_count.label("up"),
            CheckRollup.count.label("total"),
        )
        .join(Monitor, Monitor.id == CheckRollup.monitor_id)
        .where(*rolled_up),
        select(
            RollupBacklog.monitor_id,
            case((RollupBacklog.up, 1), else_=0),
            literal_column("1", Integer),
        )
        .join(Monitor, Monitor.id == RollupBacklog.monitor_id)
        .where(*queued),
    ).subquery()
    rows = await session.execute(
        select(counted.c.monitor_id, func.sum(counted.c.up), func.sum(counted.c.total)).group_by(
            counted.c.monitor_id
        )
    )
    return {monitor_id: (int(up), int(count)) for monitor_id, up, count in rows}


async def average_uptime(
    session: AsyncSession, org_id: str, *, now: datetime, cache: UptimeCache | None = None
) -> float | None:
    """Mean over the organization's monitors of each one's uptime (%) over the last 30 days."""
    since = bucket_start(now - timedelta(days=UPTIME_DAYS), "day")
    midnight = bucket_start(now, "day")
    closed = cache.get(org_id, since, midnight, now) if cache is not None else None
    if closed is None:
        generation = cache.generation if cache is not None else 0
        closed = await _up_counts(session, org_id, since, midnight)
        if cache is not None:
            cache.put(org_id, since, midnight, closed, now=now, generation=generation)
    today = await _up_counts(session, org_id, midnight, None)
    monitor_ids = closed.keys() | today.keys()
    in_maintenance = await _maintenance_counts(session, org_id, sorted(monitor_ids), since, now)
    uptimes = []
    for monitor_id in monitor_ids:
        up, count = closed.get(monitor_id, (0, 0))
        up_today, count_today = today.get(monitor_id, (0, 0))
        up_out, count_out = in_maintenance.get(monitor_id, (0, 0))
        # Clamped: the closed days may be a minute behind the live count of maintenance's checks.
        up, count = max(0, up + up_today - up_out), max(0, count + count_today - count_out)
        if count:
            uptimes.append(100.0 * min(up, count) / count)
    # fsum: the same figure whatever order the monitors come in.
    return round(math.fsum(uptimes) / len(uptimes), 2) if uptimes else None


async def _maintenance_counts(
    session: AsyncSession, org_id: str, monitor_ids: list[str], since: datetime, now: datetime
) -> UpCounts:
    """Per monitor: up and total counts of its checks inside maintenance since `since`. Monitors
    sharing the same windows (an organization-wide one) are counted together, one range per window."""
    if not monitor_ids:
        return {}
    intervals = await maintenance_intervals(session, org_id, monitor_ids, since, now)
    sharing: dict[tuple[Interval, ...], list[str]] = {}
    for monitor_id, windows in intervals.items():
        if windows:
            sharing.setdefault(tuple(windows), []).append(monitor_id)
    pieces = [(ids, window) for windows, ids in sharing.items() for window in windows]
    counts: UpCounts = {}
    for (_, monitor_id), (up, total) in (await checks_in_intervals(session, pieces)).items():
        known_up, known_total = counts.get(monitor_id, (0, 0))
        counts[monitor_id] = (known_up + up, known_total + total)
    return counts


async def currently_down(session: AsyncSession, org_id: str) -> int:
    """Active monitors with an open DOWN or NO_DATA incident (their checks failing, late, or not
    arriving); certificate and DNS incidents do not make a monitor down."""
    return int(
        await session.scalar(
            select(func.count(func.distinct(Incident.monitor_id)))
            .join(Monitor, Monitor.id == Incident.monitor_id)
            .where(
                Incident.org_id == org_id,
                Incident.resolved_at.is_(None),
                Incident.kind.in_((KIND_DOWN, KIND_NO_DATA)),
                Monitor.is_active.is_(True),
            )
        )
        or 0
    )


async def dashboard_stats(
    session: AsyncSession, org_id: str, *, now: datetime, cache: UptimeCache | None = None
) -> DashboardStats:
    total = await session.scalar(select(func.count()).select_from(Monitor).where(Monitor.org_id == org_id))
    midnight = bucket_start(now, "day")
    incidents_today = int(
        await session.scalar(
            select(func.count())
            .select_from(Incident)
            .where(Incident.org_id == org_id, Incident.started_at >= midnight)
        )
        or 0
    )
    return DashboardStats(
        total_monitors=int(total or 0),
        currently_down=await currently_down(session, org_id),
        avg_uptime=await average_uptime(session, org_id, now=now, cache=cache),
        incidents_today=incidents_today,
    )
