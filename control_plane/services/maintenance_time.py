"""Maintenance time as uptime figures leave it out: interval arithmetic, and the checks that ran
inside maintenance (counted from raw results, which are kept for the retention period).

Rollups sum whole hours and days, so a window's checks cannot be taken out of them; instead the
raw results inside the windows are counted and subtracted. Windows older than the raw results'
retention (settings.retention_days, 30 by default) can no longer be subtracted: the 30-day figures
always can, an SLA report reaching further back counts those older windows' checks
(docs/incidents.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Integer, case, func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.maintenance import maintenance_intervals
from control_plane.models import CheckResult

Interval = tuple[datetime, datetime]
UpCounts = dict[str, tuple[int, int]]  # key -> (up count, count)

# SQLite allows 500 terms in a compound SELECT; a statement takes this many pieces.
_PIECES_PER_STATEMENT = 200

__all__ = [
    "Interval",
    "checks_in_intervals",
    "clip",
    "maintenance_intervals",
    "merge",
    "seconds",
    "split_by_day",
    "subtract",
]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals joined; empty ones dropped."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def clip(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(s, start), min(e, end)) for s, e in intervals if s < end and e > start]


def subtract(intervals: Iterable[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """The parts of `intervals` outside the merged, sorted `holes`."""
    kept: list[Interval] = []
    for start, end in intervals:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                kept.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            if cursor >= end:
                break
        if cursor < end:
            kept.append((cursor, end))
    return kept


def seconds(intervals: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for start, end in intervals)


def split_by_day(intervals: Iterable[Interval]) -> list[Interval]:
    """Each interval cut at UTC midnights, so that every piece lies inside one day."""
    pieces: list[Interval] = []
    for start, end in intervals:
        while start < end:
            midnight = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            pieces.append((start, min(end, midnight)))
            start = midnight
    return pieces


async def checks_in_intervals(
    session: AsyncSession, pieces: Sequence[tuple[Sequence[str], Interval]]
) -> dict[tuple[int, str], tuple[int, int]]:
    """For each piece (monitor ids, [start, end)), per monitor: the up and total counts of its raw
    results checked in it, keyed (piece index, monitor id). A few statements, each index ranges."""
    counts: dict[tuple[int, str], tuple[int, int]] = {}
    indexed = [(index, ids, interval) for index, (ids, interval) in enumerate(pieces) if ids]
    for first in range(0, len(indexed), _PIECES_PER_STATEMENT):
        selects = [
            select(
                literal_column(str(index), Integer).label("piece"),
                CheckResult.monitor_id.label("monitor_id"),
                func.sum(case((CheckResult.status == "UP", 1), else_=0)).label("up"),
                func.count().label("total"),
            )
            .where(
                CheckResult.monitor_id.in_(list(ids)),
                CheckResult.checked_at >= start,
                CheckResult.checked_at < end,
            )
            .group_by(CheckResult.monitor_id)
            for index, ids, (start, end) in indexed[first : first + _PIECES_PER_STATEMENT]
        ]
        statement = selects[0] if len(selects) == 1 else union_all(*selects)
        for piece, monitor_id, up, total in await session.execute(statement):
            counts[(int(piece), monitor_id)] = (int(up or 0), int(total))
    return counts
