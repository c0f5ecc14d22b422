"""/api/dashboard/stats: the organization's headline figures."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, RuntimeDep, SessionDep
from control_plane.api.org_responses import DashboardStatsResponse, dashboard_stats_out
from control_plane.api.responses import JsonResponse, data_response
from control_plane.services import dashboard

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])


@router.get("/stats", response_model=DashboardStatsResponse)
async def dashboard_stats(member: MemberDep, session: SessionDep, runtime: RuntimeDep) -> JsonResponse:
    figures = await dashboard.dashboard_stats(
        session, member.org_id, now=runtime.clock(), cache=runtime.uptime
    )
    return data_response(dashboard_stats_out(figures))
