"""What operators' tooling reads: /metrics for Prometheus (not public: observability/exposition.py
says who may read it) and /readyz's answer. Neither is in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from control_plane.api.deps import Runtime, RuntimeDep, spend_failed_authentication
from control_plane.api.errors import ApiError
from control_plane.api.responses import JsonResponse
from control_plane.observability import exposition
from control_plane.observability.database import read_database_state
from control_plane.observability.readiness import unready_reason

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    refused = exposition.refusal(
        runtime.settings.metrics_token,
        request.headers.get("authorization"),
        request.client.host if request.client else None,
        forwarded=any(name in request.headers for name in exposition.FORWARDING_HEADERS),
    )
    if refused is not None:
        if refused.status == 401:
            # A wrong token spends the address's budget for failed authentications, as a wrong key does.
            await spend_failed_authentication(request, runtime)
            raise ApiError(401, refused.message, {"WWW-Authenticate": 'Bearer realm="metrics"'})
        raise ApiError(refused.status, refused.message)
    now = runtime.clock()
    state = await read_database_state(runtime.db, runtime.settings, now)
    return Response(exposition.render(state, now), media_type=exposition.CONTENT_TYPE)


async def readiness(runtime: Runtime) -> Any:
    """/readyz: 200 `{"status": "ready"}`, or 503 `{"status": "unready", "error": ...}` saying why."""
    reason = await unready_reason(runtime.db)
    if reason is None:
        return {"status": "ready"}
    return JsonResponse({"status": "unready", "error": reason}, status_code=503)
