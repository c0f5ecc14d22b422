"""The API docs pages (Swagger UI at /api/docs, ReDoc at /api/redoc) work with no internet: real
Chromium, a real `traxo api`, and every request that would leave loopback aborted."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Locator, Page, Request, Route, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from agent.checks.browser_pool import CHROMIUM_ENV, LAUNCH_ARGS
from tests.api_server import ApiServer, traxo_api
from tests.tools import require_program

DOCS_PAGES = ("/api/docs", "/api/docs/oauth2-redirect", "/api/redoc")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with traxo_api(tmp_path_factory.mktemp("api_docs")) as api_server:
        yield api_server


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return require_program("chromium", os.environ.get(CHROMIUM_ENV))


@pytest.fixture(scope="module")
def operations(server: ApiServer) -> list[dict[str, Any]]:
    """Every operation in the served OpenAPI document, each with its method and path."""
    document = httpx.get(f"{server.base_url}/api/openapi.json", timeout=10).json()
    return [
        {"method": method.upper(), "path": path, **operation}
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


# ReDoc's side menu always shows Redocly's logo from their CDN; the pages' Content-Security-Policy
# refuses it, so the browser never asks the network for it.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

RECORD_CSP_REFUSALS = """
window.cspRefusals = [];
document.addEventListener("securitypolicyviolation", (event) => window.cspRefusals.push(event.blockedURI));
"""


@dataclass
class OfflinePage:
    page: Page
    requested: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def csp_refusals(self) -> list[str]:
        refusals: list[str] = await self.page.evaluate("window.cspRefusals")
        return refusals

    async def wait_for(self, locator: Locator) -> None:
        """Wait for the page to render `locator`; if it never does, say what the page was refused."""
        try:
            await locator.first.wait_for(timeout=20_000)
        except PlaywrightTimeoutError as exc:
            raise AssertionError(
                f"{locator} never rendered; refused requests: {self.blocked}, page errors: {self.page_errors}"
            ) from exc


@asynccontextmanager
async def offline_page(chromium_path: str) -> AsyncIterator[OfflinePage]:
    """A Chromium page that can reach 127.0.0.1 and nothing else."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=list(LAUNCH_ARGS))
        try:
            context = await browser.new_context()
            page = await context.new_page()
            offline = OfflinePage(page)

            async def loopback_only(route: Route, request: Request) -> None:
                offline.requested.append(request.url)
                if urlsplit(request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    offline.blocked.append(request.url)
                    await route.abort("internetdisconnected")

            await context.route("**/*", loopback_only)
            await context.add_init_script(RECORD_CSP_REFUSALS)
            page.on("pageerror", lambda error: offline.page_errors.append(str(error)))
            yield offline
        finally:
            await browser.close()


async def test_swagger_ui_lists_the_operations_offline(
    server: ApiServer, chromium_path: str, operations: list[dict[str, Any]]
) -> None:
    async with offline_page(chromium_path) as offline:
        response = await offline.page.goto(f"{server.base_url}/api/docs")
        assert response is not None and response.status == 200
        blocks = offline.page.locator(".opblock")
        await offline.wait_for(blocks)

        assert await blocks.count() == len(operations)
        shown = {
            (
                (await block.locator(".opblock-summary-method").inner_text()).strip(),
                (await block.locator(".opblock-summary-path").get_attribute("data-path")),
            )
            for block in await blocks.all()
        }
        assert shown == {(operation["method"], operation["path"]) for operation in operations}
        assert await offline.page.title() == "Traxo API - Swagger UI"
        assert await offline.csp_refusals() == []

    assert offline.blocked == [], "the docs page wanted something from outside"
    assert offline.page_errors == []
    assert any(url.endswith("/api/docs/static/swagger-ui-bundle.js") for url in offline.requested)


async def test_redoc_lists_the_operations_offline(
    server: ApiServer, chromium_path: str, operations: list[dict[str, Any]]
) -> None:
    async with offline_page(chromium_path) as offline:
        response = await offline.page.goto(f"{server.base_url}/api/redoc")
        assert response is not None and response.status == 200
        sections = offline.page.locator("[data-section-id^='operation/']")
        await offline.wait_for(sections)

        assert await sections.count() == len(operations)
        text = await offline.page.locator("redoc").inner_text()
        assert all(operation["summary"] in text for operation in operations)
        assert await offline.page.title() == "Traxo API - ReDoc"
        assert set(await offline.csp_refusals()) <= {REDOC_LOGO}

    assert offline.blocked == [], "the ReDoc page wanted something from outside"
    assert offline.page_errors == []
    assert any(url.endswith("/api/docs/static/redoc.standalone.js") for url in offline.requested)


def test_the_pages_point_only_at_local_assets(server: ApiServer) -> None:
    for path in DOCS_PAGES:
        response = httpx.get(f"{server.base_url}{path}", timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert "http://" not in response.text and "https://" not in response.text, path
    swagger = httpx.get(f"{server.base_url}/api/docs", timeout=10).text
    assert "/api/docs/oauth2-redirect" in swagger


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "text/javascript"),
        ("favicon.png", "image/png"),
    ],
)
def test_the_assets_come_from_the_installed_package(server: ApiServer, asset: str, content_type: str) -> None:
    response = httpx.get(f"{server.base_url}/api/docs/static/{asset}", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in (content_type, "application/javascript")
    revalidated = httpx.get(
        f"{server.base_url}/api/docs/static/{asset}", headers={"If-None-Match": response.headers["etag"]}
    )
    assert revalidated.status_code == 304


@pytest.mark.parametrize("asset", ["missing.js", "..%2F__init__.py", "%2E%2E%2Fcore.py"])
def test_only_the_package_assets_are_served(server: ApiServer, asset: str) -> None:
    response = httpx.get(f"{server.base_url}/api/docs/static/{asset}", timeout=10)

    assert response.status_code == 404 and response.json() == {"error": "Not found"}


async def test_the_docs_are_not_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/api/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith(("/api/docs", "/api/redoc"))]


async def test_the_docs_need_no_key_and_spend_no_budget(api: httpx.AsyncClient) -> None:
    for _ in range(60):
        assert (await api.get("/api/organization")).status_code == 401
    assert (await api.get("/api/organization")).status_code == 429  # this client's budget is spent

    for path in [*DOCS_PAGES, "/api/docs/static/favicon.png", "/api/openapi.json"]:
        response = await api.get(path)
        assert response.status_code == 200, path
        assert "x-ratelimit-limit" not in response.headers
