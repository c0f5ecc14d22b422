"""POST /api/ai/ingest/{monitorId}: LLM events from applications. Public (the monitor id routes
it), CORS for browsers (cors.py). A 200 is a committed event: the group commit answers after it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from control_plane.ai.ingest import Accepted, IngestFailed, OverLimit
from control_plane.api.ai_schemas import (
    AcceptedResponse,
    AiIngestBody,
    BatchResponse,
    BodyError,
    accepted_out,
    answer_out,
    parse_body,
)
from control_plane.api.deps import Runtime
from control_plane.api.errors import ApiError
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
    "batch that was not invalid; Retry-After is the next UTC midnight"
)
_UNAVAILABLE = "The events could not be stored (nothing of them was); send them again"


@router.post(
    "/ingest/{monitorId}",
    response_model=AcceptedResponse | BatchResponse,
    responses=errors(
        (400, _NOT_TAKEN), (404, "No monitor has this id"), 413, (429, _SPENT), (503, _UNAVAILABLE)
    ),
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
    try:
        body = parse_body(await request.body(), runtime.settings)
    except BodyError as exc:
        raise ApiError(400, exc.message) from None
    valid = [event for event in body.events if not isinstance(event, str)]
    try:
        answers = await runtime.ai_ingest.submit(monitor_id, valid)
    except IngestFailed:
        raise ApiError(503, _UNAVAILABLE, {"Retry-After": "1"}) from None
    if not body.batch:
        answer = answers[0]
        if isinstance(answer, OverLimit):
            raise ApiError(429, answer.error, {"Retry-After": str(answer.retry_after)})
        return JsonResponse({"data": accepted_out(answer)})
    stored = iter(answers)
    outcomes = [event if isinstance(event, str) else next(stored) for event in body.events]
    over = [outcome for outcome in outcomes if isinstance(outcome, OverLimit)]
    if over and not any(isinstance(outcome, Accepted) for outcome in outcomes):
        raise ApiError(429, over[0].error, {"Retry-After": str(over[0].retry_after)})
    return JsonResponse({"data": [answer_out(outcome) for outcome in outcomes]})
