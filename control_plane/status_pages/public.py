"""A status page as visitors see it: its components' health, its incidents (automatic and
declared) with their timelines, its maintenance; found by slug or by verified custom domain.

What a visitor is shown of an automatic incident: only DOWN incidents (the other kinds, an
expiring certificate or changed DNS answers, make the component `degraded` without a notice), and
of their timeline only what people wrote (IncidentUpdate of kind "update") between an "opened"
entry and, once over, a "resolved" one: the engine's own entries carry check errors, which may
name internal addresses. Acknowledgements are not shown.

hideBranding and customCss hold while the organization's plan has premium features: after a
downgrade the page shows its branding and no custom CSS again (the settings are kept).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.domain.plans import limits_for
from control_plane.maintenance.windows import Schedule, current_or_next
from control_plane.models import Incident, MaintenanceWindow, Organization
from control_plane.models.incidents import KIND_DOWN, IncidentUpdate
from control_plane.models.status_pages import (
    PageIncident,
    PageIncidentUpdate,
    StatusPage,
    StatusPageComponent,
)
from control_plane.results import bucket_start
from control_plane.status_pages.health import (
    DEFAULT_DAYS,
    ComponentHealth,
    components_health,
    days_open,
    overall_status,
)

PAST_INCIDENT_DAYS = 14
MAX_PAST_INCIDENTS = 50


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    status: str | None
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PublicIncident:
    id: str
    title: str
    status: str
    impact: str
    started_at: datetime
    resolved_at: datetime | None
    components: list[str]  # display names
    updates: list[TimelineEntry]  # newest first
    declared: bool  # declared by hand on the page (PageIncident), else automatic
    postmortem: str | None  # Markdown as written (the HTML renders it sanitised)
    whole_page: bool = False  # declared naming no component: the whole page's


@dataclass(frozen=True, slots=True)
class PublicComponent:
    id: str
    name: str
    group: str | None
    order: int
    health: ComponentHealth
    # UTC day -> the titles of the incidents declared on the page that were open some time that
    # day and name this component (or the whole page): the bars' tooltips list them.
    declared_by_day: dict[date, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublicMaintenance:
    id: str
    title: str
    description: str | None
    starts_at: datetime
    ends_at: datetime
    components: list[str]  # display names


@dataclass(frozen=True, slots=True)
class PageInfo:
    """The page's own fields a visitor's view needs."""

    id: str
    name: str
    slug: str
    description: str | None
    logo_url: str | None
    favicon_url: str | None
    hide_branding: bool
    custom_css: str | None
    custom_domain: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PageView:
    page: PageInfo
    overall_status: str
    components: list[PublicComponent]  # in order
    active_incidents: list[PublicIncident]
    maintenance: list[PublicMaintenance]  # active and upcoming
    past_incidents: list[PublicIncident]  # resolved within the last 14 days, newest first


async def page_by_slug(session: AsyncSession, slug: str) -> StatusPage | None:
    """The page with this slug, public or not (the caller decides who may see a private one)."""
    return await session.scalar(select(StatusPage).where(StatusPage.slug == slug))


def normalize_host(host: str) -> str:
    """A Host header as custom domains are kept: lowercase, without a port or a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal is never a custom domain
        return host
    return host.partition(":")[0].rstrip(".")


async def page_by_domain(session: AsyncSession, host: str) -> StatusPage | None:
    """The page whose custom domain is `host` (any case, a port or trailing dot ignored), once
    verified."""
    domain = normalize_host(host)
    if not domain:
        return None
    return await session.scalar(
        select(StatusPage).where(
            StatusPage.custom_domain == domain, StatusPage.domain_verified_at.is_not(None)
        )
    )


