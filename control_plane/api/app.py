"""Builds the FastAPI application from a Runtime (settings, database, rate limiter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from control_plane.api.deps import Runtime, RuntimeDep
from control_plane.api.errors import install_error_handlers
from control_plane.api.middleware import ApiMiddleware
from control_plane.api.responses import JsonResponse
from control_plane.api.routes import api_keys, billing, organization, team
from control_plane.settings import Settings


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The API app. A runtime handed in is shared and left open; one built here is closed at shutdown."""
    owns_runtime = runtime is None
    runtime = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owns_runtime:
            await runtime.db.start()
        yield
        if owns_runtime:
            await runtime.db.dispose()

    app = FastAPI(
        title="Traxo API",
        default_response_class=JsonResponse,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    for router in (organization.router, api_keys.router, team.router, billing.router):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(rt: RuntimeDep) -> dict[str, Any]:
        async with rt.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ready"}

    return app
