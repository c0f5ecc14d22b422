"""/api/heartbeat/{token}: pings from cron jobs and the like. Public: the unguessable token in the
path names the monitor. GET or POST, any body (kept, capped, as the ping's log), no Content-Type
needed, so `curl -fsS -m 10 --retry 5 URL` and `curl --data-binary @log URL` both work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import with_config
from typing_extensions import TypedDict

from control_plane.api.deps import RuntimeDep, SessionDep, spend_budget, spend_failed_authentication
from control_plane.api.openapi import errors
from control_plane.api.responses import CLOSED, JsonResponse
from control_plane.core.errors import NotFound
from control_plane.heartbeats.pings import PING_EXIT, PING_FAIL, PING_START, PING_SUCCESS, Ping, record_ping

router = APIRouter(prefix="/api/heartbeat", tags=["heartbeat"])

RID_PATTERN = r"^[A-Za-z0-9._:-]+$"
Token = Annotated[str, Path(description="The monitor's heartbeat token (hb_...), from its heartbeatUrl")]
Rid = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=RID_PATTERN,
        description="Pairs a /start with its finish to time the run: up to 64 letters, digits, . _ : -",
    ),
]
ExitCode = Annotated[
    int,
    Path(alias="exitCode", ge=0, le=255, description="The job's exit status: 0 is success, 1-255 failure"),
]


@with_config(CLOSED)
class PingAccepted(TypedDict):
    ok: Literal[True]


_ERRORS = errors(
    (400, "`rid` or the exit code broke its rule"),
    (404, "No HEARTBEAT monitor has this token"),
    (429, "This token's pings per minute are spent, or this address's budget for unknown tokens"),
)
_BODY = {
    "required": False,
    "description": "Anything (a log, output): its start, up to the server's limit, is kept as the ping's "
    "log; a longer body is truncated, not refused",
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


async def _spend_ping_budget(request: Request, runtime: RuntimeDep, token: Token) -> None:
    per_minute = runtime.settings.heartbeat_pings_per_minute
    exceeded = f"{per_minute} pings per minute for this heartbeat"
    await spend_budget(request, runtime, f"heartbeat:{token}", per_minute, exceeded)


async def _read_log(request: Request, limit: int) -> tuple[bytes, int]:
    """The body's first `limit` bytes and its whole size; the rest is read and dropped."""
    kept = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept), size


async def _ping(
    request: Request, runtime: RuntimeDep, session: SessionDep, token: str, kind: str, **fields: Any
) -> JsonResponse:
    await _spend_ping_budget(request, runtime, token)
    body, size = await _read_log(request, runtime.settings.heartbeat_body_max_bytes)
    ping = Ping(
        kind=kind,
        body=body,
        body_bytes=size,
        user_agent=request.headers.get("user-agent"),
        source_ip=request.client.host if request.client else None,
        **fields,
    )
    try:
        await record_ping(session, token, ping, now=runtime.clock())
    except NotFound:
        # A token is a secret: guessing them spends the address's budget for failed
        # authentications (each new guess would otherwise have a per-token budget of its own).
        await spend_failed_authentication(request, runtime)  # 429 once it is spent
        raise
    return JsonResponse({"ok": True})


async def ping_success(
    request: Request, runtime: RuntimeDep, session: SessionDep, token: Token, rid: Rid = None
) -> JsonResponse:
    """The job succeeded (or is alive): the monitor is UP and its next ping is due on schedule."""
    return await _ping(request, runtime, session, token, PING_SUCCESS, rid=rid)


async def ping_start(
    request: Request, runtime: RuntimeDep, session: SessionDep, token: Token, rid: Rid = None
) -> JsonResponse:
    """The job started: its finish (with the same `rid`) is timed against this."""
    return await _ping(request, runtime, session, token, PING_START, rid=rid)


async def ping_fail(
    request: Request, runtime: RuntimeDep, session: SessionDep, token: Token, rid: Rid = None
) -> JsonResponse:
    """The job failed: the monitor is DOWN until its next success."""
    return await _ping(request, runtime, session, token, PING_FAIL, rid=rid)


async def ping_exit_code(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    token: Token,
    exit_code: ExitCode,
    rid: Rid = None,
) -> JsonResponse:
    """The job ended with this exit status: 0 is a success, anything else a failure."""
    return await _ping(request, runtime, session, token, PING_EXIT, rid=rid, exit_code=exit_code)


def _route(path: str, endpoint: Callable[..., Awaitable[JsonResponse]]) -> None:
    # One operation per method, each with its own id (a generated client's method name).
    for method in ("GET", "POST"):
        extra: dict[str, Any] = {"security": []}
        if method == "POST":
            extra["requestBody"] = _BODY
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            name=endpoint.__name__ if method == "GET" else f"{endpoint.__name__}_post",
            response_model=PingAccepted,
            responses=_ERRORS,
            openapi_extra=extra,
        )


# /start and /fail before /{exitCode}, which would otherwise take them (as a 400).
_route("/{token}", ping_success)
_route("/{token}/start", ping_start)
_route("/{token}/fail", ping_fail)
_route("/{token}/{exitCode}", ping_exit_code)
