"""/api/dashboard/stats: the organization's headline figures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, SessionDep
from control_plane.services import history
from control_plane.timefmt import utcnow

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])


@router.get("/stats")
async def stats(member: MemberDep, session: SessionDep) -> dict[str, Any]:
    figures = await history.dashboard_stats(session, member.org_id, now=utcnow())
    return {
        "data": {
            "totalMonitors": figures.total_monitors,
            "currentlyDown": figures.currently_down,
            "avgUptime": figures.avg_uptime,
            "incidentsToday": figures.incidents_today,
        }
    }
