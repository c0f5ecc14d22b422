"""Incidents declared by hand on a status page: declared with a first update, then a timeline of
status updates as an automatic incident's (investigating, identified, monitoring, resolved), edited
(title, impact, components, post-mortem) and deleted by the page's organization.

The timeline's rules: an update with status `resolved` resolves an open incident (resolvedAt is
its time); on an incident already resolved it is a note and leaves resolvedAt as it was. Any other
status on a resolved incident reopens it: resolvedAt goes back to null, as it is open again, and
the timeline keeps both the resolution and the reopening.

A page is found by slug within the caller's organization only: another organization's page, and an
incident of another page, are NotFound. The component ids an incident names are checked against
the page when written; a component later removed from the page drops out of the incident's views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.models.status_pages import (
    PageIncident,
    PageIncidentUpdate,
    StatusPage,
    StatusPageComponent,
)
from control_plane.services.incidents import UPDATE_STATUSES
from control_plane.status_pages.pages import find_page

IMPACTS = ("none", "minor", "major", "critical")
STATUSES = UPDATE_STATUSES
OPENING_STATUSES = tuple(status for status in UPDATE_STATUSES if status != "resolved")
StatusFilter = Literal["open", "resolved"]

INCIDENT_NOT_FOUND = "Incident not found"
# What edit() may change, by column.
EDITABLE = frozenset({"title", "impact", "component_ids", "postmortem"})


@dataclass(frozen=True, slots=True)
class ComponentRef:
    id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class DeclaredIncident:
    """An incident with the page's components it names (in the order it names them) and its
    timeline, newest first."""

    incident: PageIncident
    components: list[ComponentRef]
    updates: list[PageIncidentUpdate]


async def _find_incident(session: AsyncSession, page: StatusPage, incident_id: str) -> PageIncident:
    incident = await session.scalar(
        select(PageIncident)
        .where(PageIncident.id == incident_id, PageIncident.page_id == page.id)
        .execution_options(populate_existing=True)  # fresh after this session's own updates
    )
    if incident is None:
        raise NotFound(INCIDENT_NOT_FOUND)
    return incident


async def _page_components(session: AsyncSession, page_id: str) -> dict[str, str]:
    rows = await session.execute(
        select(StatusPageComponent.id, StatusPageComponent.display_name).where(
            StatusPageComponent.page_id == page_id
        )
    )
    return {component_id: name for component_id, name in rows}


async def _checked_components(session: AsyncSession, page_id: str, component_ids: list[str]) -> list[str]:
    """The ids, if every one is a component of the page; else InvalidInput naming the others."""
    known = await _page_components(session, page_id)
    unknown = [component_id for component_id in component_ids if component_id not in known]
    if unknown:
        raise InvalidInput(f"componentIds: not components of this page: {', '.join(unknown)}")
    return list(component_ids)


async def _views(
    session: AsyncSession, page_id: str, incidents: Iterable[PageIncident]
) -> list[DeclaredIncident]:
    """The incidents with their components and timelines, in two queries whatever their number."""
    incidents = list(incidents)
    if not incidents:
        return []
    names = await _page_components(session, page_id)
    timelines: dict[str, list[PageIncidentUpdate]] = {incident.id: [] for incident in incidents}
    updates = await session.scalars(
        select(PageIncidentUpdate)
        .where(PageIncidentUpdate.incident_id.in_(list(timelines)))
        .order_by(PageIncidentUpdate.created_at.desc(), PageIncidentUpdate.id.desc())
    )
    for entry in updates:
        timelines[entry.incident_id].append(entry)
    return [
        DeclaredIncident(
            incident,
            [ComponentRef(cid, names[cid]) for cid in incident.component_ids or [] if cid in names],
            timelines[incident.id],
        )
        for incident in incidents
    ]


async def _view(session: AsyncSession, page_id: str, incident: PageIncident) -> DeclaredIncident:
    return (await _views(session, page_id, [incident]))[0]


async def declare(
    session: AsyncSession,
    org_id: str,
    slug: str,
    *,
    title: str,
    impact: str,
    status: str,
    message: str,
    component_ids: list[str],
    author_id: str | None,
    now: datetime,
    postmortem: str | None = None,
) -> DeclaredIncident:
    """Opens an incident on the page (no components: the whole page), its message the first update;
    a post-mortem (Markdown) may come with it, as when one is declared after the fact."""
    if status not in OPENING_STATUSES:
        raise InvalidInput(f"status: an incident is declared {', '.join(OPENING_STATUSES)}, not {status}")
    page = await find_page(session, org_id, slug)
    incident = PageIncident(
        id=new_id("inc"),
        org_id=org_id,
        page_id=page.id,
        title=title,
        impact=impact,
        status=status,
        component_ids=await _checked_components(session, page.id, component_ids),
        postmortem=postmortem,
        started_at=now,
        resolved_at=None,
        created_by=author_id,
        created_at=now,
        updated_at=now,
    )
    session.add(incident)
    await session.flush()  # the incident before its first update (the foreign key)
    session.add(
        PageIncidentUpdate(
            id=new_id("piu"),
            incident_id=incident.id,
            status=status,
            message=message,
            author_id=author_id,
            created_at=now,
        )
    )
    await session.commit()
    return await _view(session, page.id, incident)


async def list_incidents(
    session: AsyncSession,
    org_id: str,
    slug: str,
    *,
    status: StatusFilter | None,
    page: int,
    limit: int,
) -> tuple[list[DeclaredIncident], int]:
    """A page of the status page's incidents, newest first, and how many match in all."""
    status_page = await find_page(session, org_id, slug)
    conditions = [PageIncident.page_id == status_page.id]
    if status == "open":
        conditions.append(PageIncident.resolved_at.is_(None))
    elif status == "resolved":
        conditions.append(PageIncident.resolved_at.is_not(None))
    total = int(await session.scalar(select(func.count()).select_from(PageIncident).where(*conditions)) or 0)
    incidents = await session.scalars(
        select(PageIncident)
        .where(*conditions)
        .order_by(PageIncident.started_at.desc(), PageIncident.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return await _views(session, status_page.id, incidents), total


async def get_incident(session: AsyncSession, org_id: str, slug: str, incident_id: str) -> DeclaredIncident:
    page = await find_page(session, org_id, slug)
    return await _view(session, page.id, await _find_incident(session, page, incident_id))


async def add_update(
    session: AsyncSession,
    org_id: str,
    slug: str,
    incident_id: str,
    *,
    status: str,
    message: str,
    author_id: str | None,
    now: datetime,
) -> PageIncidentUpdate:
    """An update on the timeline; the incident takes its status, and is resolved or reopened as
    the module says. Resolving is a compare-and-set, so two resolutions at once record one time."""
    if status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
    page = await find_page(session, org_id, slug)
    incident = await _find_incident(session, page, incident_id)
    entry = PageIncidentUpdate(
        id=new_id("piu"),
        incident_id=incident.id,
        status=status,
        message=message,
        author_id=author_id,
        created_at=now,
    )
    session.add(entry)
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "resolved":
        await session.execute(
            update(PageIncident)
            .where(PageIncident.id == incident.id, PageIncident.resolved_at.is_(None))
            .values(resolved_at=now)
            .execution_options(synchronize_session=False)
        )
    else:
        values["resolved_at"] = None  # reopens a resolved incident
    await session.execute(
        update(PageIncident)
        .where(PageIncident.id == incident.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return entry


async def edit(
    session: AsyncSession,
    org_id: str,
    slug: str,
    incident_id: str,
    changes: Mapping[str, Any],
    *,
    now: datetime,
) -> DeclaredIncident:
    """Changes the columns given (of EDITABLE; `postmortem` None clears it)."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    page = await find_page(session, org_id, slug)
    incident = await _find_incident(session, page, incident_id)
    values = dict(changes)
    if "component_ids" in values:
        values["component_ids"] = await _checked_components(session, page.id, values["component_ids"])
    for column, value in values.items():
        setattr(incident, column, value)
    incident.updated_at = now
    await session.commit()
    return await _view(session, page.id, incident)


async def delete_incident(session: AsyncSession, org_id: str, slug: str, incident_id: str) -> None:
    """Deletes the incident; its timeline goes with it (ON DELETE CASCADE)."""
    page = await find_page(session, org_id, slug)
    incident = await _find_incident(session, page, incident_id)
    await session.execute(delete(PageIncident).where(PageIncident.id == incident.id))
    await session.commit()
