"""Components' health on a status page: each monitor's status now and its uptime per UTC day.

How a component's status is derived. First what Traxo sees of its monitor, the worst that holds:

- ``major_outage``: the monitor is down (its engine state says so: every region, or the quorum of
  its regions, failing), or it has an open DOWN incident that is not flapping.
- ``partial_outage``: some of its regions are failing without the monitor being down.
- ``degraded``: an open incident of another kind (SSL expiry, DNS change, no data), or an open
  DOWN incident flagged flapping while the monitor is up.
- ``operational``: none of these.

Inside an enabled maintenance window (its own or an org-wide one) it is ``under_maintenance``
whatever Traxo sees. Then the incidents people declared on the page (open ones naming the
component, or naming none: the whole page's) weigh in: impact ``critical`` or ``major`` gives
``major_outage``, ``minor`` ``partial_outage``, ``none`` ``degraded``; the worse of that and the
above wins, and a declared incident outranks maintenance (people said what is going on).

A page's overall status is its worst component's, with ``under_maintenance`` counted as
``operational`` (planned work is not an outage); a page without components is operational.

Uptime is the share of checks up, from the daily rollups of every region (and the results still
queued for them), with the checks that ran inside maintenance taken out, as services/sla.py
counts them; a day without checks has no uptime (None), and the span's uptime is over the checks
of all its days. A day's `incidents` counts the monitor's DOWN incidents open some time that day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.maintenance import maintenance_intervals, monitors_in_maintenance
from control_plane.models import Incident, Monitor
from control_plane.models.incidents import KIND_DOWN, MonitorState, RegionState
from control_plane.models.status_pages import PageIncident, StatusPageComponent
from control_plane.results import DayCounts, bucket_start, daily_counts
from control_plane.services.maintenance_time import Interval, checks_in_intervals, clip, split_by_day

COMPONENT_STATUSES = ("operational", "degraded", "partial_outage", "major_outage", "under_maintenance")
OVERALL_STATUSES = ("operational", "degraded", "partial_outage", "major_outage")
# A declared incident's impact -> the status it gives the components it names.
IMPACT_STATUS = {
    "none": "degraded",
    "minor": "partial_outage",
    "major": "major_outage",
    "critical": "major_outage",
}
DEFAULT_DAYS = 90
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DayUptime:
    day: date  # UTC day
    uptime: float | None  # percent of checks up that day, maintenance excluded; None: no data
    checks: int
    incidents: int  # automatic incidents that were open some time that day


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    monitor_id: str
    status: str  # one of COMPONENT_STATUSES
    uptime: float | None  # over the days asked for (percent, 2 decimals), maintenance excluded
    days: list[DayUptime]  # oldest first, one per day of the span (today included)


def _rank(status: str) -> int:
    return OVERALL_STATUSES.index(status) if status in OVERALL_STATUSES else 0


def overall_status(statuses: Iterable[str]) -> str:
    """The worst of the components' statuses; maintenance counts as operational."""
    return OVERALL_STATUSES[max((_rank(status) for status in statuses), default=0)]


def _percent(up: int, total: int) -> float | None:
    return round(100.0 * up / total, 2) if total else None


async def components_health(
    session: AsyncSession,
    monitor_ids: Sequence[str],
    now: datetime,
    days: int = DEFAULT_DAYS,
    *,
    page_id: str | None = None,
) -> dict[str, ComponentHealth]:
    """Per monitor id asked for (unknown ones left out): its status now and its uptime over the
    last `days` UTC days (today included). Declared incidents count from `page_id` alone when
    given, else from any page naming the monitor. A fixed handful of statements, whatever the
    number of monitors."""
    days = max(1, days)
    orgs = {
        key: value
        for key, value in (
            await session.execute(select(Monitor.id, Monitor.org_id).where(Monitor.id.in_(list(monitor_ids))))
        )
    }
    ids = [monitor_id for monitor_id in dict.fromkeys(monitor_ids) if monitor_id in orgs]
    if not ids:
        return {}
    end = bucket_start(now, "day") + _DAY
    start = end - days * _DAY
    per_day = await daily_counts(session, ids, start, end)
    await _take_out_maintenance(session, orgs, ids, per_day, start, min(end, now))
    incidents_per_day = await _down_incidents_per_day(session, ids, start, end, now)
    statuses = await _statuses(session, orgs, ids, now, page_id)
    health: dict[str, ComponentHealth] = {}
    for monitor_id in ids:
        counts = per_day.get(monitor_id, {})
        day_list = []
        day = start
        while day < end:
            up, total = counts.get(day, (0, 0))
            day_list.append(
                DayUptime(day.date(), _percent(up, total), total, incidents_per_day.get((monitor_id, day), 0))
            )
            day += _DAY
        up = sum(up for up, _ in counts.values())
        total = sum(total for _, total in counts.values())
        health[monitor_id] = ComponentHealth(monitor_id, statuses[monitor_id], _percent(up, total), day_list)
    return health


async def _take_out_maintenance(
    session: AsyncSession,
    orgs: dict[str, str],
    ids: list[str],
    counts: DayCounts,
    start: datetime,
    end: datetime,
) -> None:
    """Subtract, per monitor and day, the checks that ran inside its maintenance."""
    by_org: dict[str, list[str]] = {}
    for monitor_id in ids:
        by_org.setdefault(orgs[monitor_id], []).append(monitor_id)
    # Monitors sharing the same maintenance (org-wide windows) share its pieces' statements.
    pieces_of: dict[tuple[Interval, ...], list[str]] = {}
    for org_id, org_monitors in by_org.items():
        for monitor_id, intervals in (
            await maintenance_intervals(session, org_id, org_monitors, start, end)
        ).items():
            if intervals:
                pieces_of.setdefault(tuple(intervals), []).append(monitor_id)
    pieces: list[tuple[Sequence[str], Interval]] = [
        (monitor_ids, piece)
        for intervals, monitor_ids in pieces_of.items()
        for piece in split_by_day(intervals)
    ]
    for (index, monitor_id), (up, total) in (await checks_in_intervals(session, pieces)).items():
        day = bucket_start(pieces[index][1][0], "day")
        per_day = counts.setdefault(monitor_id, {})
        known_up, known_total = per_day.get(day, (0, 0))
        per_day[day] = (max(0, known_up - up), max(0, known_total - total))


