"""Item 4: every HTML answer (status pages, the subscribers' pages, the API docs, their errors)
carries X-Content-Type-Options: nosniff, a Content-Security-Policy, a Referrer-Policy and frame
protection; every JSON answer carries nosniff. The route table is walked, so a page added later is
held to it too."""

from __future__ import annotations

import httpx

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from tests.conftest import World
from tests.security.support import client_with, concrete, routes
from tests.status_pages.support import create_page


def html_problems(response: httpx.Response) -> list[str]:
    headers = response.headers
    problems = []
    if headers.get("x-content-type-options") != "nosniff":
        problems.append("nosniff")
    if not headers.get("content-security-policy"):
        problems.append("Content-Security-Policy")
    if not headers.get("referrer-policy"):
        problems.append("Referrer-Policy")
    framing = headers.get("x-frame-options", "").upper() in ("DENY", "SAMEORIGIN")
    if not framing and "frame-ancestors" not in headers.get("content-security-policy", ""):
        problems.append("frame protection")
    return problems


async def _answers(client: httpx.AsyncClient, world: World, paths: list[str]) -> list[httpx.Response]:
    answers = []
    for path in paths:
        for headers in ({}, world.alice.headers, {"Accept-Encoding": "gzip"}):
            answers.append(await client.get(path, headers=headers))
    return answers


async def test_every_html_answer_has_the_security_headers(runtime: Runtime, world: World) -> None:
    table = routes(create_app(runtime.settings, runtime))
    async with client_with(runtime, rate_limit_multiplier=100) as client:
        await create_page(client, world.alice, slug="shown")
        await create_page(client, world.alice, slug="hidden", isPublic=False)
        paths = [concrete(template) for method, template in table if method == "GET"]
        paths += [concrete(template, "shown") for method, template in table if method == "GET"]
        paths += ["/status/hidden", "/status/shown/unsubscribe?token=nope", "/nowhere", "/api/docs/static/no"]
        answers = await _answers(client, world, paths)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        answers.append(
            await client.post("/status/shown/subscribe", content=b"email=not-an-address", headers=form)
        )
        answers.append(await client.post("/status/shown/unsubscribe?token=nope"))
    html = [a for a in answers if a.headers.get("content-type", "").startswith("text/html")]
    # Pages, their 404s and the form's 400: not one kind only.
    assert {a.status_code for a in html} >= {200, 400, 404}, {a.status_code for a in html}
    wrong = {(a.request.url.path, a.status_code): html_problems(a) for a in html if html_problems(a)}
    assert not wrong, wrong


async def test_every_json_answer_is_nosniff(runtime: Runtime, world: World) -> None:
    table = routes(create_app(runtime.settings, runtime))
    async with client_with(runtime, rate_limit_multiplier=100) as client:
        answers = await _answers(client, world, [concrete(t) for m, t in table if m == "GET"])
        for method, template in table:
            if method != "GET":  # writes' errors too (405, 400, 404, 413, the fast paths')
                answers.append(await client.request(method, concrete(template), headers=world.alice.headers))
    json_answers = [a for a in answers if a.headers.get("content-type", "").startswith("application/json")]
    assert len(json_answers) > 100
    wrong = sorted(
        {(a.request.method, a.request.url.path, a.status_code) for a in json_answers
         if a.headers.get("x-content-type-options") != "nosniff"}
    )  # fmt: skip
    assert not wrong, wrong


async def test_an_unhandled_error_s_500_is_nosniff_too(runtime: Runtime) -> None:
    """Answered by the error handler outside the routes: still through the edge's headers."""
    app = create_app(runtime.settings, runtime)

    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        response = await client.get("/api/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers
