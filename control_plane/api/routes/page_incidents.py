"""/api/status-pages/{slug}/incidents: incidents declared by hand on a page, their timeline and
post-mortem."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, SessionDep
from control_plane.api.openapi import errors
from control_plane.api.page_incident_schemas import (
    PageIncidentCreate,
    PageIncidentEdit,
    PageIncidentPageResponse,
    PageIncidentResponse,
    PageIncidentUpdateCreate,
    PageIncidentUpdateResponse,
    page_incident_out,
    update_out,
)
from control_plane.api.responses import (
    JsonResponse,
    MessageResponse,
    data_response,
    message_response,
    page_response,
    pagination,
)
from control_plane.status_pages import declared

router = APIRouter(prefix="/api/status-pages", tags=["status pages"])

_PAGE_NOT_FOUND = (404, "Status page not found (or another organization's)")
_NOT_FOUND = (404, "Status page or incident not found (or another organization's, or another page's)")
_BAD_COMPONENTS = (400, "A field broke a rule, or componentIds names components not on this page")


@router.post(
    "/{slug}/incidents",
    status_code=201,
    response_model=PageIncidentResponse,
    responses=errors(_BAD_COMPONENTS, _PAGE_NOT_FOUND),
)
async def declare_page_incident(
    slug: str, body: PageIncidentCreate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Declares an incident on the page; its message is the timeline's first update."""
    view = await declared.declare(
        session,
        member.org_id,
        slug,
        title=body.title,
        impact=body.impact,
        status=body.status,
        message=body.message,
        component_ids=body.componentIds,
        postmortem=body.postmortem,
        author_id=member.user_id,
        now=now,
    )
    return data_response(page_incident_out(view), status_code=201)


@router.get("/{slug}/incidents", response_model=PageIncidentPageResponse, responses=errors(_PAGE_NOT_FOUND))
async def list_page_incidents(
    slug: str,
    member: MemberDep,
    session: SessionDep,
    status: Annotated[
        Literal["open", "resolved"] | None,
        Query(description="open: not resolved (reopened ones too); resolved: over. Omit for all"),
    ] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JsonResponse:
    """The page's declared incidents, newest first, a page at a time."""
    views, total = await declared.list_incidents(
        session, member.org_id, slug, status=status, page=page, limit=limit
    )
    return page_response([page_incident_out(view) for view in views], pagination(page, limit, total))


@router.get(
    "/{slug}/incidents/{incident_id}", response_model=PageIncidentResponse, responses=errors(_NOT_FOUND)
)
async def get_page_incident(
    slug: str, incident_id: str, member: MemberDep, session: SessionDep
) -> JsonResponse:
    """The incident with its timeline, newest update first."""
    view = await declared.get_incident(session, member.org_id, slug, incident_id)
    return data_response(page_incident_out(view))


@router.post(
    "/{slug}/incidents/{incident_id}/updates",
    status_code=201,
    response_model=PageIncidentUpdateResponse,
    responses=errors(_NOT_FOUND),
)
async def post_page_incident_update(
    slug: str,
    incident_id: str,
    body: PageIncidentUpdateCreate,
    member: OrgWriterDep,
    session: SessionDep,
    now: NowDep,
) -> JsonResponse:
    """Adds a status update to the timeline: resolved resolves the incident (a note if it already
    is); another status on a resolved incident reopens it (resolvedAt back to null)."""
    update = await declared.add_update(
        session,
        member.org_id,
        slug,
        incident_id,
        status=body.status,
        message=body.message,
        author_id=member.user_id,
        now=now,
    )
    return data_response(update_out(update), status_code=201)


@router.patch(
    "/{slug}/incidents/{incident_id}",
    response_model=PageIncidentResponse,
    responses=errors(_BAD_COMPONENTS, _NOT_FOUND),
)
async def edit_page_incident(
    slug: str,
    incident_id: str,
    body: PageIncidentEdit,
    member: OrgWriterDep,
    session: SessionDep,
    now: NowDep,
) -> JsonResponse:
    """Changes the fields sent: title, impact, components, the post-mortem (null clears it). The
    status changes with updates only."""
    view = await declared.edit(session, member.org_id, slug, incident_id, body.columns(), now=now)
    return data_response(page_incident_out(view))


@router.delete(
    "/{slug}/incidents/{incident_id}", response_model=MessageResponse, responses=errors(_NOT_FOUND)
)
async def delete_page_incident(
    slug: str, incident_id: str, member: OrgWriterDep, session: SessionDep
) -> JsonResponse:
    """Deletes the incident and its timeline."""
    await declared.delete_incident(session, member.org_id, slug, incident_id)
    return message_response("Incident deleted successfully")
