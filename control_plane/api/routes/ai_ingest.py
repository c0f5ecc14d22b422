"""POST /api/ai/ingest/{monitorId}: LLM events from applications. Public (the monitor id routes
it), CORS for browsers (cors.py). A 200 is a committed event: the group commit answers after it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from control_plane.api.ai_ingest_answer import answer_ingest
from control_plane.api.ai_schemas import AcceptedResponse, AiIngestBody, BatchResponse
from control_plane.api.deps import Runtime
from control_plane.api.openapi import errors, json_body
from control_plane.api.responses import JsonResponse

router = APIRouter(prefix="/api/ai", tags=["ai ingest"])

MonitorId = Annotated[str, Path(alias="monitorId", description="The LLM monitor's id (mon_...)")]

_NOT_TAKEN = (
    "The body, or its single event, broke a rule (the field is named); or the monitor is not an LLM "
    "monitor, or is paused"
)
_SPENT = (
    "The organization's daily AI event limit (its plan's) is spent: a single event, or every event of a "
    "batch that was not invalid; Retry-After is the next UTC midnight. Or this address's failed "
    "authentications (unknown monitor ids, as wrong keys) per minute are spent"
)


_REFUSED = (
    "Nothing of the request was stored: the ingest is at capacity, or the group's write failed; send "
    "it again after Retry-After"
)


@router.post(
    "/ingest/{monitorId}",
    response_model=AcceptedResponse | BatchResponse,
    responses=errors((400, _NOT_TAKEN), (404, "No monitor has this id"), 413, (429, _SPENT), (503, _REFUSED)),
    openapi_extra={
        "security": [],
        **json_body(
            AiIngestBody,
            'One event, answered `{"data": {...}}`; or `{"events": [...]}` (up to the server\'s batch '
            'limit), answered `{"data": [...]}` with one entry per event in order: the stored event, or '
            '`{"error", "status"}` for one that broke a rule (400) or was over the daily limit (429)',
        ),
    },
)
async def ingest_ai_event(request: Request, monitor_id: MonitorId) -> JsonResponse:
    """Store an LLM call's usage (or a batch of them) on an LLM monitor: answered once committed."""
    # The runtime straight from the app, not as a dependency: FastAPI's solving costs per level.
    runtime: Runtime = request.app.state.runtime
    client = request.client.host if request.client else None
    return JsonResponse(await answer_ingest(runtime, monitor_id, await request.body(), client))
