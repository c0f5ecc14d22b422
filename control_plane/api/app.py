"""Builds the FastAPI application from a Runtime (settings, database, rate limiter)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.api.cors import IngestCorsMiddleware
from control_plane.api.deps import Runtime, RuntimeDep
from control_plane.api.errors import ApiError, install_error_handlers
from control_plane.api.ingest_fast_path import IngestFastPath
from control_plane.api.middleware import ApiMiddleware, RequestEdge
from control_plane.api.openapi import build_openapi
from control_plane.api.public_answers import PublicPageAnswers
from control_plane.api.responses import JsonResponse
from control_plane.api.routes import (
    ai_ingest,
    ai_insights,
    ai_otlp,
    ai_usage,
    alert_channels,
    api_keys,
    badges,
    billing,
    cost_alerts,
    dashboard,
    heartbeat,
    incidents,
    maintenance,
    metrics,
    monitors,
    organization,
    page_incidents,
    status_page_html,
    status_pages,
    subscribers,
    team,
)
from control_plane.core.memory import freeze_startup_objects
from control_plane.core.shutdown import Shutdown
from control_plane.settings import Settings
from control_plane.workers.jobs import build_runner
from control_plane.workers.runner import WorkerRunner

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
REDOC_URL = "/api/redoc"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"
DOCS_ASSETS_URL = f"{DOCS_URL}/static"
# The docs pages may load only what this server serves: ReDoc's side menu shows a logo from
# cdn.redoc.ly whatever its options say, and an offline server's docs should not phone out.
# Inline: both pages start from an inline script, and ReDoc styles itself inline; blob: is ReDoc's
# search worker.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)

API_DESCRIPTION = (
    "Traxo's REST API: uptime and synthetic monitors, their checks, incidents and performance, the "
    "organization, its team, API keys and billing. Authenticate with an API key as a bearer token "
    '(`Authorization: Bearer traxo_...`). Every error answers `{"error": "..."}` naming the field '
    "or resource and what was wrong with it."
)


class TraxoApi(FastAPI):
    """FastAPI with the completed OpenAPI document (openapi.py), built once, and layers of its own
    outside Starlette's and FastAPI's (`edge`).

    Starlette puts its error layer (ServerErrorMiddleware) outermost and FastAPI adds two of its
    own beside it (exception telemetry, the body limit), so every request passes them before the
    first user middleware. `edge` wraps the whole stack instead: the request id and HTTP metrics
    (RequestEdge) and the public pages' replayed answers, which then cost neither those layers nor
    the ingest's CORS and fast path (a replayed page is the most frequent request under load).
    What they wrap still has Starlette's error layer: an unhandled error's 500 passes RequestEdge
    on its way out, and is counted and marked with its request id there.
    """

    edge: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.edge is None else self.edge(stack)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = build_openapi(self)
        return self.openapi_schema


def _operation_id(route: APIRoute) -> str:
    # The handler's name (list_monitors, invite_member): what a generated client calls the method.
    return route.name


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    *,
    workers: bool = False,
    grpc_address: tuple[str, int] | None = None,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
    shutdown: Shutdown | None = None,
) -> FastAPI:
    """The API app. A runtime handed in is shared and left open; one built here is closed at shutdown.

    With `workers`, the background jobs run in this process for as long as the app does; with
    `grpc_address`, so does the agents' gRPC service (and the coordinator that assigns monitors).
    `shutdown` is the process's (serving.py begins it on SIGTERM): its first steps run beside the
    HTTP server's draining, the rest once the last request is answered.
    """
    owns_runtime = runtime is None
    runtime = runtime or Runtime.build(settings)
    shutdown = shutdown or Shutdown(settings.shutdown_deadline_seconds, settings.shutdown_delay_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owns_runtime:
            await runtime.db.start()
        runner = build_runner(runtime.db, settings, runtime.clock) if workers else None
        if runner is not None:
            await runner.start()
        agents = await AgentsEndpoint.start(runtime.db, settings, grpc_address) if grpc_address else None
        if owns_runtime:
            freeze_startup_objects()
        _add_drain_steps(shutdown, agents, runner, before_shutdown)
        yield
        await shutdown.first_steps_done()
        answers: PublicPageAnswers | None = getattr(app.state, "public_answers", None)
        if answers is not None:  # refreshes of public pages' answers still running, for nobody now
            await answers.close()
        if owns_runtime:
            # After the last request: what is queued is written before the database goes.
            await shutdown.step("the AI ingest's queue", runtime.ai_ingest.close)
            await runtime.db.dispose()

    app = TraxoApi(
        title="Traxo API",
        version="1",
        description=API_DESCRIPTION,
        generate_unique_id_function=_operation_id,
        default_response_class=JsonResponse,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry off: Traxo's metrics are /metrics, and its check for a global
        # provider on every request cost ~5% of a replayed status page's CPU (py-spy).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by _add_docs, from local assets
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.runtime = runtime
    app.state.shutdown = shutdown
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.max_body_bytes, router=app.router)
    # Before the rest: the ingest's POSTs are answered there, without FastAPI's layers.
    app.add_middleware(IngestFastPath, runtime=runtime, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(IngestCorsMiddleware)  # a preflight never reaches routing's 405

    def edge(stack: ASGIApp) -> ASGIApp:
        # Outermost: every answer has its request id and counts in the HTTP metrics, the replayed
        # pages' and the fast paths' too.
        answers = PublicPageAnswers(stack, runtime=runtime)
        app.state.public_answers = answers
        return RequestEdge(answers, router=app.router, access_log=settings.access_log)

    app.edge = edge
    install_error_handlers(app)
    _add_docs(app)
    # The ingest paths first: routing tries routes in order, and the public high-volume POSTs should
    # not pay for matching every other route first (a third of a no-op request's cost, measured).
    for router in (
        ai_ingest.router,
        ai_otlp.router,
        organization.router,
        api_keys.router,
        team.router,
        billing.router,
        monitors.router,
        dashboard.router,
        incidents.router,
        maintenance.router,
        alert_channels.router,
        heartbeat.router,
        ai_usage.router,
        ai_insights.router,
        cost_alerts.router,
        status_pages.router,
        page_incidents.router,
        status_page_html.router,
        badges.router,
        subscribers.router,
        metrics.router,
    ):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(rt: RuntimeDep) -> Any:
        if shutdown.draining:  # load balancers stop sending while the last requests finish
            raise ApiError(503, "Draining: this process is shutting down")
        return await metrics.readiness(rt)  # the database answers, its schema at Alembic's head

    return app


def _add_drain_steps(
    shutdown: Shutdown,
    agents: AgentsEndpoint | None,
    runner: WorkerRunner | None,
    before_shutdown: Callable[[], Awaitable[None]] | None,
) -> None:
    """What a shutdown starts at once, in order, while the HTTP server drains beside it."""
    if agents is not None:
        shutdown.on_begin("gRPC health NOT_SERVING", agents.not_serving)
    if before_shutdown is not None:
        # e.g. `traxo dev` stops its agent while gRPC still takes its results
        shutdown.on_begin("before_shutdown", before_shutdown)
    if agents is not None:

        async def end_agent_streams() -> None:
            # Health says NOT_SERVING through the delay, as /readyz says 503; then the streams end,
            # and agents reconnect elsewhere and replay what was not acknowledged.
            await shutdown.after_delay()
            await agents.stop(grace=1)

        shutdown.on_begin("agents' streams", end_agent_streams)
    if runner is not None:

        async def stop_workers() -> None:
            # The runner cancels a run at its grace's end itself: the shutdown is cut all the same.
            cut = await runner.stop(grace=max(0.0, shutdown.remaining() - 0.5))
            if cut:
                shutdown.cut.append(f"workers' runs ({', '.join(cut)})")

        shutdown.on_begin("workers' current runs", stop_workers)


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /api/docs and ReDoc at /api/redoc, their scripts and styles from the installed
    fastapi-offline package: FastAPI's default pages load them from a CDN, and are blank offline."""
    # A route rather than a Mount: a Mount matches every method, so a 405 under it could not say
    # which methods the path answers. StaticFiles still does the file work (ETag, 304, no `..`).
    assets = StaticFiles(directory=str(files("fastapi_offline") / "static"))

    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def local_only(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    @app.get(f"{DOCS_ASSETS_URL}/{{asset}}", include_in_schema=False)
    async def docs_asset(asset: str, request: Request) -> Response:
        return await assets.get_response(asset, request.scope)

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
        )
        return local_only(page)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return local_only(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_redoc_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return local_only(page)
