"""The public status page as HTML: what the renderer makes of a view (built by hand), and what
/status/{slug} and / on a verified custom domain answer (headers, escaping, ETag and 304, 404s)."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timedelta

import httpx
import lxml.html
from lxml.html import HtmlElement
from sqlalchemy import update

from control_plane.db import Database
from control_plane.models.status_pages import StatusPage
from control_plane.status_pages.public import PublicComponent, PublicMaintenance, TimelineEntry
from control_plane.web.render import bar_class, bars_summary, inert_css, render_page
from tests.clock import MovableClock
from tests.conftest import World
from tests.factories import insert_monitor
from tests.status_pages.page_views import (
    Component,
    component,
    declare_incident,
    health,
    incident,
    insert_page,
    page_view,
)

NOW = datetime(2026, 6, 15, 12, 0)
TODAY = NOW.date()


def parse(html: str) -> HtmlElement:
    return lxml.html.document_fromstring(html)


_STEP = re.compile(r"^([a-z0-9*]*)((?:[.#][\w-]+)*)(?:\[([\w-]+)(?:=([\w-]+))?\])?$")


def select(node: HtmlElement, selector: str) -> list[HtmlElement]:
    """The elements a simple CSS selector matches: descendant steps of tag, .class, #id, [attr]
    and [attr=value] (lxml's cssselect needs a package the project does not install)."""
    xpath = "."
    for step in selector.split():
        match = _STEP.match(step)
        assert match, f"unsupported selector step {step!r}"
        tag, qualifiers, attribute, value = match.groups()
        conditions = []
        for kind, name in re.findall(r"([.#])([\w-]+)", qualifiers):
            if kind == ".":
                conditions.append(f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')")
            else:
                conditions.append(f"@id='{name}'")
        if attribute:
            conditions.append(f"@{attribute}='{value}'" if value else f"@{attribute}")
        xpath += f"//{tag or '*'}" + "".join(f"[{condition}]" for condition in conditions)
    found: list[HtmlElement] = node.xpath(xpath)
    return found


def texts(node: HtmlElement, selector: str) -> list[str]:
    return [" ".join(element.text_content().split()) for element in select(node, selector)]


def style_hashes(csp: str) -> set[str]:
    return set(re.findall(r"'sha256-([A-Za-z0-9+/=]+)'", csp))


def sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# The renderer, from views built by hand


def test_it_renders_the_banner_components_in_groups_and_90_bars_each() -> None:
    view = page_view(
        NOW,
        overall="partial_outage",
        components=[
            component("Website", None, TODAY),
            component("API", "Backend", TODAY, status="partial_outage", down_days=2),
            component("Workers", "Backend", TODAY),
            component("Docs", None, TODAY, status="under_maintenance"),
        ],
    )
    document = parse(render_page(view, NOW).html)

    assert document.get("lang") == "en"
    assert texts(document, ".banner h2") == ["Partial outage"]
    assert select(document, ".banner")[0].get("class") == "banner status-partial_outage"
    assert texts(document, ".group-name") == ["Backend"]
    # Ungrouped components first, then each group in the order of its first component.
    assert texts(document, ".component-name") == ["Website", "Docs", "API", "Workers"]
    assert texts(document, ".component-status") == [
        "Operational",
        "Under maintenance",
        "Partial outage",
        "Operational",
    ]
    bars = [select(item, ".bar") for item in select(document, ".component")]
    assert [len(component_bars) for component_bars in bars] == [90, 90, 90, 90]
    api_bars = bars[2]
    assert api_bars[0].get("title") == "2026-03-18: no data · 0 incidents"
    assert api_bars[-1].get("title") == "2026-06-15: 90.00% uptime, 288 checks · 1 incident: API is down"
    assert api_bars[-3].get("title") == "2026-06-13: 100% uptime, 288 checks · 0 incidents"
    assert [bar.get("class") for bar in api_bars[-3:]] == ["bar bar-full", "bar bar-low", "bar bar-low"]
    assert texts(document, ".component .visually-hidden")[2] == (  # the bars in words, newest first
        "99.67% uptime over 90 days; 2 days with incidents."
        " Jun 15, 2026: 90.00% uptime, API is down. Jun 14, 2026: 90.00% uptime, API is down."
        " 2 days below 100%, the lowest Jun 15, 2026 at 90.00%."
    )
    for landmark in ("header", "main", "footer"):
        assert len(select(document, landmark)) == 1


def test_it_colours_a_day_by_its_uptime() -> None:
    days = health("mon_1", TODAY).days
    day = days[-1]
    shades = [
        bar_class(type(day)(day.day, uptime, 10, 0))
        for uptime in (100.0, 99.95, 99.5, 97.0, 85.0, 50.0, None)
    ]
    assert shades == ["bar-full", "bar-full", "bar-high", "bar-mid", "bar-low", "bar-down", "bar-none"]


def test_it_describes_bars_without_data() -> None:
    empty = health("mon_1", TODAY)
    empty = type(empty)(empty.monitor_id, "operational", None, empty.days[:60])
    assert bars_summary(PublicComponent("spc_1", "API", None, 0, empty)) == (
        "No uptime data over 60 days; 0 days with incidents"
    )


def test_it_shows_an_incident_timeline_newest_first() -> None:
    started = NOW - timedelta(hours=2)
    active = incident("Slow checkout", started)
    active.updates.insert(0, TimelineEntry("identified", "A bad deploy", NOW - timedelta(hours=1)))
    document = parse(render_page(page_view(NOW, active=[active]), NOW).html)

    assert texts(document, "#active-incidents") == ["Active incidents"]
    assert texts(document, ".incident h3") == ["Slow checkout"]
    assert texts(document, ".incident .meta") == ["Major · Jun 15, 2026 10:00 UTC · Affects API"]
    assert texts(document, ".timeline li") == [
        "Identified · Jun 15, 2026 11:00 UTC A bad deploy",
        "Investigating · Jun 15, 2026 10:00 UTC Looking into Slow checkout",
    ]
    assert select(document, ".timeline time")[0].get("datetime") == "2026-06-15T11:00:00.000Z"


def test_it_groups_past_incidents_by_day_over_14_days() -> None:
    earlier = incident("Outage", NOW - timedelta(days=3), resolved_at=NOW - timedelta(days=3, hours=-1))
    long_ago = incident("Long one", NOW - timedelta(days=20), resolved_at=NOW - timedelta(days=2))
    document = parse(render_page(page_view(NOW, past=[earlier, long_ago]), NOW).html)

    days = select(document, ".history-day")
    assert len(days) == 14
    assert texts(document, ".history-day h3")[:4] == [
        "Jun 15, 2026",
        "Jun 14, 2026",
        "Jun 13, 2026",
        "Jun 12, 2026",
    ]
    assert texts(days[0], "p") == ["No incidents reported."]
    assert texts(days[3], ".incident h4") == ["Outage"]
    assert texts(days[13], ".incident h4") == ["Long one"]  # started before the 14 days
    assert texts(days[3], ".timeline-status") == ["Resolved", "Investigating"]


def test_it_shows_maintenance_in_progress_and_scheduled() -> None:
    windows = [
        PublicMaintenance(
            "mw_1",
            "Database upgrade",
            "Short pauses",
            NOW - timedelta(hours=1),
            NOW + timedelta(hours=1),
            ["API"],
        ),
        PublicMaintenance(
            "mw_2", "Network", None, NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2), []
        ),
    ]
    document = parse(render_page(page_view(NOW, maintenance=windows), NOW).html)

    assert texts(document, ".maintenance h3") == ["Database upgrade", "Network"]
    meta = texts(document, ".maintenance .meta")
    assert meta[0] == "In progress: Jun 15, 2026 11:00 UTC to Jun 15, 2026 13:00 UTC · Affects API"
    assert meta[1].startswith("Scheduled: Jun 16, 2026 12:00 UTC")


def test_it_escapes_what_page_owners_write() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    view = page_view(
        NOW,
        name=f"Acme {hostile}",
        description=hostile,
        components=[component(f"API {hostile}", f"Group {hostile}", TODAY)],
        active=[incident(f"Down {hostile}", NOW)],
        logo_url='https://cdn.example.com/logo.png" onload="alert(1)',
    )
    html = render_page(view, NOW).html
    document = parse(html)

    assert "<img src=x" not in html
    assert select(document, "img[onerror]") == [] and select(document, "[onload]") == []
    assert texts(document, "h1") == [f"Acme {hostile}"]
    assert texts(document, ".component-name") == [f"API {hostile}"]
    assert texts(document, ".group-name") == [f"Group {hostile}"]
    assert select(document, ".logo")[0].get("src") == 'https://cdn.example.com/logo.png" onload="alert(1)'


def test_it_keeps_custom_css_inside_its_style_element() -> None:
    css = "body { color: red } </style><script>window.pwned=1</script><style> a > b { content: '<' }\r\n"
    rendered = render_page(page_view(NOW, custom_css=css), NOW)
    document = parse(rendered.html)

    styles = select(document, "style")
    assert len(styles) == 2
    assert select(document, "script") == []
    assert styles[1].text == inert_css(css)
    assert "</style" not in styles[1].text and "<" not in styles[1].text
    assert "a > b" in styles[1].text and "\\3C " in styles[1].text and "\r" not in styles[1].text
    # Each style element is allowed by the hash of its text, and nothing else is.
    assert style_hashes(rendered.content_security_policy) == {sha256(style.text) for style in styles}


def test_it_survives_a_lone_surrogate() -> None:
    # JSON's "\\ud800" escape decodes to one; UTF-8 cannot encode it.
    rendered = render_page(
        page_view(NOW, name="Acme \ud800", custom_css="a::after { content: '\ud800' }"), NOW
    )
    document = parse(rendered.body.decode())

    assert texts(document, "h1") == ["Acme ?"]
    assert style_hashes(rendered.content_security_policy) == {
        sha256(style.text) for style in select(document, "style")
    }


def test_it_renders_postmortems_sanitised() -> None:
    markdown = (
        "## What happened\n\nA **bad** deploy.\n\n<script>window.pwned=1</script>\n\n[x](javascript:alert(1))"
    )
    past = incident(
        "Outage", NOW - timedelta(hours=5), resolved_at=NOW - timedelta(hours=4), postmortem=markdown
    )
    document = parse(render_page(page_view(NOW, past=[past]), NOW).html)

    postmortem = select(document, ".postmortem")[0]
    assert texts(postmortem, "h6") == ["What happened"]  # its ## under the day's incident's h4
    assert texts(postmortem, "strong") == ["bad"]
    assert select(document, "script") == []
    assert all("javascript" not in (link.get("href") or "") for link in select(postmortem, "a"))


def test_it_shows_branding_unless_hidden() -> None:
    shown = parse(render_page(page_view(NOW), NOW).html)
    hidden = parse(render_page(page_view(NOW, hide_branding=True), NOW).html)

    assert texts(shown, "footer .powered-by") == ["Powered by Traxo"]
    assert texts(hidden, "footer .powered-by") == []
    assert texts(hidden, "footer") == ["Follow incidents: RSS · Atom"]


def test_it_links_its_feeds() -> None:
    document = parse(render_page(page_view(NOW, name="Acme"), NOW, page_path="/traxo/status/acme").html)

    feeds = [(link.get("type"), link.get("href")) for link in select(document, "link[rel=alternate]")]
    assert feeds == [
        ("application/rss+xml", "/traxo/status/acme/feed.rss"),
        ("application/atom+xml", "/traxo/status/acme/feed.atom"),
    ]


def test_it_shows_the_logo_and_favicon() -> None:
    view = page_view(
        NOW, logo_url="https://cdn.example.com/logo.png", favicon_url="http://img.example.com/f.ico"
    )
    rendered = render_page(view, NOW)
    document = parse(rendered.html)

    assert select(document, ".logo")[0].get("src") == "https://cdn.example.com/logo.png"
    assert select(document, "link[rel=icon]")[0].get("href") == "http://img.example.com/f.ico"
    assert "img-src https: http://img.example.com data:;" in rendered.content_security_policy
    default = parse(render_page(page_view(NOW), NOW).html)
    assert select(default, "link[rel=icon]")[0].get("href").startswith("data:image/svg+xml,")


# /status/{slug} and / on a custom domain


async def _page(
    database: Database, world: World, now: datetime, slug: str = "acme", **fields: object
) -> StatusPage:
    api = await insert_monitor(database, world.org_a, name="api-prod")
    web = await insert_monitor(database, world.org_a, name="web-prod")
    components = [Component(web.id, "Website"), Component(api.id, "Public API", "Backend")]
    return await insert_page(database, world.org_a, slug, components, now, **fields)


async def test_it_serves_a_public_page_with_its_security_headers(
    api: httpx.AsyncClient, world: World, database: Database, clock: MovableClock
) -> None:
    page = await _page(database, world, clock(), name="Acme <Status>")
    await declare_incident(
        database,
        page,
        "Checkout errors",
        [("investigating", "We are on it & <looking>", clock() - timedelta(minutes=5))],
    )
    response = await api.get("/status/acme")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert "img-src https: data:" in csp and "script-src" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["cache-control"] == "public, max-age=30"
    document = parse(response.text)
    assert texts(document, "h1") == ["Acme <Status>"]
    assert "Acme &lt;Status&gt;" in response.text
    assert texts(document, ".component-name") == ["Website", "Public API"]
    assert texts(document, ".group-name") == ["Backend"]
    assert [len(select(c, ".bar")) for c in select(document, ".component")] == [90, 90]
    assert texts(document, ".incident h3") == ["Checkout errors"]
    assert texts(document, ".timeline p") == ["We are on it & <looking>"]
    assert style_hashes(csp) == {sha256(style.text) for style in select(document, "style")}


async def test_it_answers_304_to_its_etag(
    api: httpx.AsyncClient, world: World, database: Database, clock: MovableClock
) -> None:
    page = await _page(database, world, clock())
    first = await api.get("/status/acme", headers={"Accept-Encoding": "identity"})
    etag = first.headers["etag"]

    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert "content-encoding" not in first.headers and first.headers["vary"] == "Accept-Encoding"
    zipped = await api.get("/status/acme", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["etag"] == f'{etag[:-1]}-gzip"'
    assert int(zipped.headers["content-length"]) < len(first.content) / 5
    assert zipped.text == first.text  # httpx inflated it
    assert (await api.get("/status/acme", headers={"Accept-Encoding": "gzip;q=0"})).headers["etag"] == etag
    again = await api.get("/status/acme", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert (
        again.headers["etag"] == f'{etag[:-1]}-gzip"'
        and again.headers["cache-control"] == "public, max-age=30"
    )
    # Either encoding's tag validates the page: it is the same page.
    weak = await api.get("/status/acme", headers={"If-None-Match": f'"other", W/{etag[:-1]}-gzip"'})
    assert weak.status_code == 304
    assert (await api.get("/status/acme", headers={"If-None-Match": '"other"'})).status_code == 200

    # A change to the page is a new body and a new tag: the old one gets the page again.
    await declare_incident(database, page, "Slow", [("investigating", "Looking", clock())])
    changed = await api.get("/status/acme", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_it_answers_an_html_404_for_unknown_and_private_pages(
    api: httpx.AsyncClient, world: World, database: Database, clock: MovableClock
) -> None:
    await _page(database, world, clock(), slug="secret", is_public=False)
    for path in ("/status/secret", "/status/nothing-here"):
        response = await api.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert texts(parse(response.text), "h1") == ["Status page not found"]
        assert "etag" not in response.headers and response.headers["cache-control"] == "no-cache"
        assert "default-src 'none'" in response.headers["content-security-policy"]
    private = await api.get("/status/secret", headers=world.alice.headers)
    assert private.status_code == 404  # even for its organization: the HTML page is the public one


async def test_it_serves_a_page_on_its_verified_custom_domain(
    api: httpx.AsyncClient, world: World, database: Database, clock: MovableClock
) -> None:
    page = await _page(database, world, clock(), custom_domain="status.acme.example")
    unverified = await api.get("/", headers={"Host": "status.acme.example"})
    assert unverified.status_code == 404 and unverified.json() == {"error": "Not found"}

    async with database.session() as session:
        await session.execute(
            update(StatusPage).where(StatusPage.id == page.id).values(domain_verified_at=clock())
        )
        await session.commit()
    for host in ("status.acme.example", "STATUS.acme.example:443", "status.acme.example."):
        response = await api.get("/", headers={"Host": host})
        assert response.status_code == 200, host
        document = parse(response.text)
        assert texts(document, ".component-name") == ["Website", "Public API"]
        assert [link.get("href") for link in select(document, "footer a")] == [
            "/status/acme/feed.rss",
            "/status/acme/feed.atom",
        ]
        assert (
            response.headers["etag"]
            and "frame-ancestors 'none'" in response.headers["content-security-policy"]
        )
        (form,) = select(document, "form")
        assert (form.get("method"), form.get("action")) == ("post", "/status/acme/subscribe")
    # The form posts where the page is served, the custom domain's host too.
    boxes = select(form, "input")
    (public_api,) = [box.get("value") for box in boxes if box.tail and "Public API" in box.tail]
    subscribed = await api.post(
        "/status/acme/subscribe",
        content=f"email=visitor%40example.com&components={public_api}",
        headers={"Host": "status.acme.example", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert subscribed.status_code == 202 and "Check your inbox" in subscribed.text, subscribed.text
    # Another host, the API's own included, gets what / always answered; the API works on any host.
    for host in ("traxo.test", "other.example"):
        other = await api.get("/", headers={"Host": host})
        assert other.status_code == 404 and other.json() == {"error": "Not found"}
    monitors = await api.get("/api/monitors", headers={**world.alice.headers, "Host": "status.acme.example"})
    assert monitors.status_code == 200

    # Made private, its domain answers the HTML 404 a private page's slug does.
    async with database.session() as session:
        await session.execute(update(StatusPage).where(StatusPage.id == page.id).values(is_public=False))
        await session.commit()
    private = await api.get("/", headers={"Host": "status.acme.example"})
    assert private.status_code == 404 and texts(parse(private.text), "h1") == ["Status page not found"]
