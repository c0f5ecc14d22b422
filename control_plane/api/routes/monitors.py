"""/api/monitors: uptime monitors, their results, incidents and performance."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from control_plane.api.deps import MemberDep, OrgWriterDep, RuntimeDep, SessionDep
from control_plane.api.errors import ApiError
from control_plane.api.monitor_schemas import (
    MonitorCreate,
    MonitorUpdate,
    check_out,
    monitor_detail_out,
    monitor_incident_out,
    monitor_list_items,
    monitor_out,
    monitor_updated_out,
)
from control_plane.api.responses import JsonResponse
from control_plane.services import history, monitors
from control_plane.services.monitors import OrgContext
from control_plane.timefmt import iso, parse_iso, utcnow

router = APIRouter(prefix="/api/monitors", tags=["monitors"])


def _org(member: Any) -> OrgContext:
    return OrgContext(org_id=member.org_id, plan=member.org.plan)


# The read routes that may answer thousands of items return their JsonResponse themselves: for a
# `dict[str, Any]` return value FastAPI would validate and re-serialize the whole tree (with no
# response model, run jsonable_encoder over it, slower still) before orjson renders it.
@router.get("")
async def list_monitors(member: MemberDep, session: SessionDep, runtime: RuntimeDep) -> JsonResponse:
    rows = await monitors.list_monitors(session, member.org_id)
    return JsonResponse({"data": monitor_list_items(rows, runtime.settings.public_url)})


@router.post("", status_code=201)
async def create_monitor(
    body: MonitorCreate, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    monitor = await monitors.create_monitor(
        session, runtime.settings, _org(member), body.model_dump(exclude_unset=True)
    )
    return {"data": monitor_out(monitor, runtime.settings.public_url)}


@router.get("/{monitor_id}")
async def get_monitor(
    monitor_id: str, member: MemberDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    checks, _ = await history.check_page(session, monitor.id, page=1, limit=50)
    incidents = await history.recent_incidents(session, monitor.id, limit=10)
    return {"data": monitor_detail_out(monitor, list(checks), list(incidents), runtime.settings.public_url)}


@router.put("/{monitor_id}")
async def update_monitor(
    monitor_id: str, body: MonitorUpdate, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    monitor = await monitors.update_monitor(
        session, runtime.settings, _org(member), monitor_id, body.model_dump(exclude_unset=True)
    )
    return {"data": monitor_updated_out(monitor, runtime.settings.public_url)}


@router.delete("/{monitor_id}")
async def delete_monitor(monitor_id: str, member: OrgWriterDep, session: SessionDep) -> dict[str, Any]:
    await monitors.delete_monitor(session, member.org_id, monitor_id)
    return {"message": "Monitor deleted successfully"}


@router.post("/{monitor_id}/pause")
async def pause_monitor(
    monitor_id: str, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    monitor = await monitors.set_active(session, _org(member), monitor_id, False)
    return {"data": monitor_out(monitor, runtime.settings.public_url), "message": "Monitor paused"}


@router.post("/{monitor_id}/resume")
async def resume_monitor(
    monitor_id: str, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    monitor = await monitors.set_active(session, _org(member), monitor_id, True)
    return {"data": monitor_out(monitor, runtime.settings.public_url), "message": "Monitor resumed"}


def _parse_date(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):  # OverflowError: an offset that leaves years 1-9999
        raise ApiError(400, f"{field}: {value!r} is not an ISO 8601 date or timestamp") from None


@router.get("/{monitor_id}/checks")
async def list_checks(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    since, until = _parse_date(from_, "from"), _parse_date(to, "to")
    if since and until and since > until:
        raise ApiError(400, "from: must not be after to")
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    checks, total = await history.check_page(
        session, monitor.id, page=page, limit=limit, since=since, until=until
    )
    return {
        "data": [check_out(check) for check in checks],
        "pagination": {"page": page, "limit": limit, "total": total, "totalPages": math.ceil(total / limit)},
    }


@router.get("/{monitor_id}/incidents")
async def list_monitor_incidents(monitor_id: str, member: MemberDep, session: SessionDep) -> dict[str, Any]:
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    incidents = await history.recent_incidents(session, monitor.id)
    return {"data": [monitor_incident_out(incident, monitor) for incident in incidents]}


@router.get("/{monitor_id}/performance")
async def performance(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
) -> JsonResponse:
    monitor = await monitors.get_monitor(session, member.org_id, monitor_id)
    data = await history.performance(session, monitor.id, hours=hours, now=utcnow())
    for point in data["timeSeries"]:
        point["timestamp"] = iso(point["timestamp"])
    return JsonResponse({"data": data})


@router.get(
    "/{monitor_id}/checks/{check_id}/screenshot",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
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
