"""Check counts per monitor and UTC day, the read behind uptime figures (a status page's bars, a
monitor's SLA report): the daily rollups of every region plus the results still queued for them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import utc_day
from control_plane.models import CheckRollup, RollupBacklog

DayCounts = dict[str, dict[datetime, tuple[int, int]]]  # monitor id -> UTC day -> (up, total)


async def daily_counts(
    session: AsyncSession, monitor_ids: Sequence[str], start: datetime, end: datetime
) -> DayCounts:
    """Per monitor and day in [start, end): up and total checks of its daily rollups (all regions)
    plus its results still queued for them. One statement, so a fold committing meanwhile neither
    hides results nor counts them twice; both halves are summed per day in the database (~90 rows
    a monitor, not one per queued result: thousands while results arrive). Monitors without
    checks are left out."""
    rolled_up = (
        select(
            CheckRollup.monitor_id,
            CheckRollup.bucket_start,
            func.sum(CheckRollup.up_count),
            func.sum(CheckRollup.count),
        )
        .where(
            CheckRollup.monitor_id.in_(monitor_ids),
            CheckRollup.granularity == "day",
            CheckRollup.bucket_start >= start,
            CheckRollup.bucket_start < end,
        )
        .group_by(CheckRollup.monitor_id, CheckRollup.bucket_start)
    )
    queued_day = utc_day(RollupBacklog.checked_at)
    queued = (
        select(
            RollupBacklog.monitor_id,
            queued_day,
            func.sum(case((RollupBacklog.up, 1), else_=0)),
            func.count(),
        )
        .where(
            RollupBacklog.monitor_id.in_(monitor_ids),
            RollupBacklog.checked_at >= start,
            RollupBacklog.checked_at < end,
        )
        .group_by(RollupBacklog.monitor_id, queued_day)
    )
    counts: DayCounts = {}
    for monitor_id, day, up, total in await session.execute(union_all(rolled_up, queued)):
        per_day = counts.setdefault(monitor_id, {})
        known_up, known_total = per_day.get(day, (0, 0))
        per_day[day] = (known_up + int(up or 0), known_total + int(total or 0))
    return counts
