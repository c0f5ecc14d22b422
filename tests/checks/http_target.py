"""The local HTTP(S) server that HTTP checks probe, here and in the agent's tests (a module of its own:
conftest modules cannot be imported by name)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from tests.waiting import eventually


class Target:
    """A local aiohttp server the checks probe; counts hits so tests can await them."""

    def __init__(self) -> None:
        self.hits = 0
        self.hit = asyncio.Event()
        self.url = ""

    async def wait_hits(self, count: int, timeout_s: float = 10.0) -> None:
        await eventually(lambda: self.hits >= count, timeout_s, f"{count} hits on the target", wake=self.hit)


@contextlib.asynccontextmanager
async def serve_target(tls: ssl.SSLContext | None = None) -> AsyncIterator[Target]:
    """Serves a Target on 127.0.0.1, port 0; with TLS its URL names localhost, as its certificate does."""
    target = Target()
    runner = web.AppRunner(target_app(target), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.url = f"https://localhost:{port}" if tls is not None else f"http://127.0.0.1:{port}"
    try:
        yield target
    finally:
        await runner.cleanup()


def target_app(target: Target) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        target.hits += 1
        target.hit.set()
        return web.Response(text="all systems operational", headers={"X-Service": "traxo-test"})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")

    async def slow(request: web.Request) -> web.StreamResponse:
        # ?headers=s delays the response head (ttfb), ?body=s delays between two body chunks (download).
        await asyncio.sleep(float(request.query.get("headers", "0")))
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first half ")
        await asyncio.sleep(float(request.query.get("body", "0")))
        await response.write(b"second half")
        await response.write_eof()
        return response

    async def json_body(request: web.Request) -> web.Response:
        return web.json_response({"data": {"status": "ok", "count": 42, "up": True, "tags": ["a", "b"]}})

    async def redirect(request: web.Request) -> web.Response:
        hops = int(request.match_info["hops"])
        raise web.HTTPFound("/ok" if hops <= 1 else f"/redirect/{hops - 1}")

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {"method": request.method, "body": body, "header": request.headers.get("X-Probe", "")}
        )

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/json", json_body)
    app.router.add_get("/redirect/{hops}", redirect)
    app.router.add_route("*", "/echo", echo)
    return app
