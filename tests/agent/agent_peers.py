"""Local peers for agent tests (a module of its own: conftest modules cannot be imported by name)."""

from __future__ import annotations

import asyncio

from aiohttp import web


class Target:
    """A local aiohttp server the checks probe; counts hits so tests can await them."""

    def __init__(self) -> None:
        self.hits = 0
        self.hit = asyncio.Event()
        self.url = ""

    async def wait_hits(self, count: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while self.hits < count:
                self.hit.clear()
                await self.hit.wait()


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
