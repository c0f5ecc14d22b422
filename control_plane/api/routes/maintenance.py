"""/api/maintenance: scheduled maintenance windows, one-off or recurring, for a monitor or the
whole organization (docs/maintenance.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, SessionDep
from control_plane.api.maintenance_schemas import (
    MaintenanceCreate,
    MaintenanceUpdate,
    MaintenanceWindowListResponse,
    MaintenanceWindowResponse,
    window_out,
)
from control_plane.api.openapi import errors
from control_plane.api.responses import JsonResponse, MessageResponse, data_response, message_response
from control_plane.maintenance import service

router = APIRouter(prefix="/api/maintenance", tags=["maintenance"])

_NOT_FOUND = (404, service.NOT_FOUND)
_FILTER = (
    "active: enabled and in progress now (for a recurring window, inside an occurrence); upcoming: "
    "enabled and starting later; past: over (its end passed, or no occurrence left), enabled or "
    "not. Omit for all, disabled windows included."
)


@router.get("", response_model=MaintenanceWindowListResponse)
async def list_maintenance_windows(
    member: MemberDep,
    session: SessionDep,
    now: NowDep,
    filter: Annotated[Literal["active", "upcoming", "past"] | None, Query(description=_FILTER)] = None,
) -> JsonResponse:
    """The organization's maintenance windows, by start time."""
    views = await service.list_windows(session, member.org_id, filter=filter, now=now)
    return data_response([window_out(view, now) for view in views])


@router.post("", status_code=201, response_model=MaintenanceWindowResponse)
async def create_maintenance_window(
    body: MaintenanceCreate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Schedules a window; without monitorId it covers every monitor of the organization."""
    view = await service.create_window(session, member.org_id, body.columns(), now=now)
    return data_response(window_out(view, now), status_code=201)


@router.patch("/{window_id}", response_model=MaintenanceWindowResponse, responses=errors(_NOT_FOUND))
async def update_maintenance_window(
    window_id: str, body: MaintenanceUpdate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Changes the fields sent; the window as changed must still end after it starts."""
    view = await service.update_window(session, member.org_id, window_id, body.columns(), now=now)
    return data_response(window_out(view, now))


@router.delete("/{window_id}", response_model=MessageResponse, responses=errors(_NOT_FOUND))
async def delete_maintenance_window(
    window_id: str, member: OrgWriterDep, session: SessionDep
) -> JsonResponse:
    await service.delete_window(session, member.org_id, window_id)
    return message_response("Maintenance window deleted successfully")
