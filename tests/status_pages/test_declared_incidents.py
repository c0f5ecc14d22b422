"""/api/status-pages/:slug/incidents: incidents declared by hand on a page, their timeline
(newest first; resolved resolves, another status reopens), edits and the post-mortem rendered
sanitised, every field's 400, paging; another organization's page or incident and another page's
incident are 404s, a VIEWER's write a 403."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from control_plane.core.ids import new_id
from control_plane.core.timefmt import iso
from control_plane.db import Database
from control_plane.models.status_pages import PageIncidentUpdate, StatusPage, StatusPageComponent
from tests.clock import MovableClock
from tests.conftest import Account, World
from tests.factories import insert_monitor
from tests.spec import ISO_MS

INCIDENT_FIELDS = {
    *("id", "pageId", "title", "impact", "status", "componentIds", "components", "startedAt"),
    *("resolvedAt", "createdAt", "updatedAt", "postmortem", "postmortemHtml", "updates"),
}


@dataclass
class Page:
    id: str
    slug: str
    components: list[str]  # spc_... in order

    @property
    def incidents(self) -> str:
        return f"/api/status-pages/{self.slug}/incidents"


async def insert_page(database: Database, org_id: str, slug: str, *components: str) -> Page:
    """A page of `org_id` with one component (and its monitor) per display name."""
    monitors = [await insert_monitor(database, org_id, name=f"{name} monitor") for name in components]
    page = StatusPage(id=new_id("sp"), org_id=org_id, name=slug.title(), slug=slug)
    rows = [
        StatusPageComponent(
            id=new_id("spc"), page_id=page.id, monitor_id=monitor.id, display_name=name, position=position
        )
        for position, (name, monitor) in enumerate(zip(components, monitors, strict=True))
    ]
    async with database.session() as session:
        session.add(page)
        await session.flush()
        session.add_all(rows)
        await session.commit()
    return Page(page.id, slug, [row.id for row in rows])


@pytest.fixture
async def page(database: Database, world: World) -> Page:
    return await insert_page(database, world.org_a, "acme-status", "Production API", "Web App", "Database")


async def declare(api: httpx.AsyncClient, page: Page, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": "Elevated errors", "impact": "major", "message": "Looking into it", **fields}
    response = await api.post(page.incidents, json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"data"}
    data: dict[str, Any] = response.json()["data"]
    return data


async def post_update(
    api: httpx.AsyncClient,
    page: Page,
    incident_id: str,
    account: Account,
    status: str,
    message: str = "Update",
) -> httpx.Response:
    return await api.post(
        f"{page.incidents}/{incident_id}/updates",
        json={"status": status, "message": message},
        headers=account.headers,
    )


async def fetch(api: httpx.AsyncClient, page: Page, incident_id: str, account: Account) -> dict[str, Any]:
    response = await api.get(f"{page.incidents}/{incident_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# --- declaring ----------------------------------------------------------------------------------


async def test_it_declares_an_incident_with_its_message_as_the_first_update(
    api: httpx.AsyncClient, world: World, page: Page, clock: MovableClock
) -> None:
    before = iso(clock())
    incident = await declare(
        api,
        page,
        world.adam,
        title="  Elevated API error rates ",
        impact="major",
        message="We are investigating errors on the API.",
        componentIds=[page.components[2], page.components[0]],
    )
    after = iso(clock())
    assert set(incident) == INCIDENT_FIELDS
    assert incident["id"].startswith("inc_") and incident["pageId"] == page.id
    assert (incident["title"], incident["impact"], incident["status"]) == (
        "Elevated API error rates",
        "major",
        "investigating",
    )
    assert incident["componentIds"] == [page.components[2], page.components[0]]  # in the order given
    assert incident["components"] == [
        {"id": page.components[2], "displayName": "Database"},
        {"id": page.components[0], "displayName": "Production API"},
    ]
    assert ISO_MS.match(incident["startedAt"]) and before <= incident["startedAt"] <= after
    assert incident["createdAt"] == incident["updatedAt"] == incident["startedAt"]
    assert incident["resolvedAt"] is None
    assert incident["postmortem"] is None and incident["postmortemHtml"] is None
    [first] = incident["updates"]
    assert set(first) == {"id", "status", "message", "createdAt"}
    assert (
        first["status"] == "investigating" and first["message"] == "We are investigating errors on the API."
    )
    assert first["createdAt"] == incident["startedAt"]
    assert await fetch(api, page, incident["id"], world.vera) == incident


async def test_it_declares_for_the_whole_page_and_in_a_later_status(
    api: httpx.AsyncClient, world: World, page: Page
) -> None:
    response = await api.post(
        page.incidents,
        json={"title": "Slow", "impact": "none", "status": "identified", "message": "A slow disk"},
        headers=world.alice.headers,
    )
    assert response.status_code == 201
    incident = response.json()["data"]
    assert incident["componentIds"] == [] and incident["components"] == []
    assert incident["status"] == "identified" and incident["updates"][0]["status"] == "identified"
    for impact in ("minor", "critical"):
        assert (await declare(api, page, world.alice, impact=impact))["impact"] == impact


async def test_the_longest_title_message_and_postmortem_are_taken(
    api: httpx.AsyncClient, world: World, page: Page
) -> None:
    incident = await declare(api, page, world.alice, title="t" * 200, message="m" * 5000)
    assert len(incident["title"]) == 200 and len(incident["updates"][0]["message"]) == 5000
    response = await api.patch(
        f"{page.incidents}/{incident['id']}", json={"postmortem": "p" * 50_000}, headers=world.alice.headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["postmortemHtml"] == f"<p>{'p' * 50_000}</p>\n"


async def test_a_message_keeps_its_line_breaks(api: httpx.AsyncClient, world: World, page: Page) -> None:
    incident = await declare(api, page, world.alice, message="First line\n\n\tSecond, indented")
    assert incident["updates"][0]["message"] == "First line\n\n\tSecond, indented"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": "bell\x07"}, "title"),
        ({"title": "line\nbreak"}, "title"),
        ({"title": 5}, "title"),
        ({"impact": "severe"}, "impact"),
        ({"impact": "MAJOR"}, "impact"),
        ({"impact": None}, "impact"),
        ({"impact": 1}, "impact"),
        ({"status": "resolved"}, "status"),
        ({"status": "fixed"}, "status"),
        ({"status": None}, "status"),
        ({"message": ""}, "message"),
        ({"message": "  \n "}, "message"),
        ({"message": "m" * 5001}, "message"),
        ({"message": "bell\x07"}, "message"),
        ({"message": ["x"]}, "message"),
        ({"componentIds": "spc_x"}, "componentIds"),
        ({"componentIds": None}, "componentIds"),
        ({"componentIds": [1]}, "componentIds.0"),
        ({"componentIds": [""]}, "componentIds.0"),
        ({"componentIds": ["x" * 41]}, "componentIds.0"),
        ({"componentIds": ["spc_a"] * 501}, "componentIds"),
        ({"postmortem": ""}, "postmortem"),
        ({"postmortem": "p" * 50_001}, "postmortem"),
        ({"postmortem": ["x"]}, "postmortem"),
        ({"startedAt": "2025-06-14T08:00:00Z"}, "startedAt"),
    ],
)
async def test_it_rejects_a_bad_declaration_naming_the_field(
    api: httpx.AsyncClient, world: World, page: Page, body: dict[str, Any], field: str
) -> None:
    full = {"title": "Down", "impact": "major", "message": "Looking", **body}
    response = await api.post(page.incidents, json=full, headers=world.alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}:"), response.json()


@pytest.mark.parametrize("missing", ["title", "impact", "message"])
async def test_it_rejects_a_declaration_without_a_required_field(
    api: httpx.AsyncClient, world: World, page: Page, missing: str
) -> None:
    body = {"title": "Down", "impact": "major", "message": "Looking"}
    del body[missing]
    response = await api.post(page.incidents, json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{missing}:"), response.json()


async def test_it_rejects_a_body_that_is_not_an_object(
    api: httpx.AsyncClient, world: World, page: Page
) -> None:
    bodies: list[object] = [[], "x", None]
    for body in bodies:
        response = await api.post(page.incidents, json=body, headers=world.alice.headers)
        assert response.status_code == 400 and set(response.json()) == {"error"}, body


async def test_it_rejects_components_of_another_page_or_none_naming_them(
    api: httpx.AsyncClient, world: World, database: Database, page: Page
) -> None:
    other = await insert_page(database, world.org_a, "other-status", "Elsewhere")
    theirs = await insert_page(database, world.org_b, "their-status", "Theirs")
    wanted = [page.components[0], other.components[0], "spc_nothing", theirs.components[0]]
    body = {"title": "Down", "impact": "major", "message": "Looking", "componentIds": wanted}
    response = await api.post(page.incidents, json=body, headers=world.alice.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("componentIds: ")
    assert f"{other.components[0]}, spc_nothing, {theirs.components[0]}" in error
    assert page.components[0] not in error
    response = await api.post(
        page.incidents, json={**body, "componentIds": [page.components[1]] * 2}, headers=world.alice.headers
    )
    assert response.status_code == 400 and response.json()["error"].startswith("componentIds:")
    listed = (await api.get(page.incidents, headers=world.alice.headers)).json()
    assert listed["data"] == []  # nothing declared by the refused requests


# --- the timeline -------------------------------------------------------------------------------


async def test_updates_go_on_the_timeline_newest_first_and_set_the_status(
    api: httpx.AsyncClient, world: World, page: Page, clock: MovableClock
) -> None:
    incident = await declare(api, page, world.alice)
    clock.advance(timedelta(minutes=5))
    response = await post_update(api, page, incident["id"], world.adam, "identified", "A bad deploy")
    assert response.status_code == 201
    update = response.json()["data"]
    assert set(response.json()) == {"data"} and set(update) == {"id", "status", "message", "createdAt"}
    assert (update["status"], update["message"]) == ("identified", "A bad deploy")
    assert update["createdAt"] > incident["startedAt"]
    clock.advance(timedelta(minutes=5))
    monitoring = (
        await post_update(api, page, incident["id"], world.alice, "monitoring", "Rolled back")
    ).json()
    current = await fetch(api, page, incident["id"], world.vera)
    assert [entry["status"] for entry in current["updates"]] == ["monitoring", "identified", "investigating"]
    assert current["updates"][0] == monitoring["data"] and current["updates"][1] == update
    assert current["status"] == "monitoring" and current["resolvedAt"] is None
    assert current["updatedAt"] == monitoring["data"]["createdAt"]
    assert current["startedAt"] == incident["startedAt"] and current["createdAt"] == incident["createdAt"]


async def test_resolved_resolves_and_a_second_resolved_is_a_note(
    api: httpx.AsyncClient, world: World, page: Page, clock: MovableClock
) -> None:
    incident = await declare(api, page, world.alice)
    clock.advance(timedelta(minutes=30))
    resolved = (await post_update(api, page, incident["id"], world.alice, "resolved", "Fixed")).json()["data"]
    current = await fetch(api, page, incident["id"], world.alice)
    assert current["status"] == "resolved" and current["resolvedAt"] == resolved["createdAt"]
    clock.advance(timedelta(minutes=30))
    note = (await post_update(api, page, incident["id"], world.alice, "resolved", "Root cause found")).json()
    later = await fetch(api, page, incident["id"], world.alice)
    assert later["resolvedAt"] == resolved["createdAt"]  # the first resolution's time stays
    assert later["status"] == "resolved" and later["updatedAt"] == note["data"]["createdAt"]
    assert [entry["message"] for entry in later["updates"]] == [
        "Root cause found",
        "Fixed",
        "Looking into it",
    ]


async def test_another_status_reopens_a_resolved_incident(
    api: httpx.AsyncClient, world: World, page: Page, clock: MovableClock
) -> None:
    incident = await declare(api, page, world.alice)
    clock.advance(timedelta(minutes=10))
    await post_update(api, page, incident["id"], world.alice, "resolved", "Fixed")
    clock.advance(timedelta(minutes=10))
    response = await post_update(api, page, incident["id"], world.adam, "investigating", "It is back")
    assert response.status_code == 201
    reopened = await fetch(api, page, incident["id"], world.alice)
    assert reopened["status"] == "investigating" and reopened["resolvedAt"] is None
    assert reopened["startedAt"] == incident["startedAt"]
    assert [entry["status"] for entry in reopened["updates"]] == [
        "investigating",
        "resolved",
        "investigating",
    ]
    listed = (await api.get(page.incidents, params={"status": "open"}, headers=world.alice.headers)).json()
    assert [item["id"] for item in listed["data"]] == [incident["id"]]
    clock.advance(timedelta(minutes=10))
    final = (await post_update(api, page, incident["id"], world.alice, "resolved", "Fixed again")).json()
    assert (await fetch(api, page, incident["id"], world.alice))["resolvedAt"] == final["data"]["createdAt"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "fixed", "message": "x"}, "status"),
        ({"status": None, "message": "x"}, "status"),
        ({"message": "x"}, "status"),
        ({"status": "identified"}, "message"),
        ({"status": "identified", "message": ""}, "message"),
        ({"status": "identified", "message": "   "}, "message"),
        ({"status": "identified", "message": "x" * 5001}, "message"),
        ({"status": "identified", "message": "bell\x07"}, "message"),
        ({"status": "identified", "message": 5}, "message"),
        ({"status": "identified", "message": "x", "impact": "minor"}, "impact"),
    ],
)
async def test_it_rejects_a_bad_update_naming_the_field(
    api: httpx.AsyncClient, world: World, page: Page, body: dict[str, Any], field: str
) -> None:
    incident = await declare(api, page, world.alice)
    response = await api.post(
        f"{page.incidents}/{incident['id']}/updates", json=body, headers=world.alice.headers
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()
    assert len((await fetch(api, page, incident["id"], world.alice))["updates"]) == 1


# --- the list -----------------------------------------------------------------------------------


async def test_the_list_is_newest_first_filtered_and_paged(
    api: httpx.AsyncClient, world: World, page: Page, clock: MovableClock
) -> None:
    ids = []
    for title in ("First", "Second", "Third"):
        ids.append((await declare(api, page, world.alice, title=title))["id"])
        clock.advance(timedelta(hours=1))
    await post_update(api, page, ids[1], world.alice, "resolved", "Fixed")

    async def listed(**params: Any) -> dict[str, Any]:
        response = await api.get(page.incidents, params=params, headers=world.vera.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = await listed()
    assert set(everything) == {"data", "pagination"}
    assert [item["id"] for item in everything["data"]] == ids[::-1]
    assert everything["data"][0] == await fetch(api, page, ids[2], world.alice)  # the same view
    assert everything["pagination"] == {"page": 1, "limit": 50, "total": 3, "totalPages": 1}
    assert [item["id"] for item in (await listed(status="open"))["data"]] == [ids[2], ids[0]]
    resolved = await listed(status="resolved")
    assert [item["id"] for item in resolved["data"]] == [ids[1]] and resolved["pagination"]["total"] == 1
    second = await listed(limit=2, page=2)
    assert [item["id"] for item in second["data"]] == [ids[0]]
    assert second["pagination"] == {"page": 2, "limit": 2, "total": 3, "totalPages": 2}
    beyond = await listed(page=9)
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 3


async def test_the_list_is_empty_without_incidents(api: httpx.AsyncClient, world: World, page: Page) -> None:
    body = (await api.get(page.incidents, headers=world.alice.headers)).json()
    assert body == {"data": [], "pagination": {"page": 1, "limit": 50, "total": 0, "totalPages": 0}}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "active"}, "status"),
        ({"status": ""}, "status"),
        ({"page": 0}, "page"),
        ({"page": "one"}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": 1.5}, "limit"),
    ],
)
async def test_it_rejects_bad_list_parameters_naming_them(
    api: httpx.AsyncClient, world: World, page: Page, params: dict[str, Any], field: str
) -> None:
    response = await api.get(page.incidents, params=params, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()


# --- edits, the post-mortem, deletion -----------------------------------------------------------


async def test_it_edits_title_impact_and_components(
    api: httpx.AsyncClient, world: World, page: Page, clock: MovableClock
) -> None:
    incident = await declare(api, page, world.alice, componentIds=[page.components[0]])
    url = f"{page.incidents}/{incident['id']}"
    clock.advance(timedelta(minutes=1))
    response = await api.patch(
        url,
        json={"title": "API errors", "impact": "critical", "componentIds": [page.components[1]]},
        headers=world.adam.headers,
    )
    assert response.status_code == 200 and set(response.json()) == {"data"}
    edited = response.json()["data"]
    assert edited == {
        **incident,
        "title": "API errors",
        "impact": "critical",
        "componentIds": [page.components[1]],
        "components": [{"id": page.components[1], "displayName": "Web App"}],
        "updatedAt": edited["updatedAt"],
    }
    assert edited["updatedAt"] > incident["updatedAt"]
    whole = (await api.patch(url, json={"componentIds": []}, headers=world.alice.headers)).json()["data"]
    assert whole["componentIds"] == [] and whole["title"] == "API errors"
    unchanged = (await api.patch(url, json={}, headers=world.alice.headers)).json()["data"]
    assert unchanged == {**whole, "updatedAt": unchanged["updatedAt"]}
    assert await fetch(api, page, incident["id"], world.alice) == unchanged


async def test_the_postmortem_is_kept_as_written_and_rendered_sanitised(
    api: httpx.AsyncClient, world: World, page: Page
) -> None:
    incident = await declare(api, page, world.alice)
    url = f"{page.incidents}/{incident['id']}"
    markdown = (
        "## What happened\n\nA deploy broke [the API](https://api.example.com).\n\n"
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))"
    )
    edited = (await api.patch(url, json={"postmortem": markdown}, headers=world.alice.headers)).json()["data"]
    assert edited["postmortem"] == markdown
    html = edited["postmortemHtml"]
    assert html.startswith('<h2>What happened</h2>\n<p>A deploy broke <a href="https://api.example.com" ')
    assert 'rel="nofollow noopener noreferrer"' in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert (await fetch(api, page, incident["id"], world.vera))["postmortemHtml"] == html
    cleared = (await api.patch(url, json={"postmortem": None}, headers=world.alice.headers)).json()["data"]
    assert cleared["postmortem"] is None and cleared["postmortemHtml"] is None


async def test_a_declaration_may_bring_its_postmortem_shown_sanitised_on_the_public_page(
    api: httpx.AsyncClient, world: World, page: Page
) -> None:
    # An incident declared after the fact, its post-mortem written already.
    markdown = "## What happened\n\nA **bad** deploy.\n\n<script>alert(1)</script>"
    incident = await declare(api, page, world.alice, postmortem=markdown)
    assert incident["postmortem"] == markdown
    html = incident["postmortemHtml"]
    assert html.startswith("<h2>What happened</h2>\n<p>A <strong>bad</strong> deploy.</p>")
    assert "<script" not in html and "&lt;script&gt;" in html
    public = await api.get(f"/api/status-pages/{page.slug}", headers=world.alice.headers)
    (shown,) = public.json()["data"]["activeIncidents"]
    assert (shown["postmortem"], shown["postmortemHtml"]) == (markdown, html)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"impact": None}, "impact"),
        ({"impact": "high"}, "impact"),
        ({"componentIds": None}, "componentIds"),
        ({"componentIds": ["spc_nothing"]}, "componentIds"),
        ({"componentIds": ["spc_a", "spc_a"]}, "componentIds"),
        ({"postmortem": ""}, "postmortem"),
        ({"postmortem": " \n\t"}, "postmortem"),
        ({"postmortem": "p" * 50_001}, "postmortem"),
        ({"postmortem": "bell\x07"}, "postmortem"),
        ({"postmortem": 5}, "postmortem"),
        ({"status": "resolved"}, "status"),
        ({"resolvedAt": None}, "resolvedAt"),
    ],
)
async def test_it_rejects_a_bad_edit_naming_the_field(
    api: httpx.AsyncClient, world: World, page: Page, body: dict[str, Any], field: str
) -> None:
    incident = await declare(api, page, world.alice)
    response = await api.patch(f"{page.incidents}/{incident['id']}", json=body, headers=world.alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}:"), response.json()
    assert await fetch(api, page, incident["id"], world.alice) == incident


async def test_it_deletes_an_incident_and_its_timeline(
    api: httpx.AsyncClient, world: World, database: Database, page: Page
) -> None:
    incident = await declare(api, page, world.alice)
    kept = await declare(api, page, world.alice, title="Kept")
    await post_update(api, page, incident["id"], world.alice, "resolved", "Fixed")
    url = f"{page.incidents}/{incident['id']}"
    response = await api.delete(url, headers=world.adam.headers)
    assert response.status_code == 200
    assert response.json() == {"message": "Incident deleted successfully"}
    assert (await api.get(url, headers=world.alice.headers)).status_code == 404
    assert (await api.delete(url, headers=world.alice.headers)).status_code == 404
    async with database.session() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(PageIncidentUpdate)
            .where(PageIncidentUpdate.incident_id == incident["id"])
        )
    assert left == 0
    listed = (await api.get(page.incidents, headers=world.alice.headers)).json()["data"]
    assert [item["id"] for item in listed] == [kept["id"]]


async def test_a_component_removed_from_the_page_leaves_its_incidents(
    api: httpx.AsyncClient, world: World, database: Database, page: Page
) -> None:
    incident = await declare(api, page, world.alice, componentIds=[page.components[0], page.components[1]])
    async with database.session() as session:
        await session.delete(await session.get(StatusPageComponent, page.components[0]))
        await session.commit()
    current = await fetch(api, page, incident["id"], world.alice)
    assert current["componentIds"] == [page.components[1]]
    assert current["components"] == [{"id": page.components[1], "displayName": "Web App"}]


# --- tenancy and roles --------------------------------------------------------------------------


async def test_another_organizations_page_and_incident_are_404s_everywhere(
    api: httpx.AsyncClient, world: World, database: Database, page: Page
) -> None:
    incident = await declare(api, page, world.alice)
    theirs = await insert_page(database, world.org_b, "their-status", "Theirs")
    their_incident = await declare(api, theirs, world.bob)
    one = f"{page.incidents}/{incident['id']}"
    update = {"status": "identified", "message": "x"}
    declaration = {"title": "Down", "impact": "major", "message": "x"}
    calls = [
        ("POST", page.incidents, declaration),
        ("GET", page.incidents, None),
        ("GET", one, None),
        ("POST", f"{one}/updates", update),
        ("PATCH", one, {"title": "Mine now"}),
        ("DELETE", one, None),
    ]
    for method, url, body in calls:
        response = await api.request(method, url, json=body, headers=world.bob.headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json() == {"error": "Status page not found"}
    # Their incident under a page of ours: not found either, whatever its id.
    for method, url, body in calls[2:]:
        url = url.replace(incident["id"], their_incident["id"])
        response = await api.request(method, url, json=body, headers=world.alice.headers)
        assert response.status_code == 404, (method, url, response.text)
    missing = await api.get("/api/status-pages/no-such-page/incidents", headers=world.alice.headers)
    assert missing.status_code == 404 and missing.json() == {"error": "Status page not found"}
    assert await fetch(api, page, incident["id"], world.alice) == incident
    assert await fetch(api, theirs, their_incident["id"], world.bob) == their_incident


async def test_an_incident_of_another_page_of_the_organization_is_a_404_under_this_slug(
    api: httpx.AsyncClient, world: World, database: Database, page: Page
) -> None:
    other = await insert_page(database, world.org_a, "other-status", "Elsewhere")
    incident = await declare(api, other, world.alice)
    wrong = f"{page.incidents}/{incident['id']}"
    for method, url, body in [
        ("GET", wrong, None),
        ("POST", f"{wrong}/updates", {"status": "resolved", "message": "x"}),
        ("PATCH", wrong, {"title": "Moved"}),
        ("DELETE", wrong, None),
    ]:
        response = await api.request(method, url, json=body, headers=world.alice.headers)
        assert response.status_code == 404, (method, url)
        assert response.json() == {"error": "Incident not found"}
    assert (await api.get(page.incidents, headers=world.alice.headers)).json()["data"] == []
    assert await fetch(api, other, incident["id"], world.alice) == incident


async def test_a_viewer_reads_but_cannot_write(api: httpx.AsyncClient, world: World, page: Page) -> None:
    incident = await declare(api, page, world.alice)
    one = f"{page.incidents}/{incident['id']}"
    for method, url, body in [
        ("POST", page.incidents, {"title": "Down", "impact": "major", "message": "x"}),
        ("POST", f"{one}/updates", {"status": "resolved", "message": "x"}),
        ("PATCH", one, {"title": "Mine"}),
        ("DELETE", one, None),
    ]:
        response = await api.request(method, url, json=body, headers=world.vera.headers)
        assert response.status_code == 403, (method, url)
        assert set(response.json()) == {"error"}
    assert (await api.get(page.incidents, headers=world.vera.headers)).status_code == 200
    assert await fetch(api, page, incident["id"], world.vera) == incident


async def test_without_an_organization_or_a_key_nothing_is_reachable(
    api: httpx.AsyncClient, world: World, page: Page
) -> None:
    incident = await declare(api, page, world.alice)
    one = f"{page.incidents}/{incident['id']}"
    for url in (page.incidents, one):
        assert (await api.get(url, headers=world.nora.headers)).status_code == 404
        assert (await api.get(url)).status_code == 401
    response = await api.post(page.incidents, json={"title": "x", "impact": "none", "message": "x"})
    assert response.status_code == 401
