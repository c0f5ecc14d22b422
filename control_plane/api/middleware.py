"""Pure ASGI middleware: request ids (and the access log), security headers on every answer, request
body cap, response headers that dependencies queue up, and a 405's full Allow list."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.observability.http import RouteSeries
from control_plane.observability.logs import REQUEST_ID, request_id_from

# Dependencies append (name, value) byte pairs here; they go out with the response, errors included.
RESPONSE_HEADERS_KEY = "traxo.response_headers"
# The request's id (RequestEdge), for what answers outside it: the 500 of an unhandled error.
REQUEST_ID_KEY = "traxo.request_id"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")

access_log = logging.getLogger("traxo.access")

_NOSNIFF = (b"x-content-type-options", b"nosniff")
# What an HTML answer gets unless its route chose its own: nothing may load or run, nor frame it.
HTML_SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
)


def with_security_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """`headers` plus nosniff, and on HTML the headers above, for each one the answer lacks: a
    route's own policy (the status page's, the docs' CSP) stands, and a page added later without
    one, or an error page, is still covered."""
    names = set()
    html = False
    for name, value in headers:
        names.add(name)
        if name == b"content-type" and value[:9].lower() == b"text/html":
            html = True
    added = [] if _NOSNIFF[0] in names else [_NOSNIFF]
    if html:
        added += [pair for pair in HTML_SECURITY_HEADERS if pair[0] not in names]
    return [*headers, *added]


class RequestEdge:
    """The outermost layer, one pass for what every answer needs, whoever answers (the fast paths,
    ApiMiddleware's errors, the routes): its request id (a valid client X-Request-ID, else a new
    one) on every log record made for it (a context variable) and on the answer; its HTTP metrics
    (observability/http.py); its security headers (with_security_headers); with `access_log`, one
    INFO line. One layer, not one each: on the public pages' replayed answers two layers cost a
    fifth of the requests a second (measured)."""

    def __init__(self, app: ASGIApp, *, router: Router, access_log: bool = False) -> None:
        self.app = app
        self.series = RouteSeries(router)
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent: bytes | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                sent = value
                break
        request_id = request_id_from(sent)
        scope[REQUEST_ID_KEY] = request_id
        # Not reset afterwards: uvicorn runs each request in a task (a context) of its own, and
        # its log line of an unhandled error, made after we return, should carry the id too.
        REQUEST_ID.set(request_id)
        echoed = (_REQUEST_ID, request_id.encode("ascii"))
        status = 0  # the client left before any answer

        async def send_marked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new message: the one sent may be kept (public_answers.py replays its headers).
                headers = with_security_headers(message.get("headers", ()))
                message = {**message, "headers": [*headers, echoed]}
            await send(message)

        try:
            await self.app(scope, receive, send_marked)
        except BaseException:
            status = status or 500  # answered by Starlette's error layer, outside this one
            raise
        finally:
            seconds = time.perf_counter() - started
            # 0: the app returned without answering (the client left first), as in the access log;
            # a failure before any answer was made 500 above, what Starlette's error layer sends.
            self.series.of(scope).observe(status, seconds)
            if self.access_log:
                # The path's tokens are masked by the log handler's filter (observability/logs.py);
                # the query string is never logged.
                milliseconds = seconds * 1000
                access_log.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    scope["path"],
                    status,
                    milliseconds,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(milliseconds, 1),
                    },
                )


class _BodyTooLarge(HTTPException):
    """Raised from receive(); FastAPI re-raises HTTPExceptions from body parsing as they are."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large (limit {limit} bytes)")


# Heartbeat pings keep their body's start as the ping's log and drop the rest (routes/heartbeat.py):
# a cron job's long log must not turn its ping into a 413.
UNCAPPED_BODY_PREFIX = "/api/heartbeat/"

# The methods a 405's Allow header may list, in the order it lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ApiMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, router: Router) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.router = router
        self._fixed_paths: dict[str, frozenset[str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            # No id contains NUL, and PostgreSQL cannot even compare with one.
            await _send_error(send, 404, "Not found")
            return
        query = scope.get("query_string", b"")
        if b"%00" in query and (named := _query_parameter_with_nul(query)) is not None:
            # Nor a query parameter: PostgreSQL's text cannot hold one (a 500 before, fuzzing found).
            await _send_error(send, 400, f"{named}: must not contain a NUL character")
            return
        # Routing rewrites the scope (a Mount moves root_path); the Allow list matches what came in.
        path, root_path = scope["path"], scope.get("root_path", "")
        routed = route_path(path, root_path)
        limit = sys.maxsize if routed.startswith(UNCAPPED_BODY_PREFIX) else self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False
                if too_large:
                    await _send_error(send, 413, f"Request body too large (limit {limit} bytes)")
                    return
        methods = self._methods_of_fixed_path(routed)
        if methods is not None and scope["method"] not in methods:
            allow = [(b"allow", _allow(methods).encode("latin-1"))]
            await _send_error(send, 405, "Method not allowed", allow)
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
                if message["status"] == 405:
                    message["headers"] = self._with_full_allow(message.get("headers", []), path, root_path)
                if extra_headers:
                    message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, 413, f"Request body too large (limit {limit} bytes)")

    def _methods_of_fixed_path(self, route_path: str) -> frozenset[str] | None:
        """The methods of a path without parameters, such as /api/team/invite, or None.

        Such a path is that resource alone, whatever a parameterized path would also match
        (DELETE /api/team/{member_id} with member_id "invite"): as OpenAPI matches concrete paths
        before templated ones, a method it lacks is a 405 there, and its Allow list is its own.
        """
        if self._fixed_paths is None:  # on the first request: routes are all included by then
            fixed: dict[str, set[str]] = {}
            for route in iter_route_contexts(self.router.routes):
                if route.path_format and "{" not in route.path_format and route.methods:
                    fixed.setdefault(route.path_format, set()).update(route.methods)
            self._fixed_paths = {path: frozenset(methods) for path, methods in fixed.items()}
        return self._fixed_paths.get(route_path)

    def _with_full_allow(self, headers: Any, path: str, root_path: str) -> list[tuple[bytes, bytes]]:
        """Routing hands a 405 the methods of the first route whose path matched (`GET` for
        /api/monitors, though POST is there too); list every method some route answers there."""
        allowed = {
            method.strip()
            for name, value in headers
            if name.lower() == b"allow"
            for method in value.decode("latin-1").split(",")
        }
        for method in _METHODS:
            probe: Scope = {"type": "http", "method": method, "path": path, "root_path": root_path}
            # A Mount matches every method, whatever its app then answers; it speaks for itself above.
            if any(
                not isinstance(route, Mount) and route.matches(probe)[0] is Match.FULL
                for route in self.router.routes
            ):
                allowed.add(method)
        kept = [(name, value) for name, value in headers if name.lower() != b"allow"]
        return [*kept, (b"allow", _allow(allowed).encode("latin-1"))]


_ORDER = {method: index for index, method in enumerate(_METHODS)}


def _allow(methods: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(methods - {""}, key=lambda method: (_ORDER.get(method, len(_ORDER)), method)))


def route_path(path: str, root_path: str) -> str:
    """The path as routes match it: without the root path a proxy serves the app under."""
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/"):
        return path[len(root_path) :]
    return path


def _query_parameter_with_nul(query: bytes) -> str | None:
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "")[:100] or "query"
    return None


async def _send_error(
    send: Send, status: int, message: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"error": message})
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
