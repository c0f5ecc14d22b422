"""`traxo worker --metrics-port`: the worker process's own /metrics (its jobs' rounds, alert sends,
the process's figures; the token rule of exposition.py), /healthz and /readyz. The database's
figures (monitors, agents, outbox) are the API's to serve: every replica reads the same ones."""

from __future__ import annotations

import orjson
from aiohttp import web

from control_plane.db import Database
from control_plane.observability import exposition
from control_plane.observability.readiness import unready_reason
from control_plane.settings import Settings


class WorkerMetricsServer:
    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the bound port, for port 0
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        refused = exposition.refusal(
            self._settings.metrics_token,
            request.headers.get("Authorization"),
            request.remote,
            forwarded=any(name in request.headers for name in exposition.FORWARDING_HEADERS),
        )
        if refused is not None:
            headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if refused.status == 401 else {}
            return _json(refused.status, {"error": refused.message}, headers)
        return web.Response(body=exposition.render(), headers={"Content-Type": exposition.CONTENT_TYPE})

    async def _health(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        reason = await unready_reason(self._db)
        if reason is None:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "unready", "error": reason})


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )
