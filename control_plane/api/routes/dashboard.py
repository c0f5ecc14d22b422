"""/api/dashboard/stats: the organization's headline figures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, RuntimeDep, SessionDep
from control_plane.services import dashboard
from control_plane.timefmt import utcnow

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])


@router.get("/stats")
async def stats(member: MemberDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    figures = await dashboard.dashboard_stats(session, member.org_id, now=utcnow(), cache=runtime.uptime)
    return {
        "data": {
            "totalMonitors": figures.total_monitors,
            "currentlyDown": figures.currently_down,
            "avgUptime": figures.avg_uptime,
            "incidentsToday": figures.incidents_today,
        }
    }
