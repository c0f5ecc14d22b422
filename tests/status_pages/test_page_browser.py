"""The public status page in Debian's Chromium (Playwright), served by a real `traxo api` on SQLite:
what a visitor sees (components, groups, bars, an incident's timeline, branding, the dark scheme),
and a page owner's CSS and post-mortem that try to run a script proven inert."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import select

from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import CheckRollup
from control_plane.models.status_pages import PageSubscriber, StatusPageComponent
from control_plane.services import accounts, organizations
from control_plane.settings import Plan
from tests.api_server import ApiServer, sqlite_url, traxo_api
from tests.factories import insert_monitor
from tests.incident_factories import insert_incident
from tests.status_pages.page_views import Component, declare_incident, insert_page
from tests.tools import require_program

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BREAKOUT_CSS = (
    ".page { border-top: 7px solid rgb(1, 2, 3) }\n"
    "</style><script>window.pwned=1</script><style>body { display: none }</STYLE >"
    "<img src=x onerror='window.pwned=2'>"
)
HOSTILE_POSTMORTEM = (
    "## Root cause\n\nA bad deploy.\n\n<script>window.pwned=3</script>\n\n"
    "<img src=x onerror='window.pwned=4'>\n\n[details](javascript:window.pwned=5)"
)


@dataclass(frozen=True)
class Site:
    server: ApiServer
    output: Path

    def url(self, slug: str) -> str:
        return f"{self.server.base_url}/status/{slug}"


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", shutil.which("chromium"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with traxo_api(tmp_path_factory.mktemp("status_page_browser"), migrate=True) as server:
        yield server


@pytest.fixture(scope="module")
async def site(served: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    """Two pages in the server's database: acme (FREE) of four components in two groups, with
    history and an incident under way; globex (BUSINESS) with branding hidden, hostile custom CSS
    and a post-mortem with scripts in it."""
    db = Database(sqlite_url(served.log_path.parent))
    await db.start()
    try:
        now = utcnow()
        acme = await _organization(db, "acme", Plan.FREE)
        globex = await _organization(db, "globex", Plan.BUSINESS)
        monitors = {
            name: await insert_monitor(db, acme, name=name) for name in ("web", "cdn", "api", "workers")
        }
        await _history(db, monitors["api"].id)
        # An hour at noon three days ago, whatever the time now: one starting at now - 3 days ran
        # into the next day between 23:00 and midnight UTC, and that day showed an incident too.
        noon = now.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
        await insert_incident(db, acme, monitors["api"].id, noon, noon + timedelta(hours=1))
        components = [
            Component(monitors["web"].id, "Website", "Frontend"),
            Component(monitors["cdn"].id, "CDN", "Frontend"),
            Component(monitors["api"].id, "Public API", "Backend"),
            Component(monitors["workers"].id, "Workers", "Backend"),
        ]
        acme_page = await insert_page(db, acme, "acme", components, now, name="Acme Status")
        await declare_incident(
            db,
            acme_page,
            "Elevated API errors",
            [
                ("investigating", "We are looking into errors on the API.", now - timedelta(minutes=40)),
                ("identified", "A bad deploy; rolling back.", now - timedelta(minutes=10)),
            ],
        )
        shop = await insert_monitor(db, globex, name="shop")
        globex_page = await insert_page(
            db,
            globex,
            "globex",
            [Component(shop.id, "Shop")],
            now,
            name="Globex",
            hide_branding=True,
            custom_css=BREAKOUT_CSS,
        )
        await declare_incident(
            db,
            globex_page,
            "Checkout outage",
            [
                ("investigating", "Checkout fails.", now - timedelta(days=1, hours=2)),
                ("resolved", "Fixed.", now - timedelta(days=1)),
            ],
            resolved_at=now - timedelta(days=1),
            postmortem=HOSTILE_POSTMORTEM,
        )
    finally:
        await db.dispose()
    yield Site(served, tmp_path_factory.mktemp("status_page_screenshots"))


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh page with JavaScript on (so a script that got in would run), and what its console said."""
    context = await browser.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    yield page, console
    await context.close()


async def test_it_shows_components_groups_bars_and_an_incident_timeline(
    site: Site, tab: tuple[Page, list[str]]
) -> None:
    page, console = tab
    response = await page.goto(site.url("acme"))

    assert response is not None and response.status == 200, site.server.log()[-3000:]
    assert await page.title() == "Acme Status"
    assert await page.locator("h1").inner_text() == "Acme Status"
    assert await page.locator(".banner h2").inner_text() == "Major outage"
    assert await page.locator(".group-name").all_inner_texts() == ["Frontend", "Backend"]
    assert await page.locator(".component-name").all_inner_texts() == [
        "Website",
        "CDN",
        "Public API",
        "Workers",
    ]
    for index in range(4):
        assert await page.locator(".component").nth(index).locator(".bar").count() == 90
    api = page.locator(".component").nth(2)
    assert await api.locator(".component-status").inner_text() == "Major outage"
    titles = await api.locator(".bar").evaluate_all("bars => bars.map(bar => bar.title)")
    assert titles[-3].endswith(": 95.00% uptime, 100 checks · 0 incidents")
    assert titles[-4].endswith(": 100% uptime, 100 checks · 1 incident: Public API is down")
    assert titles[-1].endswith("· 1 incident: Elevated API errors")  # declared, open today
    summary = await api.locator(".visually-hidden").inner_text()
    assert "over 90 days; 2 days with incidents. " in summary, summary
    assert "Public API is down" in summary and "Elevated API errors" in summary, summary
    incident = page.locator("#active-incidents ~ .incident")
    assert await incident.locator("h3").inner_text() == "Elevated API errors"
    assert await incident.locator(".timeline li p").all_inner_texts() == [
        "A bad deploy; rolling back.",
        "We are looking into errors on the API.",
    ]
    assert await incident.locator(".timeline-status").all_inner_texts() == ["Identified", "Investigating"]
    assert await page.locator("footer .powered-by").inner_text() == "Powered by Traxo"
    rss = await page.get_by_role("link", name="RSS").get_attribute("href")
    assert rss == "/status/acme/feed.rss"
    feed = await page.request.get(f"{site.server.base_url}{rss}")
    assert feed.status == 200 and "Elevated API errors" in await feed.text()
    assert await page.locator(".history-day").count() == 14
    await page.screenshot(path=str(site.output / "acme-light.png"), full_page=True)
    assert (site.output / "acme-light.png").stat().st_size > 10_000
    assert not [text for text in console if "Content Security Policy" in text], console


