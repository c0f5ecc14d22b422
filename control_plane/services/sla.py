"""SLA reports: a monitor's uptime, downtime and incidents over up to 400 whole UTC days, read
from its daily rollups (and the results still queued for them), maintenance left out.

A handful of statements whatever the range: the rollups with the queue, the maintenance windows,
the checks inside them, and the DOWN incidents overlapping the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput
from control_plane.models import Incident, Monitor
from control_plane.models.incidents import KIND_DOWN
from control_plane.results import bucket_start, daily_counts
from control_plane.services.maintenance_time import (
    Interval,
    checks_in_intervals,
    clip,
    maintenance_intervals,
    merge,
    seconds,
    split_by_day,
    subtract,
)

MAX_DAYS = 400
DEFAULT_DAYS = 30
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SlaDay:
    day: date
    uptime_percent: float | None
    checks: int
    downtime_seconds: int


@dataclass(frozen=True, slots=True)
class SlaReport:
    monitor_id: str
    start: datetime
    end: datetime
    uptime_percent: float | None
    checks: int
    failed_checks: int
    downtime_seconds: int
    incident_count: int
    mttr_seconds: int | None
    longest_outage_seconds: int
    maintenance_seconds: int
    days: list[SlaDay]


def report_range(
    since: datetime | None, until: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """The whole UTC days a report covers: `since` down to its midnight, `until` (exclusive) up to
    the next one; by default the last 30 days, today included. InvalidInput names the parameter."""
    if until is None:
        until = bucket_start(now, "day") + _DAY
    if since is None:
        since = bucket_start(until - timedelta(microseconds=1), "day") + _DAY - DEFAULT_DAYS * _DAY
    if until <= since:
        raise InvalidInput("to: must be after from")
    if until - since > MAX_DAYS * _DAY:
        raise InvalidInput(f"to: the range must be at most {MAX_DAYS} days")
    start = bucket_start(since, "day")
    end = bucket_start(until, "day")
    if end < until:
        end += _DAY
    return start, end


def _percent(up: int, total: int) -> float | None:
    return round(100.0 * up / total, 3) if total else None


async def _down_incidents(
    session: AsyncSession, monitor_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime | None]]:
    rows = await session.execute(
        select(Incident.started_at, Incident.resolved_at).where(
            Incident.monitor_id == monitor_id,
            Incident.kind == KIND_DOWN,
            Incident.started_at < end,
            (Incident.resolved_at.is_(None)) | (Incident.resolved_at > start),
        )
    )
    return [(started, resolved) for started, resolved in rows]


def _seconds_by_day(intervals: list[Interval]) -> dict[datetime, float]:
    per_day: dict[datetime, float] = {}
    for piece_start, piece_end in split_by_day(intervals):
        day = bucket_start(piece_start, "day")
        per_day[day] = per_day.get(day, 0.0) + (piece_end - piece_start).total_seconds()
    return per_day


async def sla_report(
    session: AsyncSession, monitor: Monitor, *, start: datetime, end: datetime, now: datetime
) -> SlaReport:
    """The report over [start, end) (whole days, from report_range). Time after `now` counts for
    nothing: an open incident's downtime runs to now, days still to come are not listed."""
    observed_end = max(start, min(end, now))
    maintenance = merge(
        (await maintenance_intervals(session, monitor.org_id, [monitor.id], start, observed_end)).get(
            monitor.id, []
        )
    )
    per_day = (await daily_counts(session, [monitor.id], start, end)).get(monitor.id, {})
    # The checks inside maintenance, per day: taken out of that day's counts.
    pieces = split_by_day(maintenance)
    in_maintenance = await checks_in_intervals(session, [([monitor.id], piece) for piece in pieces])
    for (index, _), (up, total) in in_maintenance.items():
        day = bucket_start(pieces[index][0], "day")
        known_up, known_total = per_day.get(day, (0, 0))
        per_day[day] = (max(0, known_up - up), max(0, known_total - total))

    incidents = await _down_incidents(session, monitor.id, start, observed_end)
    outages = [
        subtract(clip([(started, resolved or now)], start, observed_end), maintenance)
        for started, resolved in incidents
    ]
    downtime_by_day = _seconds_by_day(subtract(merge(i for outage in outages for i in outage), maintenance))
    durations = [(resolved - started).total_seconds() for started, resolved in incidents if resolved]

    days = []
    day = start
    while day < end and day <= now:
        up, total = per_day.get(day, (0, 0))
        days.append(SlaDay(day.date(), _percent(up, total), total, round(downtime_by_day.get(day, 0.0))))
        day += _DAY
    up = sum(up for up, _ in per_day.values())
    total = sum(total for _, total in per_day.values())
    return SlaReport(
        monitor_id=monitor.id,
        start=start,
        end=end,
        uptime_percent=_percent(up, total),
        checks=total,
        failed_checks=total - up,
        downtime_seconds=round(math.fsum(downtime_by_day.values())),
        incident_count=len(incidents),
        mttr_seconds=round(math.fsum(durations) / len(durations)) if durations else None,
        longest_outage_seconds=round(max((seconds(outage) for outage in outages), default=0.0)),
        maintenance_seconds=round(seconds(maintenance)),
        days=days,
    )
