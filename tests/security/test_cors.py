"""Item 3: CORS on the AI ingest's paths only. A preflight and a simple request with an Origin to
every other route of the table get no Access-Control-Allow-* header; the ingest routes get them,
errors included."""

from __future__ import annotations

import httpx

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from tests.conftest import World
from tests.security.support import concrete, is_ingest, routes

ORIGIN = {"Origin": "https://evil.example"}


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


async def test_no_route_but_the_ingest_answers_cors(
    api: httpx.AsyncClient, runtime: Runtime, world: World
) -> None:
    table = routes(create_app(runtime.settings, runtime))
    others = [(method, template) for method, template in table if not is_ingest(template)]
    assert len(others) > 80
    leaks = {}
    for method, template in others:
        path = concrete(template)
        preflight = await api.options(
            path,
            headers={
                **ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization",
            },
        )
        simple = await api.request(method, path, headers={**ORIGIN, **world.alice.headers})
        for kind, response in (("preflight", preflight), ("simple", simple)):
            if _cors_headers(response):
                leaks[method, template, kind] = _cors_headers(response)
    assert not leaks, leaks


async def test_the_ingest_routes_answer_cors_errors_included(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    ingest = [(m, t) for m, t in routes(create_app(runtime.settings, runtime)) if is_ingest(t)]
    assert {t for _, t in ingest} == {"/api/ai/ingest/{monitorId}", "/api/ai/otlp/{monitorId}/v1/traces"}
    for method, template in ingest:
        path = concrete(template, "mon_unknown")
        preflight = await api.options(
            path,
            headers={
                **ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert _cors_headers(preflight)["access-control-allow-origin"] == "*"
        assert "POST" in _cors_headers(preflight)["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in preflight.headers  # any origin, never cookies
        refused = await api.post(path, headers={**ORIGIN, "Content-Type": "application/json"}, content=b"{}")
        assert refused.status_code in (400, 404), refused.text
        assert refused.headers["access-control-allow-origin"] == "*"
