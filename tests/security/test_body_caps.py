"""Item 2: a body over TRAXO_MAX_BODY_BYTES is a JSON 413 on every route that takes one (the route
table enumerated, the AI ingest's fast path and OTLP included), whether it says its length or streams
it. Heartbeat pings are the exception by design: their body is truncated, not refused. Header caps
(431) are held by tests/test_http_edges.py against the real HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from tests.conftest import World
from tests.security.support import BODY_METHODS, client_with, concrete, routes

LIMIT = 2048
TOO_LARGE = {"error": f"Request body too large (limit {LIMIT} bytes)"}
# Routes that read their body themselves (raw bytes), not through a FastAPI body parameter.
RAW_BODY_ROUTES = {
    ("POST", "/api/ai/ingest/{monitorId}"),
    ("POST", "/api/ai/otlp/{monitorId}/v1/traces"),
    ("POST", "/api/billing/webhook"),
    ("POST", "/status/{slug}/subscribe"),
}


def _body_routes(runtime: Runtime) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    app = create_app(runtime.settings, runtime)
    parsed = {
        (method, route.path_format)
        for route in iter_route_contexts(app.router.routes)
        if isinstance(route, APIRoute) and route.body_field is not None
        for method in route.methods
    }
    return [(m, t) for m, t in routes(app) if m in BODY_METHODS], parsed | RAW_BODY_ROUTES


async def _streamed(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 512 + 1):
        yield b" " * 512


async def test_every_body_over_the_cap_is_a_json_413(runtime: Runtime, world: World) -> None:
    body_routes, _ = _body_routes(runtime)
    assert len(body_routes) > 30  # the table, not a list kept by hand
    headers = {**world.alice.headers, "Content-Type": "application/json"}
    answers = {}
    async with client_with(runtime, max_body_bytes=LIMIT, rate_limit_multiplier=100) as client:
        for method, template in body_routes:
            response = await client.request(
                method, concrete(template), content=b"[" + b" " * LIMIT + b"]", headers=headers
            )
            answers[method, template] = (response.status_code, response.text)
    capped = {route: answer for route, answer in answers.items() if "/api/heartbeat/" not in route[1]}
    wrong = {route: answer for route, answer in capped.items() if answer[0] != 413}
    assert not wrong, wrong
    assert all(text == httpx.Response(413, json=TOO_LARGE).text for _, text in capped.values())
    # Heartbeats truncate (tests/test_heartbeats.py::test_a_body_over_every_limit_is_truncated_not_refused).
    assert all(answers[route][0] == 404 for route in answers if route not in capped)


async def test_a_streamed_body_over_the_cap_is_a_413_wherever_it_is_read(
    runtime: Runtime, world: World
) -> None:
    """No Content-Length: the cap is counted as the body arrives. A route that takes no body gives
    its own answer without reading it; every route that reads one stops at the cap."""
    body_routes, reading = _body_routes(runtime)
    headers = {**world.alice.headers, "Content-Type": "application/json"}
    answers = {}
    async with client_with(runtime, max_body_bytes=LIMIT, rate_limit_multiplier=100) as client:
        for method, template in body_routes:
            if "/api/heartbeat/" in template:
                continue
            response = await client.request(
                method, concrete(template), content=_streamed(4 * LIMIT), headers=headers
            )
            assert response.status_code < 500 or response.status_code == 501, (template, response.text)
            answers[method, template] = (response.status_code, response.text)
    # The routes that answer before reading: a resource that does not exist, billing not configured.
    early = {route: answer for route, answer in answers.items() if answer[0] != 413}
    assert all(answer[0] in (404, 501) for answer in early.values()), early
    must_read = {route for route in reading if route in answers} - {
        ("POST", "/status/{slug}/subscribe"),  # the page is looked up first (slug x: 404)
        ("POST", "/api/billing/webhook"),  # not configured here: 501 before the body
    }
    assert not must_read & early.keys(), sorted(must_read & early.keys())
    too_large = httpx.Response(413, json=TOO_LARGE).text
    assert all(answer[1] == too_large for answer in answers.values() if answer[0] == 413)
