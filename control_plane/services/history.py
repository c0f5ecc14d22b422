"""Reading what checks found: result pages, incidents, performance and dashboard figures.

Anything spanning more than a page of results reads the hourly/daily rollups, never raw history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import histogram
from control_plane.models import CheckResult, CheckRollup, CheckScreenshot, Incident, Monitor
from control_plane.services.results import PHASES, bucket_start

PERFORMANCE_MEASURES = (*PHASES, "size")


async def check_page(
    session: AsyncSession,
    monitor_id: str,
    *,
    page: int,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[CheckResult], int]:
    conditions = [CheckResult.monitor_id == monitor_id]
    if since is not None:
        conditions.append(CheckResult.checked_at >= since)
    if until is not None:
        conditions.append(CheckResult.checked_at <= until)
    total = int(await session.scalar(select(func.count()).select_from(CheckResult).where(*conditions)) or 0)
    rows = await session.scalars(
        select(CheckResult)
        .where(*conditions)
        .order_by(CheckResult.checked_at.desc(), CheckResult.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return rows.all(), total


async def screenshot(session: AsyncSession, monitor_id: str, check_id: str) -> bytes | None:
    return await session.scalar(
        select(CheckScreenshot.png)
        .join(CheckResult, CheckResult.id == CheckScreenshot.check_id)
        .where(CheckResult.id == check_id, CheckResult.monitor_id == monitor_id)
    )


async def recent_incidents(
    session: AsyncSession, monitor_id: str, limit: int | None = None
) -> Sequence[Incident]:
    query = select(Incident).where(Incident.monitor_id == monitor_id).order_by(Incident.started_at.desc())
    if limit is not None:
        query = query.limit(limit)
    return (await session.scalars(query)).all()


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class _Accumulator:
    count: int = 0
    sums: dict[str, float] | None = None
    counts: dict[str, int] | None = None

    def add(self, rollup: RowMapping) -> None:
        self.count += rollup["count"]
        self.sums = self.sums or {}
        self.counts = self.counts or {}
        for name, value in rollup["sums"].items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        for name, value in rollup["counts"].items():
            self.counts[name] = self.counts.get(name, 0) + value

    def average(self, name: str) -> float | None:
        if not self.counts or not self.counts.get(name) or self.sums is None:
            return None
        return self.sums[name] / self.counts[name]

    def averages(self) -> dict[str, Any]:
        values: dict[str, Any] = {name: _round(self.average(name)) for name in PHASES}
        size = self.average("size")
        values["size"] = None if size is None else round(size)
        return values


async def performance(session: AsyncSession, monitor_id: str, *, hours: int, now: datetime) -> dict[str, Any]:
    """Averages, p95 and an hourly series of the phase timings over the last `hours` hours."""
    since = bucket_start(now - timedelta(hours=hours), "hour")
    hourly = (
        await session.execute(
            select(CheckRollup.bucket_start, CheckRollup.count, CheckRollup.sums, CheckRollup.counts)
            .where(
                CheckRollup.monitor_id == monitor_id,
                CheckRollup.granularity == "hour",
                CheckRollup.bucket_start >= since,
            )
            .order_by(CheckRollup.bucket_start)
        )
    ).all()
    overall = _Accumulator()
    per_hour: dict[datetime, _Accumulator] = {}
    for row in hourly:
        rollup = row._mapping
        overall.add(rollup)
        per_hour.setdefault(rollup["bucket_start"], _Accumulator()).add(rollup)
    histograms: dict[str, histogram.Histogram] = {}
    for (measures,) in await session.execute(_p95_histograms(monitor_id, since)):
        for name, h in measures.items():
            histogram.merge_into(histograms.setdefault(name, {}), h)
    return {
        "averages": overall.averages(),
        "p95": {name: _round(histogram.quantile(histograms.get(name, {}), 0.95)) for name in PHASES},
        "timeSeries": [{"timestamp": start, **acc.averages()} for start, acc in per_hour.items()],
        "sampleCount": overall.count,
    }


def _p95_histograms(monitor_id: str, since: datetime) -> Any:
    """The histograms of every result since `since`: hours up to the first whole day, then days.

    A day rollup holds exactly the bucket counts of its hours (record_results writes both in one
    transaction), so a week costs about 14 day rows and a day's worth of hours instead of ~340 hours.
    """
    first_day = bucket_start(since, "day")
    if first_day < since:
        first_day += timedelta(days=1)
    return select(CheckRollup.histograms).where(
        CheckRollup.monitor_id == monitor_id,
        or_(
            and_(
                CheckRollup.granularity == "hour",
                CheckRollup.bucket_start >= since,
                CheckRollup.bucket_start < first_day,
            ),
            and_(CheckRollup.granularity == "day", CheckRollup.bucket_start >= first_day),
        ),
    )


@dataclass(frozen=True, slots=True)
class DashboardStats:
    total_monitors: int
    currently_down: int
    avg_uptime: float | None
    incidents_today: int


async def dashboard_stats(session: AsyncSession, org_id: str, *, now: datetime) -> DashboardStats:
    total, down = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(and_(Monitor.is_active.is_(True), Monitor.last_check_status == "DOWN")),
            ).where(Monitor.org_id == org_id)
        )
    ).one()
    since = bucket_start(now - timedelta(days=30), "day")
    per_monitor = (
        await session.execute(
            select(func.sum(CheckRollup.up_count), func.sum(CheckRollup.count))
            .join(Monitor, Monitor.id == CheckRollup.monitor_id)
            .where(
                Monitor.org_id == org_id, CheckRollup.granularity == "day", CheckRollup.bucket_start >= since
            )
            .group_by(CheckRollup.monitor_id)
        )
    ).all()
    uptimes = [100.0 * up / count for up, count in per_monitor if count]
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
        total_monitors=int(total),
        currently_down=int(down),
        avg_uptime=round(sum(uptimes) / len(uptimes), 2) if uptimes else None,
        incidents_today=incidents_today,
    )
