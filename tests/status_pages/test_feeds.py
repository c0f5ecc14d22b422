"""RSS and Atom feeds of a public status page: its components' automatic incidents and its declared
ones of the last 90 days, newest first, with their timelines and links to the page; at most 50;
private or unknown pages 404; ETag and 304."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from control_plane.core.ids import new_id
from control_plane.models import IncidentUpdate
from control_plane.models.status_pages import (
    PageIncident,
    PageIncidentUpdate,
    StatusPage,
    StatusPageComponent,
)
from tests.factories import insert_monitor
from tests.incident_factories import insert_incident

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"


async def insert_page(database, org_id: str, slug: str, monitors, *, is_public: bool = True, name: str = ""):
    page = StatusPage(id=new_id("sp"), org_id=org_id, name=name or slug, slug=slug, is_public=is_public)
    components = [
        StatusPageComponent(
            id=new_id("spc"), page_id=page.id, monitor_id=monitor.id, display_name=label, position=i
        )
        for i, (monitor, label) in enumerate(monitors)
    ]
    async with database.session() as session:
        session.add(page)
        await session.flush()
        session.add_all(components)
        await session.commit()
    return page, components


async def declare(database, page, components, title: str, started_at: datetime, *updates, resolved_at=None):
    """An incident declared on `page`; `updates` are (status, message, minutes after the start)."""
    incident = PageIncident(
        id=new_id("inc"),
        org_id=page.org_id,
        page_id=page.id,
        title=title,
        impact="major",
        status="resolved" if resolved_at else (updates[-1][0] if updates else "investigating"),
        component_ids=[component.id for component in components],
        started_at=started_at,
        resolved_at=resolved_at,
    )
    async with database.session() as session:
        session.add(incident)
        await session.flush()
        session.add_all(
            PageIncidentUpdate(
                id=new_id("piu"),
                incident_id=incident.id,
                status=status,
                message=message,
                created_at=started_at + timedelta(minutes=minutes),
            )
            for status, message, minutes in updates
        )
        await session.commit()
    return incident


@dataclass
class FeedCase:
    page: StatusPage
    declared_id: str
    automatic_id: str
    page_url: str


@pytest.fixture
async def feed_case(database, world, clock, settings):
    """A public page of two components with a declared incident (open, a day ago, two updates) and
    an automatic one (resolved, two days ago, one update people wrote); not in its feed: an
    incident of 100 days ago, a certificate's, another page's and another monitor's."""
    now = clock()
    api_monitor = await insert_monitor(database, world.org_a, name="api-prod")
    web_monitor = await insert_monitor(database, world.org_a, name="web-prod")
    elsewhere = await insert_monitor(database, world.org_a, name="elsewhere")
    page, components = await insert_page(
        database, world.org_a, "acme", [(api_monitor, "API"), (web_monitor, "Web <app>")], name="Acme & Co"
    )
    other_page, other_components = await insert_page(
        database, world.org_a, "other", [(elsewhere, "Elsewhere")]
    )
    declared = await declare(
        database,
        page,
        components[1:],
        "Checkout <errors>",
        now - timedelta(days=1),
        ("investigating", "We are looking into <b>errors</b> & timeouts", 0),
        ("identified", "A bad deploy; rolling back", 30),
    )
    automatic = await insert_incident(
        database, world.org_a, api_monitor.id, now - timedelta(days=2), now - timedelta(days=2, minutes=-40)
    )
    async with database.session() as session:
        session.add(
            IncidentUpdate(
                id=new_id("iu"),
                incident_id=automatic.id,
                org_id=world.org_a,
                kind="update",
                status="identified",
                message="Database failover",
                created_at=now - timedelta(days=2, minutes=-10),
            )
        )
        await session.commit()
    await insert_incident(
        database, world.org_a, api_monitor.id, now - timedelta(days=100), now - timedelta(days=99)
    )
    await insert_incident(database, world.org_a, api_monitor.id, now - timedelta(hours=3), kind="SSL_EXPIRY")
    await insert_incident(database, world.org_a, elsewhere.id, now - timedelta(hours=2))
    await declare(database, other_page, other_components, "Not on acme", now - timedelta(hours=1))
    return FeedCase(page, declared.id, automatic.id, f"{settings.public_url.rstrip('/')}/status/acme")


async def test_the_rss_feed_lists_the_pages_incidents_newest_first(api, feed_case):
    response = await api.get("/status/acme/feed.rss")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/rss+xml"
    assert response.headers["cache-control"] == "public, max-age=60"
    channel = ET.fromstring(response.content).find("channel")
    assert channel is not None
    assert channel.findtext("title") == "Acme & Co"
    assert channel.findtext("link") == feed_case.page_url
    self_link = channel.find(f"{ATOM}link[@rel='self']")
    assert self_link is not None and self_link.get("href") == f"{feed_case.page_url}/feed.rss"
    items = channel.findall("item")
    assert [item.findtext("title") for item in items] == [
        "Checkout <errors> (identified)",
        "API is down (resolved)",
    ]
    assert [item.findtext("link") for item in items] == [
        f"{feed_case.page_url}#inc-{feed_case.declared_id}",
        f"{feed_case.page_url}#inc-{feed_case.automatic_id}",
    ]
    page = await api.get("/status/acme")  # where each link lands: the incident's card
    for item in items:
        fragment = (item.findtext("link") or "").rsplit("#", 1)[1]
        assert f'id="{fragment}"' in page.text, fragment
    declared = items[0].findtext(CONTENT) or ""
    # The timeline, newest first, its words escaped in the HTML: never markup of their own.
    assert declared.index("A bad deploy") < declared.index("We are looking into")
    assert "&lt;b&gt;errors&lt;/b&gt; &amp; timeouts" in declared and "<b>" not in declared
    assert "Affected: Web &lt;app&gt;" in declared
    automatic = items[1].findtext(CONTENT) or ""
    assert "Database failover" in automatic and "Connection timeout" not in automatic  # no check errors
    assert all(item.findtext("pubDate") for item in items)


