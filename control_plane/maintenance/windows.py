"""Maintenance windows as time: a window's occurrences, whether a monitor is in maintenance, and a
monitor's maintenance intervals over a range (what uptime and SLA reports exclude).

A one-off window covers [starts_at, ends_at). A recurring window (`recurrence`, a five-field cron
expression read in `timezone`) has an occurrence at each cron time t with starts_at <= t < ends_at,
covering [t, t + duration_minutes), cut at ends_at: the series never reaches past its end. Cron
times follow the wall clock of the time zone (croniter on zoneinfo datetimes): a time the clock
skips (spring forward) runs at the first instant after the jump; a wall time the clock repeats
(fall back) runs once, unless the hour field is `*` (an hourly-or-finer series keeps both hours).
A disabled window (`is_active` false) is no maintenance at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.models import MaintenanceWindow

Interval = tuple[datetime, datetime]
Status = Literal["active", "upcoming", "past"]

# Organizations per query in monitors_in_maintenance: far under every database's bind limit.
_ORG_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Schedule:
    """What of a window decides its time: a plain value, so the API can check a change before
    writing it."""

    starts_at: datetime
    ends_at: datetime
    recurrence: str | None = None
    duration_minutes: int | None = None
    timezone: str | None = None

    @classmethod
    def of(cls, window: MaintenanceWindow) -> Schedule:
        return cls(
            _utc(window.starts_at),
            _utc(window.ends_at),
            window.recurrence,
            window.duration_minutes,
            window.timezone,
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _cron_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """The series' cron times at or after `after` (and at or after starts_at), before ends_at, in UTC."""
    assert schedule.recurrence is not None
    first = max(after, schedule.starts_at)
    if first >= schedule.ends_at:
        return
    zone = _zone(schedule.timezone or "UTC")
    # croniter's next time is strictly after its base, in whole seconds: start a second early.
    base = first.replace(microsecond=0) - timedelta(seconds=1)
    series = croniter(schedule.recurrence, base.astimezone(zone))
    keep_repeated_hour = schedule.recurrence.split()[1] == "*"
    while True:
        try:
            local: datetime = series.get_next(datetime)
        except (CroniterError, OverflowError):  # no date matches (0 0 30 2 *: February 30), or past 9999
            return
        when = local.astimezone(UTC)
        if when >= schedule.ends_at:
            return
        if when < first:
            continue
        if local.fold and not keep_repeated_hour:
            continue  # the wall time's second pass after a fall back: it already ran
        yield when


def occurrences(schedule: Schedule, start: datetime, end: datetime) -> Iterator[Interval]:
    """The schedule's maintenance intervals that overlap [start, end), in order, not clipped to it
    (each one is clipped to the series' end)."""
    if schedule.recurrence is None or not schedule.duration_minutes:
        if schedule.starts_at < end and schedule.ends_at > start:
            yield schedule.starts_at, schedule.ends_at
        return
    duration = timedelta(minutes=schedule.duration_minutes)
    for when in _cron_times(schedule, start - duration + timedelta(microseconds=1)):
        if when >= end:
            return
        yield when, min(when + duration, schedule.ends_at)


def current_or_next(schedule: Schedule, now: datetime) -> Interval | None:
    """The occurrence in progress at `now`, or else the next one to start; None once the series is over."""
    return next(occurrences(schedule, now, schedule.ends_at + timedelta(microseconds=1)), None)


def status(schedule: Schedule, enabled: bool, now: datetime) -> Status | None:
    """`past` once no occurrence is left (enabled or not); for an enabled window `active` while an
    occurrence is in progress, `upcoming` until one starts; None for a disabled one not yet over."""
    occurrence = current_or_next(schedule, now)
    if occurrence is None:
        return "past"
    if not enabled:
        return None
    return "active" if occurrence[0] <= now else "upcoming"


def merge(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """Sorted, merged (overlapping or touching), clipped to [start, end), empty ones dropped."""
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        lo, hi = max(lo, start), min(hi, end)
        if lo >= hi:
            continue
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


async def monitors_in_maintenance(
    session: AsyncSession, monitors: Sequence[tuple[str, str]], at: datetime
) -> set[str]:
    """Of the (monitor_id, org_id) pairs, the monitors inside an enabled window at `at`: one of their
    own, or one of their organization's org-wide windows. One query per 500 organizations."""
    at = _utc(at)
    org_ids = sorted({org_id for _, org_id in monitors})
    # org id -> monitor ids in maintenance; None stands for "the whole organization".
    covered: dict[str, set[str | None]] = {}
    for index in range(0, len(org_ids), _ORG_CHUNK):
        rows = await session.scalars(
            select(MaintenanceWindow).where(
                MaintenanceWindow.org_id.in_(org_ids[index : index + _ORG_CHUNK]),
                MaintenanceWindow.is_active.is_(True),
                MaintenanceWindow.starts_at <= at,
                MaintenanceWindow.ends_at > at,
            )
        )
        for window in rows:
            targets = covered.setdefault(window.org_id, set())
            if window.monitor_id in targets:
                continue
            if next(occurrences(Schedule.of(window), at, at + timedelta(microseconds=1)), None):
                targets.add(window.monitor_id)
    return {
        monitor_id
        for monitor_id, org_id in monitors
        if None in (covered.get(org_id) or ()) or monitor_id in (covered.get(org_id) or ())
    }


async def maintenance_intervals(
    session: AsyncSession, org_id: str, monitor_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per monitor id (every one asked for), its maintenance within [start, end): its own and its
    organization's org-wide enabled windows (the ids are taken as that organization's), recurring
    ones expanded inside the range only, as sorted, merged, non-overlapping intervals clipped to
    the range. One query."""
    start, end = _utc(start), _utc(end)
    result: dict[str, list[Interval]] = {monitor_id: [] for monitor_id in monitor_ids}
    if start >= end or not result:
        return result
    query = select(MaintenanceWindow).where(
        MaintenanceWindow.org_id == org_id,
        MaintenanceWindow.is_active.is_(True),
        MaintenanceWindow.starts_at < end,
        MaintenanceWindow.ends_at > start,
    )
    if len(result) <= _ORG_CHUNK:
        query = query.where(
            or_(MaintenanceWindow.monitor_id.is_(None), MaintenanceWindow.monitor_id.in_(list(result)))
        )
    org_wide: list[Interval] = []
    own: dict[str, list[Interval]] = {}
    for window in await session.scalars(query):
        if window.monitor_id is not None and window.monitor_id not in result:
            continue
        found = occurrences(Schedule.of(window), start, end)
        if window.monitor_id is None:
            org_wide.extend(found)
        else:
            own.setdefault(window.monitor_id, []).extend(found)
    shared = merge(org_wide, start, end)
    for monitor_id in result:
        mine = own.get(monitor_id)
        result[monitor_id] = merge([*shared, *mine], start, end) if mine else list(shared)
    return result