async def page_view(session: AsyncSession, page: StatusPage, now: datetime) -> PageView:
    """Everything a visitor sees, in a fixed handful of statements whatever the components."""
    components = list(
        await session.scalars(
            select(StatusPageComponent)
            .where(StatusPageComponent.page_id == page.id)
            .order_by(StatusPageComponent.position, StatusPageComponent.display_name, StatusPageComponent.id)
        )
    )
    monitor_ids = [component.monitor_id for component in components]
    health = await components_health(session, monitor_ids, now, DEFAULT_DAYS, page_id=page.id)
    # The page's declared incidents once, for the bars' 90 days and the incidents of the last 14.
    bars_end = bucket_start(now, "day") + timedelta(days=1)
    bars_start = bars_end - timedelta(days=DEFAULT_DAYS)
    declared = await _declared_rows(session, page.id, bars_start)
    declared_days = _declared_per_day(declared, components, bars_start, bars_end, now)
    shown = [
        PublicComponent(
            c.id, c.display_name, c.group_name, c.position, health[c.monitor_id], declared_days.get(c.id, {})
        )
        for c in components
        if c.monitor_id in health
    ]
    premium = limits_for(
        await session.scalar(select(Organization.plan).where(Organization.id == page.org_id))
    ).premium_features
    since = now - timedelta(days=PAST_INCIDENT_DAYS)
    incidents = [
        *await _declared_incidents(session, declared, components, since),
        *await _automatic_incidents(session, components, since),
    ]
    active = sorted((i for i in incidents if i.resolved_at is None), key=lambda i: i.started_at, reverse=True)
    past = sorted(
        (i for i in incidents if i.resolved_at is not None),
        key=lambda i: i.resolved_at or i.started_at,
        reverse=True,
    )[:MAX_PAST_INCIDENTS]
    return PageView(
        page=PageInfo(
            id=page.id,
            name=page.name,
            slug=page.slug,
            description=page.description,
            logo_url=page.logo_url,
            favicon_url=page.favicon_url,
            hide_branding=page.hide_branding and premium,
            custom_css=page.custom_css if premium else None,
            custom_domain=page.custom_domain,
            updated_at=page.updated_at,
        ),
        overall_status=overall_status(component.health.status for component in shown),
        components=shown,
        active_incidents=active,
        maintenance=await _maintenance(session, page.org_id, components, now),
        past_incidents=past,
    )


class PageViewCache:
    """Pages' views kept by this process for `seconds` of the clock (the wall clock in a server),
    so a page read by many visitors costs its queries once per `seconds`, not once per visitor.

    The rule: a view is served while younger than `seconds`, and only for the page as it was
    read (an edit of the page, which moves its updated_at, is seen by the next request). An
    incident, a maintenance window or new results show within `seconds` on each process; once a
    view is older, the next request recomputes it while requests arriving meanwhile are still
    given the old one (up to twice `seconds` old), and with no view yet they wait for that one
    computation instead of each making their own. `seconds` 0 turns the cache off.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._views: OrderedDict[str, tuple[datetime, datetime, PageView]] = OrderedDict()
        self._pending: dict[tuple[str, datetime], asyncio.Future[PageView]] = {}

    async def view(self, session: AsyncSession, page: StatusPage, now: datetime, seconds: float) -> PageView:
        if seconds <= 0:
            return await page_view(session, page, now)
        key = (page.id, page.updated_at)
        kept = self._views.get(page.id)
        age = (now - kept[1]).total_seconds() if kept is not None and kept[0] == page.updated_at else None
        if age is not None and 0 <= age < seconds:
            return kept[2]  # type: ignore[index]
        pending = self._pending.get(key)
        if pending is not None:
            if age is not None and 0 <= age < 2 * seconds:
                return kept[2]  # type: ignore[index]
            await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None:
                return pending.result()
            return await page_view(session, page, now)  # that one failed: this request's own
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            view = await page_view(session, page, now)
        except BaseException:
            pending.cancel()
            raise
        finally:
            del self._pending[key]
        pending.set_result(view)
        self._views[page.id] = (page.updated_at, now, view)
        self._views.move_to_end(page.id)
        while len(self._views) > self._size:
            self._views.popitem(last=False)
        return view


# This process's: the public routes' (status_page_cache_seconds of the settings).
PAGE_VIEWS = PageViewCache()


async def page_incidents(
    session: AsyncSession, page_id: str, components: Sequence[StatusPageComponent], since: datetime
) -> list[PublicIncident]:
    """A page's incidents as its visitors see them (declared and automatic, with the public
    timeline only), open or resolved since `since`, newest first: what its feeds list."""
    incidents = [
        *await _declared_incidents(session, await _declared_rows(session, page_id, since), components, since),
        *await _automatic_incidents(session, components, since),
    ]
    incidents.sort(key=lambda incident: (incident.started_at, incident.id), reverse=True)
    return incidents


async def _declared_rows(session: AsyncSession, page_id: str, since: datetime) -> list[PageIncident]:
    """The page's declared incidents still open, or resolved since `since`, oldest first."""
    return list(
        await session.scalars(
            select(PageIncident)
            .where(
                PageIncident.page_id == page_id,
                or_(PageIncident.resolved_at.is_(None), PageIncident.resolved_at >= since),
            )
            .order_by(PageIncident.started_at, PageIncident.id)
        )
    )


def _declared_per_day(
    rows: Sequence[PageIncident],
    components: Sequence[StatusPageComponent],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, dict[date, tuple[str, ...]]]:
    """Per component: per UTC day of [start, end), the titles of the declared incidents (`rows`,
    oldest first) open some time that day that name it or no component (the whole page's)."""
    ids = [component.id for component in components]
    titles: dict[str, dict[date, list[str]]] = {}
    for row in rows:
        days = [day.date() for day in sorted(days_open(row.started_at, row.resolved_at, start, end, now))]
        named = row.component_ids or []
        for component_id in [c for c in named if c in ids] if named else ids:
            for day in days:
                titles.setdefault(component_id, {}).setdefault(day, []).append(row.title)
    return {c: {day: tuple(found) for day, found in by_day.items()} for c, by_day in titles.items()}


