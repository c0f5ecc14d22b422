"""A site for BROWSER tests, served by aiohttp on loopback: a form, a click flow, slow and broken pages."""

from __future__ import annotations

import asyncio

from aiohttp import web

PAGES = {
    "/": """<!doctype html><title>Traxo test home</title>
<h1>Hello from the test site</h1><p>Some text so the page has a largest contentful paint.</p>
<a id="to-form" href="/form">the form</a>""",
    "/form": """<!doctype html><title>Sign up</title>
<form action="/welcome" method="get">
  <input id="name" name="name"> <select id="plan" name="plan">
    <option value="free">Free</option><option value="pro">Pro</option></select>
  <input id="code" name="code"> <button id="submit" type="submit">Go</button>
</form>""",
    "/flow": """<!doctype html><title>Flow</title>
<button id="reveal" onclick="document.querySelector('#secret').hidden = false">Reveal</button>
<p id="secret" hidden>The secret is out</p>""",
    "/slow-element": """<!doctype html><title>Slow</title>
<script>setTimeout(() => { const p = document.createElement('p'); p.id = 'late';
  p.textContent = 'Arrived late'; document.body.append(p); }, 300);</script>""",
    "/broken": """<!doctype html><title>Broken</title>
<img src="/missing.png" alt="missing"><p>Broken page</p>
<script>console.error("boom from the page");
  setTimeout(() => { throw new Error("unhandled oops"); });</script>""",
}


class LocalSite:
    """The aiohttp app; counts in-flight /slow requests so tests can see how many checks overlap."""

    # A /slow request is held until this many are in flight (or SLOW_WAIT_S passed), then 0.3 s
    # more: checks a cap lets run together then overlap however slowly a loaded machine starts
    # their pages, and one more the cap should hold back has time to show up.
    SLOW_TOGETHER = 2
    SLOW_WAIT_S = 10.0

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self._arrived = asyncio.Condition()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/welcome", self._welcome)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/{path:.*}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _page(self, request: web.Request) -> web.Response:
        html = PAGES.get(request.path)
        if html is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=html, content_type="text/html")

    async def _welcome(self, request: web.Request) -> web.Response:
        name, plan = request.query.get("name", ""), request.query.get("plan", "")
        html = f"<!doctype html><title>Welcome</title><h1>Welcome, {name}</h1><p>Plan: {plan}</p>"
        return web.Response(text=html, content_type="text/html")

    async def _slow(self, request: web.Request) -> web.Response:
        async with self._arrived:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._arrived.notify_all()
        try:
            # A slow server is the thing under test here: it keeps requests open so overlaps show.
            async with self._arrived:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: self.in_flight >= self.SLOW_TOGETHER), self.SLOW_WAIT_S
                )
            await asyncio.sleep(0.3)
        finally:
            self.in_flight -= 1
        return web.Response(text="<!doctype html><title>Slow</title><p>done</p>", content_type="text/html")

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")
