"""The AI ingest bench's yardstick: a FastAPI app whose POST /api/ai/ingest/{monitorId} reads and
validates the body exactly as the real route does (control_plane.api.ai_schemas.parse_body), then
answers a constant without storing anything (with --bare: the same as a bare ASGI app, as the
real ingest is served before FastAPI's layers). Served as `traxo api` serves (one uvicorn process,
the same HTTP protocol class). Usage: .venv/bin/python bench/ai_noop_app.py --port 18001
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.api.ai_schemas import BodyError, parse_body
from control_plane.api.http_protocol import ApiHttpProtocol
from control_plane.api.responses import JsonResponse
from control_plane.settings import Settings

ANSWER = {"data": {"id": "evt_noop", "costUsd": 0.0035, "dailyEventsUsed": 1, "dailyEventsLimit": 1_000_000}}


def build(settings: Settings) -> FastAPI:
    app = FastAPI(default_response_class=JsonResponse)

    @app.post("/api/ai/ingest/{monitorId}")
    async def ingest(request: Request, monitor_id: str = PathParam(alias="monitorId")) -> JsonResponse:
        try:
            parse_body(await request.body(), settings)
        except BodyError as exc:
            return JsonResponse({"error": exc.message}, status_code=400)
        return JsonResponse(ANSWER)

    return app


def build_bare(settings: Settings) -> ASGIApp:
    """The same validation and constant answer as a bare ASGI app, as the real ingest is served
    (control_plane/api/ingest_fast_path.py): what the durable write itself costs shows against it."""
    answer = orjson.dumps(ANSWER)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            parse_body(b"".join(chunks), settings)
            status, body = 200, answer
        except BodyError as exc:
            status, body = 400, orjson.dumps({"error": exc.message})
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bare", action="store_true", help="a bare ASGI app instead of FastAPI")
    args = parser.parse_args()
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", redis_url=None)
    uvicorn.run(
        build_bare(settings) if args.bare else build(settings),
        host="127.0.0.1",
        port=args.port,
        http=ApiHttpProtocol,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
