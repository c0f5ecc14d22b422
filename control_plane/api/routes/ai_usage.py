"""An LLM monitor's usage (from its hourly rollups) and its events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from control_plane.ai.monitors import llm_monitor
from control_plane.ai.usage import reads as usage
from control_plane.api.ai_usage_schemas import AiEventPageResponse, AiUsageResponse, ai_event_out
from control_plane.api.deps import MemberDep, NowDep, SessionDep
from control_plane.api.openapi import errors
from control_plane.api.responses import JsonResponse, data_response, page_response, pagination
from control_plane.core.timefmt import iso

router = APIRouter(prefix="/api/monitors", tags=["ai monitoring"])

_NOT_LLM = (
    400,
    "The monitor is not an LLM monitor (`error` says its type), or a query parameter broke a rule",
)
_NOT_FOUND = (404, "Monitor not found")


@router.get("/{monitor_id}/ai-usage", response_model=AiUsageResponse, responses=errors(_NOT_LLM, _NOT_FOUND))
async def ai_usage(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    now: NowDep,
    period: Annotated[
        Literal["24h", "7d", "30d"],
        Query(description="The last 24, 168 or 720 UTC hours, ending with the current one"),
    ] = "24h",
) -> JsonResponse:
    """Totals, latency, error rate, top models, every hour and RAG figures of the period."""
    monitor = await llm_monitor(session, member.org_id, monitor_id)
    data = await usage.usage(session, monitor.id, period=period, now=now)
    for hour in data["hourlyUsage"]:
        hour["hour"] = iso(hour["hour"])
    return data_response(data)


@router.get(
    "/{monitor_id}/ai-events", response_model=AiEventPageResponse, responses=errors(_NOT_LLM, _NOT_FOUND)
)
async def ai_events(
    monitor_id: str,
    member: MemberDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JsonResponse:
    """The monitor's events still kept (ai_retention_days), newest first, a page at a time."""
    monitor = await llm_monitor(session, member.org_id, monitor_id)
    events, total = await usage.event_page(session, monitor.id, page=page, limit=limit)
    return page_response([ai_event_out(event) for event in events], pagination(page, limit, total))
