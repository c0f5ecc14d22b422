"""What the observability tests share: an API app over the suite's database with other settings,
seen from a chosen client address, and reading an exposition back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.db import Database
from control_plane.observability.metrics import REGISTRY

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def app_with(runtime: Runtime, db: Database | None = None, **settings: Any) -> FastAPI:
    """The API app on the suite's database (or `db`) and clock, with `settings` changed (a runtime
    of its own: its rate limits are not the suite runtime's, which tests reset)."""
    changed = runtime.settings.model_copy(update=settings)
    return create_app(changed, Runtime.build(changed, db or runtime.db, clock=runtime.clock))


@asynccontextmanager
async def client_of(
    app: FastAPI, client: tuple[str, int] = ("127.0.0.1", 40000)
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `app` whose requests come from `client` (host, port)."""
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as http:
        yield http


def samples(exposition: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample of a text exposition (labels as written)."""
    found = {}
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match:
            found[match[1] + (match[2] or "")] = float(match[3])
    return found


def sample(name: str, **labels: str) -> float:
    """A sample of this process's registry now (0 when it has none yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
