"""What the security tests share: the app's route table as (method, path template) pairs, a
concrete path for each template, and an in-process client of an app built on changed settings."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PARAMETER = re.compile(r"\{([^}]+)\}")
# Values that satisfy each path parameter's own rule (so the request reaches what it guards).
_VALUES = {"exitCode": "0", "asset": "swagger-ui.css"}


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app answers, HEAD left out (GET's twin)."""
    found = {
        (method, route.path_format)
        for route in iter_route_contexts(app.router.routes)
        for method in route.methods or ()
        if method != "HEAD"
    }
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


def concrete(template: str, value: str = "x") -> str:
    """The template with every parameter filled in (`value` unless the parameter has a rule)."""
    return _PARAMETER.sub(lambda match: _VALUES.get(match[1], value), template)


def is_ingest(template: str) -> bool:
    return template.startswith(("/api/ai/ingest/", "/api/ai/otlp/"))


@asynccontextmanager
async def client_with(
    runtime: Runtime, *, address: str = "127.0.0.1", **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client, at client `address`, of an app whose settings differ from the
    runtime's by `changes` (same database, clock, rate limiter and caches, which the suite's
    fixtures reset between tests)."""
    changed = runtime.settings.model_copy(update=changes)
    app = create_app(changed, dataclasses.replace(runtime, settings=changed))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        yield client
