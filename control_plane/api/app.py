"""Builds the FastAPI application from a Runtime (settings, database, rate limiter)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.api.deps import Runtime, RuntimeDep
from control_plane.api.errors import install_error_handlers
from control_plane.api.middleware import ApiMiddleware
from control_plane.api.responses import JsonResponse
from control_plane.api.routes import api_keys, billing, dashboard, monitors, organization, team
from control_plane.settings import Settings
from control_plane.workers.jobs import build_runner


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    *,
    workers: bool = False,
    grpc_address: tuple[str, int] | None = None,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The API app. A runtime handed in is shared and left open; one built here is closed at shutdown.

    With `workers`, the background jobs run in this process for as long as the app does; with
    `grpc_address`, so does the agents' gRPC service (and the coordinator that assigns monitors).
    """
    owns_runtime = runtime is None
    runtime = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owns_runtime:
            await runtime.db.start()
        runner = build_runner(runtime.db, settings) if workers else None
        if runner is not None:
            await runner.start()
        agents = await AgentsEndpoint.start(runtime.db, settings, grpc_address) if grpc_address else None
        if owns_runtime:
            # Everything built at start lives as long as the process: keep it out of the garbage
            # collector's full passes, which otherwise walk it all and show up as latency spikes.
            gc.collect()
            gc.freeze()
        yield
        if before_shutdown is not None:
            await before_shutdown()  # e.g. `traxo dev` stops its agent while gRPC still takes its results
        if agents is not None:
            await agents.stop()
        if runner is not None:
            await runner.stop()
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
    for router in (
        organization.router,
        api_keys.router,
        team.router,
        billing.router,
        monitors.router,
        dashboard.router,
    ):
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
