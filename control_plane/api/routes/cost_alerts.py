"""An LLM monitor's cost alert: its daily and monthly budgets and who is mailed."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.ai.budgets import cost_alerts
from control_plane.api.cost_alert_schemas import (
    CostAlertDeletedResponse,
    CostAlertPut,
    CostAlertResponse,
    CostAlertSavedResponse,
    cost_alert_out,
    saved_out,
)
from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, SessionDep
from control_plane.api.openapi import errors
from control_plane.api.responses import JsonResponse, data_response

router = APIRouter(prefix="/api/monitors", tags=["ai monitoring"])

_NOT_LLM = (400, "The monitor is not an LLM monitor")
_NOT_FOUND = (404, "No such monitor in the organization, or it has no cost alert")
_NO_MONITOR = (404, "No such monitor in the organization")


@router.get(
    "/{monitor_id}/cost-alert", response_model=CostAlertResponse, responses=errors(_NOT_LLM, _NOT_FOUND)
)
async def get_cost_alert(monitor_id: str, member: MemberDep, session: SessionDep) -> JsonResponse:
    """The monitor's budgets, addresses, and when each budget last mailed."""
    alert = await cost_alerts.get_cost_alert(session, member.org_id, monitor_id)
    return data_response(cost_alert_out(alert))


@router.put(
    "/{monitor_id}/cost-alert", response_model=CostAlertSavedResponse, responses=errors(_NOT_LLM, _NO_MONITOR)
)
async def put_cost_alert(
    monitor_id: str, body: CostAlertPut, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Creates or replaces the cost alert (200 either way). At least one budget; an omitted budget
    is none. Changing a budget to above today's (this month's) spend lets it mail again this period."""
    alert = await cost_alerts.put_cost_alert(session, member.org_id, monitor_id, body.budgets(), now=now)
    return data_response(saved_out(alert))


@router.delete(
    "/{monitor_id}/cost-alert",
    response_model=CostAlertDeletedResponse,
    responses=errors(_NOT_LLM, _NOT_FOUND),
)
async def delete_cost_alert(monitor_id: str, member: OrgWriterDep, session: SessionDep) -> JsonResponse:
    await cost_alerts.delete_cost_alert(session, member.org_id, monitor_id)
    return data_response({"deleted": True})
