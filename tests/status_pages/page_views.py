"""Status pages as rows (for the HTML page's tests, in process and through a real `traxo api`) and
views built by hand (for the renderer's own tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.models.status_pages import (
    PageIncident,
    PageIncidentUpdate,
    StatusPage,
    StatusPageComponent,
)
from control_plane.status_pages.health import ComponentHealth, DayUptime
from control_plane.status_pages.public import (
    PageInfo,
    PageView,
    PublicComponent,
    PublicIncident,
    PublicMaintenance,
    TimelineEntry,
)


@dataclass(frozen=True)
class Component:
    monitor_id: str
    name: str
    group: str | None = None


async def insert_page(
    db: Database, org_id: str, slug: str, components: list[Component], now: datetime, **fields: Any
) -> StatusPage:
    """A page of `org_id` showing `components` in the order given."""
    values: dict[str, Any] = {
        "id": new_id("sp"),
        "org_id": org_id,
        "name": slug.replace("-", " ").title(),
        "slug": slug,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    page = StatusPage(**values)
    async with db.session() as session:
        session.add(page)
        await session.flush()
        for position, component in enumerate(components):
            session.add(
                StatusPageComponent(
                    id=new_id("spc"),
                    page_id=page.id,
                    monitor_id=component.monitor_id,
                    display_name=component.name,
                    position=position,
                    group_name=component.group,
                )
            )
        await session.commit()
    return page


async def declare_incident(
    db: Database,
    page: StatusPage,
    title: str,
    updates: list[tuple[str, str, datetime]],
    *,
    impact: str = "major",
    resolved_at: datetime | None = None,
    postmortem: str | None = None,
) -> PageIncident:
    """An incident declared on `page` for all its components, with its timeline (status, message,
    at), oldest first."""
    async with db.session() as session:
        component_ids = list(
            await session.scalars(
                select(StatusPageComponent.id).where(StatusPageComponent.page_id == page.id)
            )
        )
        incident = PageIncident(
            id=new_id("inc"),
            org_id=page.org_id,
            page_id=page.id,
            title=title,
            impact=impact,
            status=updates[-1][0],
            component_ids=component_ids,
            postmortem=postmortem,
            started_at=updates[0][2],
            resolved_at=resolved_at,
            created_at=updates[0][2],
            updated_at=updates[-1][2],
        )
        session.add(incident)
        await session.flush()
        for status, message, at in updates:
            session.add(
                PageIncidentUpdate(
                    id=new_id("piu"), incident_id=incident.id, status=status, message=message, created_at=at
                )
            )
        await session.commit()
    return incident


def health(
    monitor_id: str, today: date, *, status: str = "operational", down_days: int = 0
) -> ComponentHealth:
    """90 days of a monitor: the oldest 30 without data, the rest up but for `down_days` of 90% (with
    an incident each), the latest days first."""
    days = []
    for offset in range(89, -1, -1):
        day = today - timedelta(days=offset)
        if offset >= 60:
            days.append(DayUptime(day, None, 0, 0))
        elif offset < down_days:
            days.append(DayUptime(day, 90.0, 288, 1))
        else:
            days.append(DayUptime(day, 100.0, 288, 0))
    measured = [day for day in days if day.uptime is not None]
    uptime = round(sum(day.uptime or 0 for day in measured) / len(measured), 2)
    return ComponentHealth(monitor_id, status, uptime, days)


def page_info(**fields: Any) -> PageInfo:
    values: dict[str, Any] = {
        "id": "sp_1",
        "name": "Acme",
        "slug": "acme",
        "description": None,
        "logo_url": None,
        "favicon_url": None,
        "hide_branding": False,
        "custom_css": None,
        "custom_domain": None,
        "updated_at": datetime(2026, 1, 1),
        **fields,
    }
    return PageInfo(**values)


def page_view(
    now: datetime,
    *,
    components: list[PublicComponent] | None = None,
    active: list[PublicIncident] | None = None,
    past: list[PublicIncident] | None = None,
    maintenance: list[PublicMaintenance] | None = None,
    overall: str = "operational",
    **page_fields: Any,
) -> PageView:
    return PageView(
        page=page_info(**page_fields),
        overall_status=overall,
        components=components or [],
        active_incidents=active or [],
        maintenance=maintenance or [],
        past_incidents=past or [],
    )


def component(name: str, group: str | None, today: date, **health_fields: Any) -> PublicComponent:
    monitor_id = f"mon_{name.lower().replace(' ', '_')}"
    return PublicComponent(f"spc_{monitor_id}", name, group, 0, health(monitor_id, today, **health_fields))


def incident(
    title: str, started_at: datetime, *, resolved_at: datetime | None = None, postmortem: str | None = None
) -> PublicIncident:
    updates = [TimelineEntry("investigating", f"Looking into {title}", started_at)]
    if resolved_at is not None:
        updates.insert(0, TimelineEntry("resolved", "Fixed", resolved_at))
    return PublicIncident(
        id=new_id("inc"),
        title=title,
        status="resolved" if resolved_at else "investigating",
        impact="major",
        started_at=started_at,
        resolved_at=resolved_at,
        components=["API"],
        updates=updates,
        declared=True,
        postmortem=postmortem,
    )
