"""POST /api/ai/ingest/{monitorId} served straight from ASGI, before FastAPI's middleware stack,
routing and dependency solving: the ingest is the API's hottest public path, and those layers cost
it a third of its throughput (bench/README.md). The answers are the documented route's, built by
the same function (ai_ingest_answer.py), with what ApiMiddleware gives every request: the body cap
(413) and JSON errors, never a traceback. Anything else on the path (another method, a path with
more segments, a NUL) goes on to the app as before, where the route answers it."""

from __future__ import annotations

import logging
import re

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.api.ai_ingest_answer import answer_ingest
from control_plane.api.deps import Runtime
from control_plane.api.errors import ApiError, status_of
from control_plane.api.middleware import REQUEST_ID_KEY, route_path
from control_plane.api.unavailable import MESSAGE, RETRY_AFTER_SECONDS
from control_plane.core.errors import DomainError
from control_plane.db import UnavailableLog, database_unavailable
from control_plane.observability.http import ROUTE_TEMPLATE_KEY

log = logging.getLogger(__name__)

INGEST_PATH = re.compile(r"/api/ai/ingest/([^/\x00]+)")
INGEST_ROUTE = "/api/ai/ingest/{monitorId}"  # the route's template (routes/ai_ingest.py), for metrics
_JSON = (b"content-type", b"application/json")


class IngestFastPath:
    def __init__(self, app: ASGIApp, *, runtime: Runtime, max_body_bytes: int) -> None:
        self.app = app
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.outage = UnavailableLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        matched = INGEST_PATH.fullmatch(route_path(scope["path"], scope.get("root_path", "")))
        if matched is None:
            await self.app(scope, receive, send)
            return
        scope[ROUTE_TEMPLATE_KEY] = INGEST_ROUTE
        limit = self.max_body_bytes
        too_large = f"Request body too large (limit {limit} bytes)"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _answer(send, 413, {"error": too_large})
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer (and nothing was submitted)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(send, 413, {"error": too_large})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            client = scope.get("client")
            payload = await answer_ingest(
                self.runtime, matched.group(1), b"".join(chunks), client[0] if client else None
            )
        except ApiError as exc:
            await _answer(send, exc.status, {"error": exc.message}, exc.headers)
        except DomainError as exc:
            await _answer(send, status_of(exc), {"error": exc.message})
        except Exception as exc:
            if database_unavailable(exc):  # as the app's handlers answer it (api/unavailable.py)
                self.outage.note("POST", scope["path"], exc, scope.get(REQUEST_ID_KEY))
                await _answer(send, 503, {"error": MESSAGE}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
                return
            log.exception("unhandled error on POST %s", scope["path"])
            await _answer(
                send, 500, {"error": "Internal server error", "requestId": scope.get(REQUEST_ID_KEY)}
            )
        else:
            await _answer(send, 200, payload)


async def _answer(send: Send, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps(payload)
    raw = [(b"content-length", str(len(body)).encode()), _JSON]
    if headers:
        raw.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        )
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
