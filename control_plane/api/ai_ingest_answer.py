"""What POST /api/ai/ingest/{monitorId} answers, as a status, a JSON payload and headers: shared by
the documented FastAPI route (routes/ai_ingest.py) and the direct ASGI path that serves the same
requests before FastAPI's routing (ingest_fast_path.py)."""

from __future__ import annotations

from typing import Any

from control_plane.ai.ingest.committer import Accepted, IngestFailed, OverLimit, Overloaded
from control_plane.api.ai_schemas import BodyError, accepted_out, answer_out, parse_body
from control_plane.api.deps import Runtime, spend_failed_guess
from control_plane.api.errors import ApiError
from control_plane.core.errors import NotFound

UNAVAILABLE = "The events could not be stored (nothing of them was); send them again"
OVERLOADED = "The AI ingest is at capacity (nothing of the request was stored); send it again later"


async def answer_ingest(
    runtime: Runtime, monitor_id: str, raw: bytes, client_host: str | None
) -> dict[str, Any]:
    """The 200's payload once the events are committed. Raises ApiError for a 400 (the body),
    429 (the daily limit, or the address's failed guesses) or 503 (the ingest is at capacity, or the
    group's write failed), and the ingest's domain errors (an unknown monitor, one that is not an
    LLM monitor or is paused). A monitor id is the ingest's only secret: an unknown one spends the
    client address's failed-authentication budget, as a wrong key does."""
    if runtime.ai_ingest.saturated:  # refused before parsing: shedding must cost less than serving
        raise ApiError(503, OVERLOADED, {"Retry-After": "1"})
    try:
        body = parse_body(raw, runtime.settings)
    except BodyError as exc:
        raise ApiError(400, exc.message) from None
    valid = [event for event in body.events if not isinstance(event, str)]
    try:
        answers = await runtime.ai_ingest.submit(monitor_id, valid)
    except NotFound:
        await spend_failed_guess(runtime, client_host)
        raise
    except Overloaded:
        raise ApiError(503, OVERLOADED, {"Retry-After": "1"}) from None
    except IngestFailed:
        raise ApiError(503, UNAVAILABLE, {"Retry-After": "1"}) from None
    if not body.batch:
        answer = answers[0]
        if isinstance(answer, OverLimit):
            raise ApiError(429, answer.error, {"Retry-After": str(answer.retry_after)})
        return {"data": accepted_out(answer)}
    stored = iter(answers)
    outcomes = [event if isinstance(event, str) else next(stored) for event in body.events]
    over = [outcome for outcome in outcomes if isinstance(outcome, OverLimit)]
    if over and not any(isinstance(outcome, Accepted) for outcome in outcomes):
        raise ApiError(429, over[0].error, {"Retry-After": str(over[0].retry_after)})
    return {"data": [answer_out(outcome) for outcome in outcomes]}
