"""Reading what checks found: result pages, incidents and performance (dashboard figures: dashboard.py).

Anything spanning more than a page of results reads the hourly/daily rollups, never raw history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Text, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import histogram
from control_plane.models import CheckResult, CheckRollup, CheckScreenshot, Incident
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


def _json_text(column: Any) -> Any:
    """A JSON column read as its text: `_decode` turns it into Python faster than the JSON type does."""
    return cast(column, Text)


def _decode(document: str) -> Any:
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError:  # what json.dumps writes and orjson refuses: NaN, huge integers
        return json.loads(document)


def _averages(sums: dict[str, float], counts: dict[str, int]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in PHASES:
        measured = counts.get(name)
        values[name] = round(sums[name] / measured, 1) if measured else None
    measured = counts.get("size")
    values["size"] = round(sums["size"] / measured) if measured else None
    return values


async def performance(session: AsyncSession, monitor_id: str, *, hours: int, now: datetime) -> dict[str, Any]:
    """Averages, p95 and an hourly series of the phase timings over the last `hours` hours."""
    since = bucket_start(now - timedelta(hours=hours), "hour")
    hourly = await session.execute(
        select(
            CheckRollup.bucket_start,
            CheckRollup.count,
            _json_text(CheckRollup.sums),
            _json_text(CheckRollup.counts),
        )
        .where(
            CheckRollup.monitor_id == monitor_id,
            CheckRollup.granularity == "hour",
            CheckRollup.bucket_start >= since,
        )
        .order_by(CheckRollup.bucket_start, CheckRollup.region)
    )
    # One pass over up to 169 hours x regions: the overall sums and each hour's, both added up row
    # by row in the same order (so the same floating-point sums as adding them up separately).
    sample_count = 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    per_hour: dict[datetime, tuple[dict[str, float], dict[str, int]]] = {}
    for start, count, sums_text, counts_text in hourly:
        sample_count += count
        hour = per_hour.get(start)
        if hour is None:
            hour = per_hour[start] = ({}, {})
        hour_sums, hour_counts = hour
        for name, value in _decode(sums_text).items():
            sums[name] = sums.get(name, 0.0) + value
            hour_sums[name] = hour_sums.get(name, 0.0) + value
        for name, value in _decode(counts_text).items():
            counts[name] = counts.get(name, 0) + value
            hour_counts[name] = hour_counts.get(name, 0) + value
    histograms: dict[str, histogram.Histogram] = {}
    for (measures,) in await session.execute(_p95_histograms(monitor_id, since)):
        for name, h in _decode(measures).items():
            histogram.merge_into(histograms.setdefault(name, {}), h)
    return {
        "averages": _averages(sums, counts),
        "p95": {name: _round(histogram.quantile(histograms.get(name, {}), 0.95)) for name in PHASES},
        "timeSeries": [
            {"timestamp": start, **_averages(*hour_sums_counts)}
            for start, hour_sums_counts in per_hour.items()
        ],
        "sampleCount": sample_count,
    }


def _p95_histograms(monitor_id: str, since: datetime) -> Any:
    """The histograms of every result since `since`: hours up to the first whole day, then days.

    A day rollup holds exactly the bucket counts of its hours (record_results writes both in one
    transaction), so a week costs about 14 day rows and a day's worth of hours instead of ~340 hours.
    """
    first_day = bucket_start(since, "day")
    if first_day < since:
        first_day += timedelta(days=1)
    return select(_json_text(CheckRollup.histograms)).where(
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
