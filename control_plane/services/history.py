"""Reading what checks found: result pages, incidents and performance (dashboard figures: dashboard.py).

Anything spanning more than a page of results reads the hourly/daily rollups, never raw history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Float, Integer, Text, and_, cast, func, literal_column, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.domain import histogram
from control_plane.models import CheckResult, CheckRollup, CheckScreenshot, RollupBacklog
from control_plane.results import PHASES, bucket_start
from control_plane.services import incidents
from control_plane.services.incidents import IncidentRow

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
) -> list[IncidentRow]:
    """The monitor's incidents, newest first, as the incident views show them (services/incidents.py)."""
    return await incidents.monitor_incidents(session, monitor_id, limit=limit)


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


def _null(column_type: Any, name: str) -> Any:
    return cast(null(), column_type).label(name)  # labelled: a select keeps one of equal columns


async def performance(session: AsyncSession, monitor_id: str, *, hours: int, now: datetime) -> dict[str, Any]:
    """Averages, p95 and an hourly series of the phase timings over the last `hours` hours.

    One statement reads the hourly rollups, the p95 histograms and the results still queued for
    their rollups, so a fold committing meanwhile can neither hide results nor count them twice.
    """
    since = bucket_start(now - timedelta(hours=hours), "hour")
    rows = await session.execute(_performance_rows(monitor_id, since))
    # One pass over up to 169 hours x regions (then the queue): the overall sums and each hour's,
    # both added up row by row in the same order (the same floating-point sums as separately).
    sample_count = 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    per_hour: dict[datetime, tuple[dict[str, float], dict[str, int]]] = {}
    histograms: dict[str, histogram.Histogram] = {}

    def add_to(hour_start: datetime, name: str, value: float, count: int) -> None:
        hour = per_hour.get(hour_start)
        if hour is None:
            hour = per_hour[hour_start] = ({}, {})
        sums[name] = sums.get(name, 0.0) + value
        hour[0][name] = hour[0].get(name, 0.0) + value
        counts[name] = counts.get(name, 0) + count
        hour[1][name] = hour[1].get(name, 0) + count

    for kind, at, count, sums_text, counts_text, measures_text, *queued in rows:
        if kind == _ROLLUP_HOUR:
            sample_count += count
            per_hour.setdefault(at, ({}, {}))
            hour_counts = _decode(counts_text)
            for name, value in _decode(sums_text).items():
                add_to(at, name, value, hour_counts.get(name, 0))
        elif kind == _ROLLUP_HISTOGRAMS:
            for name, h in _decode(measures_text).items():
                histogram.merge_into(histograms.setdefault(name, {}), h)
        else:  # a queued result
            sample_count += 1
            hour_start = bucket_start(at, "hour")
            response_time, *phases, size = queued
            if phases[-1] is None:
                phases[-1] = response_time  # total falls back to the response time
            for name, value in zip(PHASES, phases, strict=True):
                if value is not None:
                    add_to(hour_start, name, value, 1)
                    histogram.add(histograms.setdefault(name, {}), value)
            if size is not None:
                add_to(hour_start, "size", float(size), 1)
    return {
        "averages": _averages(sums, counts),
        "p95": {name: _round(histogram.quantile(histograms.get(name, {}), 0.95)) for name in PHASES},
        "timeSeries": [{"timestamp": start, **_averages(*per_hour[start])} for start in sorted(per_hour)],
        "sampleCount": sample_count,
    }


_ROLLUP_HOUR, _ROLLUP_HISTOGRAMS, _QUEUED = 0, 1, 2


def _performance_rows(monitor_id: str, since: datetime) -> Any:
    """Hourly rollups since `since`; the histograms of every rolled-up result since `since` (hours
    up to the first whole day, then days); and every queued result since `since`.

    A day rollup holds exactly the bucket counts of its hours (the fold writes both in one
    transaction), so a week costs about 14 day rows and a day's worth of hours instead of ~340 hours.
    """
    first_day = bucket_start(since, "day")
    if first_day < since:
        first_day += timedelta(days=1)
    measures = ("response_time", "dns", "tcp", "tls", "ttfb", "download", "total", "size")
    no_result = [_null(Float, name) for name in measures]
    hourly = select(
        literal_column(str(_ROLLUP_HOUR), Integer).label("kind"),
        CheckRollup.bucket_start.label("at"),
        CheckRollup.count.label("count"),
        _json_text(CheckRollup.sums).label("sums"),
        _json_text(CheckRollup.counts).label("counts"),
        _null(Text, "histograms"),
        *no_result,
        CheckRollup.region.label("region"),
    ).where(
        CheckRollup.monitor_id == monitor_id,
        CheckRollup.granularity == "hour",
        CheckRollup.bucket_start >= since,
    )
    p95 = select(
        literal_column(str(_ROLLUP_HISTOGRAMS), Integer),
        CheckRollup.bucket_start,
        CheckRollup.count,
        _null(Text, "sums"),
        _null(Text, "counts"),
        _json_text(CheckRollup.histograms).label("histograms"),
        *no_result,
        CheckRollup.region,
    ).where(
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
    queued = select(
        literal_column(str(_QUEUED), Integer),
        RollupBacklog.checked_at,
        literal_column("1", Integer),
        _null(Text, "sums"),
        _null(Text, "counts"),
        _null(Text, "histograms"),
        RollupBacklog.response_time,
        RollupBacklog.dns_ms,
        RollupBacklog.tcp_ms,
        RollupBacklog.tls_ms,
        RollupBacklog.ttfb_ms,
        RollupBacklog.download_ms,
        RollupBacklog.total_ms,
        cast(RollupBacklog.size_bytes, Float).label("size"),
        RollupBacklog.region,
    ).where(RollupBacklog.monitor_id == monitor_id, RollupBacklog.checked_at >= since)
    combined = union_all(hourly, p95, queued).subquery()
    columns = list(combined.c)
    return select(*columns[:-1]).order_by(columns[0], columns[1], columns[-1])