async def test_the_atom_feed_has_the_same_entries_with_their_times(api, feed_case, clock):
    response = await api.get("/status/acme/feed.atom")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml"
    feed = ET.fromstring(response.content)
    assert feed.findtext(f"{ATOM}title") == "Acme & Co"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links == {"alternate": feed_case.page_url, "self": f"{feed_case.page_url}/feed.atom"}
    entries = feed.findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}id") for entry in entries] == [
        f"{feed_case.page_url}#inc-{feed_case.declared_id}",
        f"{feed_case.page_url}#inc-{feed_case.automatic_id}",
    ]
    first = entries[0]
    published = datetime.fromisoformat(first.findtext(f"{ATOM}published") or "")
    updated = datetime.fromisoformat(first.findtext(f"{ATOM}updated") or "")
    assert updated - published == timedelta(minutes=30)  # its newest update
    assert abs(published - (clock() - timedelta(days=1))) < timedelta(minutes=1)
    content = first.find(f"{ATOM}content")
    assert content is not None and content.get("type") == "html" and "A bad deploy" in (content.text or "")
    # The feed is as new as its newest change.
    assert datetime.fromisoformat(feed.findtext(f"{ATOM}updated") or "") == updated


async def test_a_feed_holds_at_most_50_incidents(api, database, world, clock):
    monitor = await insert_monitor(database, world.org_a)
    page, components = await insert_page(database, world.org_a, "busy", [(monitor, "API")])
    now = clock()
    for n in range(55):
        await declare(database, page, components, f"Incident {n}", now - timedelta(hours=n))
    entries = ET.fromstring((await api.get("/status/busy/feed.atom")).content).findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}title") for entry in entries] == [
        f"Incident {n} (investigating)" for n in range(50)
    ]


async def test_an_empty_page_has_a_feed_without_entries(api, database, world):
    await insert_page(database, world.org_a, "quiet", [])
    for kind in ("rss", "atom"):
        response = await api.get(f"/status/quiet/feed.{kind}")
        assert response.status_code == 200, response.text
        root = ET.fromstring(response.content)
        assert not root.findall(".//item") and not root.findall(f"{ATOM}entry")


async def test_private_and_unknown_pages_have_no_feed(api, database, world, clock):
    monitor = await insert_monitor(database, world.org_a)
    page, components = await insert_page(
        database, world.org_a, "private", [(monitor, "API")], is_public=False
    )
    await declare(database, page, components, "Secret", clock())
    answers = set()
    for slug in ("private", "nobody", "x" * 300):
        for kind in ("rss", "atom"):
            for headers in ({}, world.alice.headers):  # even the organization's key: a feed is public
                response = await api.get(f"/status/{slug}/feed.{kind}", headers=headers)
                assert response.status_code == 404, (slug, kind)
                answers.add(response.text)
    assert len(answers) == 1


async def test_the_etag_answers_304_until_an_incident_changes(api, database, feed_case, clock):
    first = await api.get("/status/acme/feed.rss")
    etag = first.headers["etag"]
    assert (await api.get("/status/acme/feed.rss")).headers["etag"] == etag  # stable between requests
    cached = await api.get("/status/acme/feed.rss", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    atom = await api.get("/status/acme/feed.atom", headers={"If-None-Match": etag})
    assert atom.status_code == 200 and atom.headers["etag"] != etag  # another document
    async with database.session() as session:
        session.add(
            PageIncidentUpdate(
                id=new_id("piu"),
                incident_id=feed_case.declared_id,
                status="monitoring",
                message="Rolled back",
                created_at=clock(),
            )
        )
        await session.commit()
    changed = await api.get("/status/acme/feed.rss", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert "Rolled back" in changed.text


async def test_a_post_mortem_is_in_the_entry_rendered_without_its_markup(api, database, world, clock):
    monitor = await insert_monitor(database, world.org_a)
    page, components = await insert_page(database, world.org_a, "pm", [(monitor, "API")])
    now = clock()
    incident = await declare(database, page, components, "Outage", now - timedelta(hours=2), resolved_at=now)
    async with database.session() as session:
        stored = await session.get(PageIncident, incident.id)
        assert stored is not None
        stored.postmortem = "## Root cause\n\nA **full disk**.\n\n<script>alert(1)</script>"
        await session.commit()
    entry = ET.fromstring((await api.get("/status/pm/feed.atom")).content).find(f"{ATOM}entry")
    assert entry is not None
    content = entry.findtext(f"{ATOM}content") or ""
    assert "<h2>Root cause</h2>" in content and "<strong>full disk</strong>" in content
    assert "<script" not in content