async def test_a_visitor_subscribes_from_the_page_without_javascript(
    site: Site, browser: Browser, served: ApiServer
) -> None:
    # The page's own form, JavaScript off: an address and one component, posted as a form.
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(site.url("acme"))
        await page.get_by_label("Email address").fill("visitor@example.com")
        await page.locator(".subscribe summary").click()
        await page.get_by_label("Public API").check()
        async with page.expect_navigation():
            await page.get_by_role("button", name="Subscribe").click()
        assert await page.locator("h1").inner_text() == "Check your inbox"
    finally:
        await context.close()
    db = Database(sqlite_url(served.log_path.parent))
    await db.start()
    try:
        async with db.session() as session:
            rows = list(await session.execute(select(PageSubscriber.email, PageSubscriber.component_ids)))
            public_api = await session.scalar(
                select(StatusPageComponent.id).where(StatusPageComponent.display_name == "Public API")
            )
    finally:
        await db.dispose()
    assert rows == [("visitor@example.com", [public_api])]  # confirmation pending


async def test_it_follows_the_dark_scheme(site: Site, tab: tuple[Page, list[str]]) -> None:
    page, _ = tab
    await page.goto(site.url("acme"))
    background = "getComputedStyle(document.body).backgroundColor"
    light = await page.evaluate(background)

    await page.emulate_media(color_scheme="dark")
    dark = await page.evaluate(background)
    assert (light, dark) == ("rgb(255, 255, 255)", "rgb(13, 17, 23)")
    text = await page.evaluate("getComputedStyle(document.querySelector('h1')).color")
    assert text == "rgb(230, 237, 243)"
    # Statuses as text take lighter shades in the dark (the banner's would be 3.7:1 on it).
    status = await page.evaluate("getComputedStyle(document.querySelector('.component-status')).color")
    assert status == "rgb(248, 81, 73)"
    await page.screenshot(path=str(site.output / "acme-dark.png"), full_page=True)


async def test_it_hides_branding_on_a_business_page(site: Site, tab: tuple[Page, list[str]]) -> None:
    page, _ = tab
    await page.goto(site.url("globex"))

    assert await page.title() == "Globex status"
    assert await page.locator(".component-name").all_inner_texts() == ["Shop"]
    assert await page.locator("footer .powered-by").count() == 0
    assert await page.get_by_text("Powered by Traxo").count() == 0


async def test_custom_css_and_a_postmortem_cannot_run_a_script(
    site: Site, tab: tuple[Page, list[str]]
) -> None:
    page, console = tab
    await page.goto(site.url("globex"))

    assert await page.evaluate("typeof window.pwned") == "undefined"
    assert await page.locator("script").count() == 0
    assert await page.locator("style").count() == 2
    # Nothing got out of the style element: no image from it, and body stays displayed.
    assert await page.locator("img").count() == 0
    assert await page.evaluate("getComputedStyle(document.body).display") == "block"
    # The owner's CSS itself applies: its element is allowed by its hash.
    assert (
        await page.evaluate("getComputedStyle(document.querySelector('.page')).borderTopColor")
        == "rgb(1, 2, 3)"
    )
    postmortem = page.locator(".postmortem")
    assert await postmortem.locator("h6").inner_text() == "Root cause"
    assert "window.pwned=3" in await postmortem.inner_text()  # as text, not as a script
    hrefs = await postmortem.locator("a").evaluate_all("links => links.map(link => link.href)")
    assert all("javascript" not in href for href in hrefs), hrefs
    assert not [text for text in console if "Content Security Policy" in text], console
    await page.screenshot(path=str(site.output / "globex.png"), full_page=True)


async def _organization(db: Database, slug: str, plan: Plan) -> str:
    async with db.session() as session:
        user, _ = await accounts.create_user(session, email=f"owner@{slug}.example", name=slug, now=utcnow())
    async with db.session() as session:
        org = await organizations.create_organization(
            session, user_id=user.id, name=slug.title(), slug=slug, plan=plan, now=utcnow()
        )
        return org.id


async def _history(db: Database, monitor_id: str) -> None:
    """The ten days before today as daily rollups of 100 checks each: all up but two days ago (95)."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    async with db.session() as session:
        for offset in range(1, 11):
            up = 95 if offset == 2 else 100
            session.add(
                CheckRollup(
                    monitor_id=monitor_id,
                    region="us-east-1",
                    granularity="day",
                    bucket_start=today - timedelta(days=offset),
                    count=100,
                    up_count=up,
                    sums={},
                    counts={},
                    histograms={},
                )
            )
        await session.commit()
