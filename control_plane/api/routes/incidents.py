"""/api/incidents: the organization's incidents, one with its timeline, status updates and
acknowledgements; and a monitor's SLA report (/api/monitors/:id/sla)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, SessionDep
from control_plane.api.incident_schemas import (
    IncidentDetailResponse,
    IncidentPageResponse,
    IncidentUpdateCreate,
    SlaResponse,
    TimelineEntryResponse,
    incident_detail_out,
    incident_out,
    sla_csv,
    sla_out,
    timeline_entry_out,
)
from control_plane.api.monitor_schemas import DATE_FILTER_PATTERN, parse_date_filter
from control_plane.api.openapi import errors
from control_plane.api.responses import JsonResponse, data_response, page_response, pagination
from control_plane.services import incidents, monitors, sla

router = APIRouter()  # tags per route: the SLA report is a monitor's

_NOT_FOUND = (404, "Incident not found")


@router.get("/api/incidents", tags=["incidents"], response_model=IncidentPageResponse)
async def list_incidents(
    member: MemberDep,
    session: SessionDep,
    status: Annotated[
        Literal["active", "resolved"] | None,
        Query(description="active: not resolved yet; resolved: over. Omit for all"),
    ] = None,
    monitor_id: Annotated[
        str | None,
        Query(
            alias="monitorId",
            min_length=1,
            max_length=64,
            description="One monitor's; a monitor of no organization of yours matches none",
        ),
    ] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JsonResponse:
    """The organization's incidents, newest first, a page at a time."""
    rows, total = await incidents.list_incidents(
        session, member.org_id, status=status, monitor_id=monitor_id, page=page, limit=limit
    )
    return page_response([incident_out(row) for row in rows], pagination(page, limit, total))


@router.get(
    "/api/incidents/{incident_id}",
    tags=["incidents"],
    response_model=IncidentDetailResponse,
    responses=errors(_NOT_FOUND),
)
async def get_incident(incident_id: str, member: MemberDep, session: SessionDep) -> JsonResponse:
    """The incident with its timeline, oldest entry first."""
    detail = await incidents.get_incident(session, member.org_id, incident_id)
    return data_response(incident_detail_out(detail))


@router.post(
    "/api/incidents/{incident_id}/updates",
    tags=["incidents"],
    status_code=201,
    response_model=TimelineEntryResponse,
    responses=errors(_NOT_FOUND),
)
async def post_incident_update(
    incident_id: str, body: IncidentUpdateCreate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Adds a status update to the timeline; `resolved` resolves an open incident."""
    entry = await incidents.add_update(
        session,
        member.org_id,
        incident_id,
        author_id=member.user_id,
        status=body.status,
        message=body.message,
        now=now,
    )
    return data_response(timeline_entry_out(entry), status_code=201)


@router.post(
    "/api/incidents/{incident_id}/acknowledge",
    tags=["incidents"],
    response_model=IncidentDetailResponse,
    responses=errors(_NOT_FOUND, (409, "The incident is already acknowledged, or resolved")),
)
async def acknowledge_incident(
    incident_id: str, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Records that you are on it (the calling key's user), once per incident."""
    detail = await incidents.acknowledge(session, member.org_id, incident_id, user_id=member.user_id, now=now)
    return data_response(incident_detail_out(detail))


_REPORT_BOUND = (
    "ISO 8601 date (2025-06-15) or timestamp (2025-06-15T12:00:00Z); the report covers the whole "
    "UTC days it touches"
)


@router.get(
    "/api/monitors/{monitor_id}/sla",
    tags=["monitors"],
    response_model=SlaResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **errors((404, "Monitor not found")),
    },
)
async def monitor_sla(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    now: NowDep,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description=f"From this day: {_REPORT_BOUND}. Default: 30 days before `to`",
            json_schema_extra={"pattern": DATE_FILTER_PATTERN},
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=64,
            description=f"Up to this instant (exclusive): {_REPORT_BOUND}. Default: the end of today; "
            "at most 400 days after `from`",
            json_schema_extra={"pattern": DATE_FILTER_PATTERN},
        ),
    ] = None,
    format: Annotated[
        Literal["json", "csv"], Query(description="csv: one row per day under a header row")
    ] = "json",
) -> Response:
    """Uptime (maintenance excluded), downtime, incidents, MTTR and the longest outage, per day and
    in all, from the daily rollups."""
    start, end = sla.report_range(parse_date_filter(from_, "from"), parse_date_filter(to, "to"), now=now)
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    report = await sla.sla_report(session, monitor, start=start, end=end, now=now)
    if format == "csv":
        filename = f"sla-{monitor.id}-{start.date().isoformat()}-{(end.date()).isoformat()}.csv"
        return Response(
            content=sla_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return data_response(sla_out(report))
