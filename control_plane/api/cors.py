"""CORS for the AI ingest's public paths only (browsers report LLM events straight to us): any
origin, no credentials. A preflight is answered here, before routing; every answer on those paths,
errors included, carries Access-Control-Allow-Origin. Every other path is left as it was: no CORS."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORS_PREFIXES = ("/api/ai/ingest/", "/api/ai/otlp/")
ALLOWED_METHODS = b"POST, OPTIONS"
DEFAULT_HEADERS = b"Content-Type, Content-Encoding"
MAX_AGE = b"86400"  # browsers cap it lower (Chrome: 2 h); a day asks for as long as they allow
_ALLOW_ORIGIN = (b"access-control-allow-origin", b"*")


class IngestCorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CORS_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"]) if scope["method"] == "OPTIONS" else {}
        if b"access-control-request-method" in headers:
            requested = headers.get(b"access-control-request-headers", b"").strip()
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        _ALLOW_ORIGIN,
                        (b"access-control-allow-methods", ALLOWED_METHODS),
                        (b"access-control-allow-headers", requested[:1000] or DEFAULT_HEADERS),
                        (b"access-control-max-age", MAX_AGE),
                        (b"vary", b"Access-Control-Request-Headers"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _ALLOW_ORIGIN]
            await send(message)

        await self.app(scope, receive, send_with_origin)