async def _down_incidents_per_day(
    session: AsyncSession, ids: list[str], start: datetime, end: datetime, now: datetime
) -> dict[tuple[str, datetime], int]:
    """Per (monitor, day): how many of its DOWN incidents were open some time that day."""
    rows = await session.execute(
        select(Incident.monitor_id, Incident.started_at, Incident.resolved_at).where(
            Incident.monitor_id.in_(ids),
            Incident.kind == KIND_DOWN,
            Incident.started_at < end,
            (Incident.resolved_at.is_(None)) | (Incident.resolved_at > start),
        )
    )
    per_day: dict[tuple[str, datetime], int] = {}
    for monitor_id, started, resolved in rows:
        for day in days_open(started, resolved, start, end, now):
            per_day[monitor_id, day] = per_day.get((monitor_id, day), 0) + 1
    return per_day


def days_open(
    started: datetime, resolved: datetime | None, start: datetime, end: datetime, now: datetime
) -> set[datetime]:
    """The UTC days (their midnights) of [start, end) during which an incident open from `started`
    until `resolved` (still open: until `now`) was open some time."""
    until = resolved or max(now, started + timedelta(microseconds=1))
    return {bucket_start(piece, "day") for piece, _ in split_by_day(clip([(started, until)], start, end))}


async def _statuses(
    session: AsyncSession, orgs: dict[str, str], ids: list[str], now: datetime, page_id: str | None
) -> dict[str, str]:
    """Each monitor's status now, by the rules of this module's docstring."""
    down = set(
        await session.scalars(
            select(MonitorState.monitor_id).where(
                MonitorState.monitor_id.in_(ids), MonitorState.down.is_(True)
            )
        )
    )
    regions_failing = set(
        await session.scalars(
            select(RegionState.monitor_id).where(
                RegionState.monitor_id.in_(ids), RegionState.failing.is_(True)
            )
        )
    )
    automatic: dict[str, str] = {}
    for monitor_id, kind, flapping in await session.execute(
        select(Incident.monitor_id, Incident.kind, Incident.flapping).where(
            Incident.monitor_id.in_(ids), Incident.resolved_at.is_(None)
        )
    ):
        found = "major_outage" if kind == KIND_DOWN and not flapping else "degraded"
        if _rank(found) > _rank(automatic.get(monitor_id, "operational")):
            automatic[monitor_id] = found
    declared = await _declared(session, orgs, ids, page_id)
    in_maintenance = await monitors_in_maintenance(
        session, [(monitor_id, orgs[monitor_id]) for monitor_id in ids], now
    )
    statuses: dict[str, str] = {}
    for monitor_id in ids:
        found = automatic.get(monitor_id, "operational")
        if monitor_id in down:
            found = "major_outage"
        elif monitor_id in regions_failing and _rank(found) < _rank("partial_outage"):
            found = "partial_outage"
        if monitor_id in in_maintenance:
            found = "under_maintenance"
        by_hand = declared.get(monitor_id)
        if by_hand is not None and (found == "under_maintenance" or _rank(by_hand) > _rank(found)):
            found = by_hand
        statuses[monitor_id] = found
    return statuses


async def _declared(
    session: AsyncSession, orgs: dict[str, str], ids: list[str], page_id: str | None
) -> dict[str, str]:
    """Per monitor: the worst status its open declared incidents give it. An incident naming no
    component is the whole page's: it gives its status to every component of its page."""
    query = select(PageIncident.page_id, PageIncident.impact, PageIncident.component_ids).where(
        PageIncident.resolved_at.is_(None)
    )
    if page_id is not None:
        query = query.where(PageIncident.page_id == page_id)
    else:
        query = query.where(PageIncident.org_id.in_(sorted(set(orgs.values()))))
    open_incidents = [(page, impact, named or []) for page, impact, named in await session.execute(query)]
    named_ids = sorted({component_id for _, _, named in open_incidents for component_id in named})
    whole_pages = sorted({page for page, _, named in open_incidents if not named})
    if not named_ids and not whole_pages:
        return {}
    monitor_of: dict[str, str] = {}  # component id -> its monitor
    of_page: dict[str, set[str]] = {}  # a whole-page incident's page -> its components' monitors
    for component_id, page, monitor_id in await session.execute(
        select(StatusPageComponent.id, StatusPageComponent.page_id, StatusPageComponent.monitor_id).where(
            or_(StatusPageComponent.id.in_(named_ids), StatusPageComponent.page_id.in_(whole_pages)),
            StatusPageComponent.monitor_id.in_(ids),
        )
    ):
        monitor_of[component_id] = monitor_id
        of_page.setdefault(page, set()).add(monitor_id)
    declared: dict[str, str] = {}
    for page, impact, named in open_incidents:
        status = IMPACT_STATUS.get(impact, "degraded")
        affected = [monitor_of[c] for c in named if c in monitor_of] if named else of_page.get(page, set())
        for monitor_id in affected:
            if _rank(status) > _rank(declared.get(monitor_id, "operational")):
                declared[monitor_id] = status
    return declared