async def _declared_incidents(
    session: AsyncSession,
    declared: Sequence[PageIncident],
    components: Sequence[StatusPageComponent],
    since: datetime,
) -> list[PublicIncident]:
    """Of the page's declared incidents (`declared`), those still open or resolved since `since`,
    with their timelines."""
    rows = [row for row in declared if row.resolved_at is None or row.resolved_at >= since]
    if not rows:
        return []
    names = {component.id: component.display_name for component in components}
    updates: dict[str, list[TimelineEntry]] = {}
    for update in await session.scalars(
        select(PageIncidentUpdate)
        .where(PageIncidentUpdate.incident_id.in_([row.id for row in rows]))
        .order_by(PageIncidentUpdate.created_at.desc(), PageIncidentUpdate.id.desc())
    ):
        updates.setdefault(update.incident_id, []).append(
            TimelineEntry(update.status, update.message, update.created_at)
        )
    return [
        PublicIncident(
            id=row.id,
            title=row.title,
            status=row.status,
            impact=row.impact,
            started_at=row.started_at,
            resolved_at=row.resolved_at,
            components=[
                names[component_id] for component_id in row.component_ids or () if component_id in names
            ],
            updates=updates.get(row.id, []),
            declared=True,
            postmortem=row.postmortem,
            whole_page=not row.component_ids,
        )
        for row in rows
    ]


async def _automatic_incidents(
    session: AsyncSession, components: Sequence[StatusPageComponent], since: datetime
) -> list[PublicIncident]:
    """The components' DOWN incidents still open, or resolved since `since`."""
    by_monitor = {component.monitor_id: component.display_name for component in components}
    if not by_monitor:
        return []
    of_components = (Incident.monitor_id.in_(list(by_monitor)), Incident.kind == KIND_DOWN)
    # Every open one (one a monitor at most), and the latest of those over: a monitor that failed
    # often must not push an open incident out of the view.
    rows = [
        *await session.scalars(select(Incident).where(*of_components, Incident.resolved_at.is_(None))),
        *await session.scalars(
            select(Incident)
            .where(*of_components, Incident.resolved_at >= since)
            .order_by(Incident.resolved_at.desc())
            .limit(MAX_PAST_INCIDENTS)
        ),
    ]
    if not rows:
        return []
    said: dict[str, list[TimelineEntry]] = {}
    for update in await session.scalars(
        select(IncidentUpdate)
        .where(IncidentUpdate.incident_id.in_([row.id for row in rows]), IncidentUpdate.kind == "update")
        .order_by(IncidentUpdate.created_at.desc(), IncidentUpdate.id.desc())
    ):
        said.setdefault(update.incident_id, []).append(
            TimelineEntry(update.status, update.message, update.created_at)
        )
    incidents = []
    for row in rows:
        name = by_monitor[row.monitor_id]
        timeline = said.get(row.id, [])
        if row.resolved_at is not None:
            timeline = [TimelineEntry("resolved", f"{name} is operational again", row.resolved_at), *timeline]
        timeline.append(TimelineEntry("investigating", f"{name} is not responding", row.started_at))
        incidents.append(
            PublicIncident(
                id=row.id,
                title=f"{name} is down",
                status="resolved" if row.resolved_at is not None else row.status,
                impact="minor" if row.flapping else "major",
                started_at=row.started_at,
                resolved_at=row.resolved_at,
                components=[name],
                updates=timeline,
                declared=False,
                postmortem=None,
            )
        )
    return incidents


async def _maintenance(
    session: AsyncSession, org_id: str, components: Sequence[StatusPageComponent], now: datetime
) -> list[PublicMaintenance]:
    """Enabled windows covering some of the components (or the whole organization), in progress
    or still to come: for a recurring one, its current or next occurrence. By start."""
    names = {component.monitor_id: component.display_name for component in components}
    if not names:
        return []
    windows = await session.scalars(
        select(MaintenanceWindow).where(
            MaintenanceWindow.org_id == org_id,
            MaintenanceWindow.is_active.is_(True),
            MaintenanceWindow.ends_at > now,
            or_(MaintenanceWindow.monitor_id.is_(None), MaintenanceWindow.monitor_id.in_(list(names))),
        )
    )
    found = []
    for window in windows:
        occurrence = current_or_next(Schedule.of(window), now)
        if occurrence is None:
            continue
        covered = list(names.values()) if window.monitor_id is None else [names[window.monitor_id]]
        found.append(
            PublicMaintenance(
                window.id, window.title, window.description, occurrence[0], occurrence[1], covered
            )
        )
    return sorted(found, key=lambda maintenance: (maintenance.starts_at, maintenance.id))
