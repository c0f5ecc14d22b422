"""Pure ASGI middleware: request body cap, and response headers that dependencies queue up."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Dependencies append (name, value) byte pairs here; they go out with the response, errors included.
RESPONSE_HEADERS_KEY = "traxo.response_headers"


class _BodyTooLarge(HTTPException):
    """Raised from receive(); FastAPI re-raises HTTPExceptions from body parsing as they are."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large (limit {limit} bytes)")


class ApiMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            # No id contains NUL, and PostgreSQL cannot even compare with one.
            await _send_error(send, 404, "Not found")
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False
                if too_large:
                    await _send_error(send, 413, f"Request body too large (limit {limit} bytes)")
                    return
        extra_headers: list[tuple[bytes, bytes]] = []
        scope[RESPONSE_HEADERS_KEY] = extra_headers
        started = False
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if extra_headers:
                    message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, 413, f"Request body too large (limit {limit} bytes)")


async def _send_error(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
