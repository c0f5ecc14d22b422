"""/api/monitors: uptime monitors, their results, incidents and performance."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, RuntimeDep, SessionDep
from control_plane.api.errors import ApiError
from control_plane.api.monitor_responses import (
    CheckPageResponse,
    MonitorDetailResponse,
    MonitorIncidentListResponse,
    MonitorResponse,
    MonitorStateResponse,
    MonitorSummaryListResponse,
    MonitorUpdatedResponse,
    PerformanceResponse,
)
from control_plane.api.monitor_schemas import (
    DATE_FILTER_PATTERN,
    MonitorCreate,
    MonitorUpdate,
    parse_date_filter,
)
from control_plane.api.monitor_serializers import (
    check_out,
    monitor_detail_out,
    monitor_incident_out,
    monitor_list_items,
    monitor_out,
    monitor_updated_out,
)
from control_plane.api.openapi import errors
from control_plane.api.responses import (
    JsonResponse,
    MessageResponse,
    data_message_response,
    data_response,
    message_response,
    page_response,
    pagination,
)
from control_plane.core.timefmt import iso
from control_plane.services import history, monitors
from control_plane.services.monitors import OrgContext

router = APIRouter(prefix="/api/monitors", tags=["monitors"])

_NOT_FOUND = (404, "Monitor not found")
_PLAN_LIMIT = (
    403,
    "Beyond the plan: its monitor count, its minimum interval, or a type it lacks (BROWSER); "
    "`error` names the plan and the limit",
)
_DATE_FILTER = (
    "ISO 8601 date (2025-06-15, midnight UTC) or timestamp (2025-06-15T12:00:00Z; without an offset, "
    "UTC); a real calendar date"
)


def _org(member: Any) -> OrgContext:
    return OrgContext(org_id=member.org_id, plan=member.org.plan)


@router.get("", response_model=MonitorSummaryListResponse)
async def list_monitors(member: MemberDep, session: SessionDep, runtime: RuntimeDep) -> JsonResponse:
    """The organization's monitors, newest first, each with its last check."""
    rows = await monitors.list_monitors(session, member.org_id)
    return data_response(monitor_list_items(rows, runtime.settings.public_url))


@router.post(
    "",
    status_code=201,
    response_model=MonitorResponse,
    responses=errors(_PLAN_LIMIT),
)
async def create_monitor(
    body: MonitorCreate, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    monitor = await monitors.create_monitor(
        session, runtime.settings, _org(member), body.model_dump(exclude_unset=True), now=runtime.clock()
    )
    return data_response(monitor_out(monitor, runtime.settings.public_url), status_code=201)


@router.get("/{monitor_id}", response_model=MonitorDetailResponse, responses=errors(_NOT_FOUND))
async def get_monitor(
    monitor_id: str, member: MemberDep, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    """The monitor with its last 50 checks and 10 most recent incidents."""
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    checks, _ = await history.check_page(session, monitor.id, page=1, limit=50)
    incidents = await history.recent_incidents(session, monitor.id, limit=10)
    return data_response(monitor_detail_out(monitor, checks, incidents, runtime.settings.public_url))


@router.put("/{monitor_id}", response_model=MonitorUpdatedResponse, responses=errors(_PLAN_LIMIT, _NOT_FOUND))
async def update_monitor(
    monitor_id: str, body: MonitorUpdate, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    """Changes the fields sent, and only those."""
    monitor = await monitors.update_monitor(
        session,
        runtime.settings,
        _org(member),
        monitor_id,
        body.model_dump(exclude_unset=True),
        now=runtime.clock(),
    )
    return data_response(monitor_updated_out(monitor, runtime.settings.public_url))


@router.delete("/{monitor_id}", response_model=MessageResponse, responses=errors(_NOT_FOUND))
async def delete_monitor(
    monitor_id: str, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Deletes the monitor with its checks and incidents."""
    await monitors.delete_monitor(session, member.org_id, monitor_id, now=now)
    return message_response("Monitor deleted successfully")


@router.post("/{monitor_id}/pause", response_model=MonitorStateResponse, responses=errors(_NOT_FOUND))
async def pause_monitor(
    monitor_id: str, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    monitor = await monitors.set_active(session, _org(member), monitor_id, False, now=runtime.clock())
    return data_message_response(monitor_out(monitor, runtime.settings.public_url), "Monitor paused")


@router.post(
    "/{monitor_id}/resume", response_model=MonitorStateResponse, responses=errors(_PLAN_LIMIT, _NOT_FOUND)
)
async def resume_monitor(
    monitor_id: str, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    monitor = await monitors.set_active(session, _org(member), monitor_id, True, now=runtime.clock())
    return data_message_response(monitor_out(monitor, runtime.settings.public_url), "Monitor resumed")


@router.get("/{monitor_id}/checks", response_model=CheckPageResponse, responses=errors(_NOT_FOUND))
async def list_checks(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description=f"Checks at or after this: {_DATE_FILTER}",
            json_schema_extra={"pattern": DATE_FILTER_PATTERN},
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=64,
            description=f"Checks at or before this: {_DATE_FILTER}",
            json_schema_extra={"pattern": DATE_FILTER_PATTERN},
        ),
    ] = None,
) -> JsonResponse:
    """The monitor's checks, newest first, a page at a time."""
    since, until = parse_date_filter(from_, "from"), parse_date_filter(to, "to")
    if since and until and since > until:
        raise ApiError(400, "from: must not be after to")
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    checks, total = await history.check_page(
        session, monitor.id, page=page, limit=limit, since=since, until=until
    )
    return page_response([check_out(check) for check in checks], pagination(page, limit, total))


@router.get(
    "/{monitor_id}/incidents", response_model=MonitorIncidentListResponse, responses=errors(_NOT_FOUND)
)
async def list_monitor_incidents(monitor_id: str, member: MemberDep, session: SessionDep) -> JsonResponse:
    """The monitor's incidents, newest first."""
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    incidents = await history.recent_incidents(session, monitor.id)
    return data_response([monitor_incident_out(incident, monitor) for incident in incidents])


@router.get("/{monitor_id}/performance", response_model=PerformanceResponse, responses=errors(_NOT_FOUND))
async def monitor_performance(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    now: NowDep,
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
) -> JsonResponse:
    """Averages, p95 and an hourly series of the phase timings over the last `hours` hours."""
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    data = await history.performance(session, monitor.id, hours=hours, now=now)
    for point in data["timeSeries"]:
        point["timestamp"] = iso(point["timestamp"])
    return data_response(data)


@router.get(
    "/{monitor_id}/checks/{check_id}/screenshot",
    response_class=Response,
    responses={
        200: {
            "description": "The PNG",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors((404, "Monitor not found, or the check has no screenshot")),
    },
)
async def check_screenshot(
    monitor_id: str, check_id: str, member: MemberDep, session: SessionDep
) -> Response:
    """The PNG a BROWSER check took (on failure, or at a `screenshot` step)."""
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    png = await history.screenshot(session, monitor.id, check_id)
    if png is None:
        raise ApiError(404, "Screenshot not found: this check has none")
    return Response(content=png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
