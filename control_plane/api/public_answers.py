"""Public status pages' answers (GET /api/status-pages/{slug} and GET /status/{slug}) kept for
`status_page_cache_seconds` and served straight from ASGI, before FastAPI's middleware stack,
routing and dependency solving.

A status page is read by many anonymous visitors at once, most of all during an incident: through
FastAPI's layers each read cost ~3 ms of the process's CPU even with the page's view cached
(status_pages.public.PageViewCache), so 64 visitors at once queued for 200 ms (bench/status_page.py).
The rule: the route marks the answers every anonymous visitor gets alike (a public page's 200,
the SHARED header, stripped here), and this process replays such an answer, byte for byte with
the headers it had, to the next anonymous requests of the same path and Accept-Encoding while it
is younger than `seconds` by the runtime's clock. An incident, a maintenance window or a page's
edit is therefore seen within `seconds` or so on each process (the answers' Cache-Control lets
browsers keep them 30 s anyway). Once an answer is older, the next request is still given it, and
starts a refresh of it in the background: the route answers a copy of that request, and its
answer is kept for the following ones. No visitor waits for a page's view to be computed (under
load that took seconds: bench/status_page.py's slowest answers), but the first one ever and those
that find the kept answer twice `seconds` old (its refresh failed or is still running): they go
to the route themselves. A request with credentials (Authorization, a cookie), a query string or
a validator (If-None-Match: the route answers 304s) always goes to the route, as does every other
method and path.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.api.deps import Runtime
from control_plane.api.middleware import route_path
from control_plane.db import brief_error
from control_plane.observability.http import ROUTE_TEMPLATE_KEY

SHARED = "X-Traxo-Shared-Answer"
_SHARED = SHARED.lower().encode("latin-1")
PUBLIC_PATH = re.compile(r"/(?:api/status-pages|status)/[^/\x00]+")
_BYPASS = (b"authorization", b"cookie", b"if-none-match")
_RATE = b"x-ratelimit-"
_SIZE = 512

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Answer:
    at: datetime
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    route: str | None  # the template of the route that answered it (for metrics on replay)


class PublicPageAnswers:
    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self._answers: OrderedDict[tuple[str, str, bytes], _Answer] = OrderedDict()
        # The refresh running behind each kept answer's visitors, by the answer's key.
        self._refreshing: dict[tuple[str, str, bytes], asyncio.Task[None]] = {}

    async def refreshed(self) -> None:
        """Once the refreshes running now are done (for tests, and for a shutdown)."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in self._refreshing.values():
            task.cancel()
        await self.refreshed()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seconds = self.runtime.settings.status_page_cache_seconds
        if (
            seconds <= 0
            or scope["type"] != "http"
            or scope["method"] != "GET"
            or scope.get("query_string")
            or PUBLIC_PATH.fullmatch(route_path(scope["path"], scope.get("root_path", ""))) is None
        ):
            await self.app(scope, receive, _without_marker(send))
            return
        encodings = b""
        for name, value in scope["headers"]:
            if name in _BYPASS:
                await self.app(scope, receive, _without_marker(send))
                return
            if name == b"accept-encoding":
                encodings = value
        # Per Accept-Encoding as sent: the route picks the answer's encoding from it (Vary).
        key = (scope.get("root_path", ""), scope["path"], encodings)
        now = self.runtime.clock()
        kept = self._answers.get(key)
        if kept is not None:
            age = (now - kept.at).total_seconds()
            if 0 <= age < 2 * seconds:
                if age >= seconds and key not in self._refreshing:
                    self._refresh_behind(scope, key, now)
                scope[ROUTE_TEMPLATE_KEY] = kept.route
                await send({"type": "http.response.start", "status": kept.status, "headers": kept.headers})
                await send({"type": "http.response.body", "body": kept.body})
                return
        await self._refresh(scope, receive, send, key, now)

    def _refresh_behind(self, scope: Scope, key: tuple[str, str, bytes], now: datetime) -> None:
        """The route answers a copy of this request in a task of its own, for the kept answer only."""
        request = {**scope, "state": dict(scope.get("state") or {})}
        asked = False
        sent = asyncio.Event()

        async def receive() -> Message:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await sent.wait()  # the copy's client "leaves" once its answer is whole
            return {"type": "http.disconnect"}

        async def nowhere(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                sent.set()

        async def refresh() -> None:
            try:
                await self._refresh(request, receive, nowhere, key, now)
            except Exception as exc:  # Starlette answered its 500 already; this is the task's end
                log.warning("refreshing a public page's answer failed: %s", brief_error(exc))

        task = asyncio.create_task(refresh(), name=f"traxo-refresh {scope['path']}")
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def _refresh(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: tuple[str, str, bytes],
        now: datetime,
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        shared = False

        async def capture(message: Message) -> None:
            nonlocal start, shared
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                shared = any(name.lower() == _SHARED for name, _ in headers)
                message["headers"] = [(name, value) for name, value in headers if name.lower() != _SHARED]
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if start is None or (start["status"] == 200 and not shared) or start["status"] == 404:
            self._answers.pop(key, None)  # a page gone private or deleted: none kept of it either
            return
        if start["status"] != 200:
            # This visitor's own failure (over its address's budget, a database outage): the page is
            # what it was, and the kept answer still serves the others while it is young enough.
            return
        current = self._answers.get(key)
        if current is not None and current.at > now:
            return  # a refresh started later (a visitor who found this one's answer too old) ended first
        route = getattr(scope.get("route"), "path_format", None)
        # Not the refreshing visitor's rate-limit headers: they are its address's budget, not the page's.
        headers = [(name, value) for name, value in start["headers"] if not name.lower().startswith(_RATE)]
        self._answers[key] = _Answer(now, 200, headers, b"".join(chunks), route)
        self._answers.move_to_end(key)
        while len(self._answers) > _SIZE:
            self._answers.popitem(last=False)


def _without_marker(send: Send) -> Send:
    async def stripped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            if any(name.lower() == _SHARED for name, _ in headers):
                message["headers"] = [(name, value) for name, value in headers if name.lower() != _SHARED]
        await send(message)

    return stripped
