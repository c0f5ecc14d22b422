"""Roles across the whole API: a VIEWER reads, and every write anywhere is a 403."""

from __future__ import annotations

import re

from control_plane.api.app import create_app

WRITE_METHODS = {"post", "put", "patch", "delete"}
# Endpoints that take no API key (public by the reference, or authenticated otherwise).
PUBLIC_PATHS: set[str] = {"/api/billing/webhook"}
# A heartbeat's token, an LLM monitor's id.
PUBLIC_PREFIXES = ("/api/heartbeat/", "/api/ai/otlp/", "/api/ai/ingest/")
# A status page's public view: no key for a public page (a private one answers 404 without one).
PUBLIC_OPERATIONS: set[tuple[str, str]] = {("GET", "/api/status-pages/{slug}")}


def api_operations(settings, runtime) -> list[tuple[str, str]]:
    """Every (method, path) the API serves, path parameters filled with an id that does not exist."""
    schema = create_app(settings, runtime).openapi()
    operations = []
    for path, methods in schema["paths"].items():
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or not path.startswith("/api/"):
            continue
        for method in methods:
            if (method.upper(), path) in PUBLIC_OPERATIONS:
                continue
            operations.append((method.upper(), re.sub(r"\{[^}]+\}", "xyz_doesnotexist", path)))
    return operations


async def test_a_viewer_gets_403_on_every_write(api, world, settings, runtime):
    writes = [(m, p) for m, p in api_operations(settings, runtime) if m.lower() in WRITE_METHODS]
    assert len(writes) >= 6  # the check must see the API, not an empty list
    for method, path in writes:
        response = await api.request(method, path, json={}, headers=world.vera.headers)
        assert response.status_code == 403, f"{method} {path} answered {response.status_code}"
        assert "VIEWER" in response.json()["error"]


async def test_every_key_endpoint_rejects_a_missing_key(api, world, settings, runtime):
    operations = api_operations(settings, runtime)
    assert len(operations) >= 9
    for method, path in operations:
        await runtime.rate_limiter.reset()  # more operations than the address's failed-key budget
        response = await api.request(method, path, json={})
        assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
