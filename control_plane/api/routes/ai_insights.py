"""An LLM monitor's insights: what the insights worker found in its usage, and dismissing them."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.ai.insights import store as insights_store
from control_plane.api.ai_insight_schemas import (
    InsightListResponse,
    InsightResponse,
    InsightUpdate,
    insight_out,
)
from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, SessionDep
from control_plane.api.openapi import errors
from control_plane.api.responses import JsonResponse, data_response

router = APIRouter(prefix="/api/monitors", tags=["ai monitoring"])

_NOT_LLM = (400, "The monitor is not an LLM monitor")
_MONITOR_NOT_FOUND = (404, "No monitor of the organization has this id")


@router.get(
    "/{monitor_id}/insights",
    response_model=InsightListResponse,
    responses=errors(_NOT_LLM, _MONITOR_NOT_FOUND),
)
async def list_insights(monitor_id: str, member: MemberDep, session: SessionDep) -> JsonResponse:
    """The insights that hold now, dismissed ones included (`dismissed: true`): the most severe
    first, then the largest savings, then the newest. The worker regenerates them every few minutes
    from the last 24 hours."""
    rows = await insights_store.list_insights(session, member.org_id, monitor_id)
    return data_response([insight_out(row) for row in rows])


@router.patch(
    "/{monitor_id}/insights/{insight_id}",
    response_model=InsightResponse,
    responses=errors(
        (400, "The body broke a rule, or the monitor is not an LLM monitor"),
        (404, "No such monitor in the organization, or no such insight of it"),
    ),
)
async def update_insight(
    monitor_id: str,
    insight_id: str,
    body: InsightUpdate,
    member: OrgWriterDep,
    session: SessionDep,
    now: NowDep,
) -> JsonResponse:
    """Dismisses an insight (it stays hidden from the worker's regeneration until its numbers change
    materially) or shows it again."""
    row = await insights_store.set_dismissed(
        session, member.org_id, monitor_id, insight_id, body.dismissed, now=now
    )
    return data_response(insight_out(row))
