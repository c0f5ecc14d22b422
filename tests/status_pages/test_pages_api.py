"""/api/status-pages (the organization's side): the reference's fields, every field's 400 naming it,
slugs and domains unique across organizations (409), monitors of the caller's organization only,
components replaced, renamed, ordered and grouped, the plan's premium fields, roles and tenancy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from control_plane.db import Database
from control_plane.models.status_pages import StatusPageComponent
from tests.conftest import World
from tests.factories import insert_monitor
from tests.monitor_tools import set_plan
from tests.spec import ISO_MS, assert_shape, example
from tests.status_pages.support import (
    COMPONENT_ADDITIONS,
    PAGE_ADDITIONS,
    assert_page_shape,
    create_page,
    with_additions,
)

PAGES = "/api/status-pages"


async def monitors_of(database: Database, org_id: str, *names: str) -> list[str]:
    return [(await insert_monitor(database, org_id, name=name)).id for name in names]


async def component_count(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(StatusPageComponent)) or 0)


# --- the reference ------------------------------------------------------------------------------


async def test_it_creates_a_page_as_the_reference_shows(api, world, database):
    api_id, web_id = await monitors_of(database, world.org_a, "Production API", "Web App")
    response = await api.post(
        PAGES,
        json={"name": "Acme Status", "slug": "acme-status", "monitors": [api_id, web_id]},
        headers=world.alice.headers,
    )
    assert response.status_code == 201, response.text
    assert_page_shape(response.json(), "POST")
    page = response.json()["data"]
    assert page["id"].startswith("sp_") and page["orgId"] == world.org_a
    assert (page["name"], page["slug"], page["customDomain"], page["isPublic"]) == (
        "Acme Status",
        "acme-status",
        None,
        True,
    )
    assert ISO_MS.match(page["createdAt"])
    assert [(c["monitorId"], c["displayName"], c["order"], c["group"]) for c in page["components"]] == [
        (api_id, "Production API", 0, None),
        (web_id, "Web App", 1, None),
    ]
    assert all(component["id"].startswith("spc_") for component in page["components"])


async def test_it_lists_the_organizations_pages_with_their_monitors(api, world, database):
    (api_id,) = await monitors_of(database, world.org_a, "Production API")
    (bob_monitor,) = await monitors_of(database, world.org_b, "Bob's")
    mine = await create_page(api, world.alice, monitors=[api_id])
    await create_page(api, world.bob, slug="bob-status", monitors=[bob_monitor])
    response = await api.get(PAGES, headers=world.vera.headers)
    assert response.status_code == 200
    assert_page_shape(response.json(), "GET")
    (listed,) = response.json()["data"]
    assert listed["id"] == mine["id"]
    assert listed["components"][0]["monitor"] == {
        "id": api_id,
        "name": "Production API",
        "url": "https://example.com/health",
    }
    assert [page["slug"] for page in (await api.get(PAGES, headers=world.bob.headers)).json()["data"]] == [
        "bob-status"
    ]


async def test_it_updates_a_page_as_the_reference_shows(api, world, database):
    await create_page(api, world.alice)
    response = await api.put(
        f"{PAGES}/acme-status", json={"name": "Acme Status (Updated)"}, headers=world.adam.headers
    )
    assert response.status_code == 200, response.text
    expected = with_additions(
        example("PUT", "/api/status-pages/:slug"),
        {**PAGE_ADDITIONS, "orgId": "org_xxx", "createdAt": "2025-06-10T09:00:00.000Z"},
        COMPONENT_ADDITIONS,
    )
    assert_shape(response.json(), expected)
    assert response.json()["data"]["name"] == "Acme Status (Updated)"
    listed = (await api.get(PAGES, headers=world.alice.headers)).json()["data"][0]
    assert listed["name"] == "Acme Status (Updated)"


async def test_it_deletes_a_page_and_its_components(api, world, database):
    (api_id,) = await monitors_of(database, world.org_a, "Production API")
    await create_page(api, world.alice, monitors=[api_id])
    response = await api.delete(f"{PAGES}/acme-status", headers=world.alice.headers)
    assert response.status_code == 200
    assert response.json() == example("DELETE", "/api/status-pages/:slug")
    assert await component_count(database) == 0
    assert (await api.get(PAGES, headers=world.alice.headers)).json()["data"] == []
    assert (await api.delete(f"{PAGES}/acme-status", headers=world.alice.headers)).status_code == 404


async def test_it_sets_and_reads_back_every_optional_field(api, world, database):
    await set_plan(database, world.org_a, "BUSINESS")
    page = await create_page(
        api,
        world.alice,
        description="Our public services",
        customDomain="Status.Example.COM.",
        isPublic=False,
        hideBranding=True,
        customCss="body { color: red; }",
        logoUrl="https://cdn.example.com/logo.png",
        faviconUrl="http://cdn.example.com/favicon.ico",
    )
    assert {key: page[key] for key in PAGE_ADDITIONS if key != "updatedAt"} == {
        "description": "Our public services",
        "hideBranding": True,
        "customCss": "body { color: red; }",
        "logoUrl": "https://cdn.example.com/logo.png",
        "faviconUrl": "http://cdn.example.com/favicon.ico",
        "domainVerified": False,
    }
    assert (page["customDomain"], page["isPublic"]) == ("status.example.com", False)
    cleared = await api.put(
        f"{PAGES}/acme-status",
        json={
            "description": None,
            "customDomain": None,
            "customCss": None,
            "logoUrl": None,
            "faviconUrl": None,
        },
        headers=world.alice.headers,
    )
    assert cleared.status_code == 200, cleared.text
    data = cleared.json()["data"]
    assert [data[key] for key in ("description", "customDomain", "customCss", "logoUrl", "faviconUrl")] == [
        None
    ] * 5


# --- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": 5}, "name"),
        ({"slug": "Acme"}, "slug"),
        ({"slug": "acme_status"}, "slug"),
        ({"slug": "-acme"}, "slug"),
        ({"slug": "a" * 51}, "slug"),
        ({"slug": ""}, "slug"),
        ({"description": "x" * 501}, "description"),
        ({"customDomain": "not a domain"}, "customDomain"),
        ({"customDomain": "localhost"}, "customDomain"),
        ({"customDomain": "192.0.2.1"}, "customDomain"),
        ({"customDomain": "under_score.example.com"}, "customDomain"),
        ({"customDomain": "-bad.example.com"}, "customDomain"),
        ({"customDomain": "x" * 254}, "customDomain"),
        ({"monitors": "mon_x"}, "monitors"),
        ({"monitors": [5]}, "monitors.0"),
        ({"monitors": [{"displayName": "No monitor"}]}, "monitors.0.monitorId"),
        ({"monitors": [{"monitorId": "m", "order": -1}]}, "monitors.0.order"),
        ({"monitors": [{"monitorId": "m", "order": 10_001}]}, "monitors.0.order"),
        ({"monitors": [{"monitorId": "m", "displayName": ""}]}, "monitors.0.displayName"),
        ({"monitors": [{"monitorId": "m", "group": "x" * 101}]}, "monitors.0.group"),
        ({"monitors": [{"monitorId": "m", "colour": "red"}]}, "monitors.0.colour"),
        ({"monitors": ["m"] * 101}, "monitors"),
        ({"isPublic": "yes"}, "isPublic"),
        ({"hideBranding": 1}, "hideBranding"),
        ({"customCss": "x" * 50_001}, "customCss"),
        ({"logoUrl": "ftp://example.com/logo.png"}, "logoUrl"),
        ({"logoUrl": "javascript:alert(1)"}, "logoUrl"),
        ({"faviconUrl": "not a url"}, "faviconUrl"),
        ({"faviconUrl": "https://"}, "faviconUrl"),
        ({"name": None}, "name"),
        ({"monitors": None}, "monitors"),
        ({"theme": "dark"}, "theme"),
    ],
)
async def test_it_rejects_bad_values_naming_the_field(api, world, database, fields, named):
    body: dict[str, Any] = {"name": "Acme Status", "slug": "acme-status", "monitors": [], **fields}
    created = await api.post(PAGES, json=body, headers=world.alice.headers)
    assert created.status_code == 400, created.text
    assert created.json()["error"].startswith(f"{named}:") or f"; {named}:" in created.json()["error"]
    await create_page(api, world.alice, slug="existing")
    updated = await api.put(f"{PAGES}/existing", json=fields, headers=world.alice.headers)
    assert updated.status_code == 400, updated.text
    assert named in updated.json()["error"]


async def test_it_requires_name_slug_and_monitors_on_create(api, world):
    response = await api.post(PAGES, json={}, headers=world.alice.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "name:" in error and "slug:" in error and "monitors:" in error


async def test_a_slug_is_unique_across_organizations(api, world, database):
    await create_page(api, world.bob, slug="shared-name")
    response = await api.post(
        PAGES, json={"name": "Mine", "slug": "shared-name", "monitors": []}, headers=world.alice.headers
    )
    assert response.status_code == 409
    assert response.json() == {"error": "slug: 'shared-name' is already taken"}
    await create_page(api, world.alice, slug="mine")
    renamed = await api.put(f"{PAGES}/mine", json={"slug": "shared-name"}, headers=world.alice.headers)
    assert renamed.status_code == 409
    same = await api.put(f"{PAGES}/mine", json={"slug": "mine"}, headers=world.alice.headers)
    assert same.status_code == 200
    moved = await api.put(f"{PAGES}/mine", json={"slug": "mine-2"}, headers=world.alice.headers)
    assert moved.status_code == 200 and moved.json()["data"]["slug"] == "mine-2"
    assert (await api.put(f"{PAGES}/mine", json={}, headers=world.alice.headers)).status_code == 404


async def test_a_custom_domain_is_unique_across_organizations(api, world):
    await create_page(api, world.bob, slug="bob", customDomain="status.example.com")
    response = await api.post(
        PAGES,
        json={"name": "Mine", "slug": "mine", "monitors": [], "customDomain": "STATUS.example.com"},
        headers=world.alice.headers,
    )
    assert response.status_code == 409
    assert "customDomain" in response.json()["error"]
    await create_page(api, world.alice, slug="mine")
    taken = await api.put(
        f"{PAGES}/mine", json={"customDomain": "status.example.com."}, headers=world.alice.headers
    )
    assert taken.status_code == 409


async def test_it_names_unknown_and_foreign_monitors_alike(api, world, database):
    (mine,) = await monitors_of(database, world.org_a, "Mine")
    (bobs,) = await monitors_of(database, world.org_b, "Bob's")
    response = await api.post(
        PAGES,
        json={"name": "Acme", "slug": "acme", "monitors": [mine, bobs, "mon_nosuch"]},
        headers=world.alice.headers,
    )
    assert response.status_code == 400
    assert response.json() == {"error": f"monitors: no monitor {bobs!r}, 'mon_nosuch' in this organization"}
    await create_page(api, world.alice, slug="acme", monitors=[mine])
    replaced = await api.put(f"{PAGES}/acme", json={"monitors": [bobs]}, headers=world.alice.headers)
    assert replaced.status_code == 400 and bobs in replaced.json()["error"]
    listed = (await api.get(PAGES, headers=world.alice.headers)).json()["data"][0]
    assert [c["monitor"]["id"] for c in listed["components"]] == [mine]  # nothing changed


async def test_it_rejects_a_monitor_listed_twice(api, world, database):
    (mine,) = await monitors_of(database, world.org_a, "Mine")
    response = await api.post(
        PAGES,
        json={"name": "Acme", "slug": "acme", "monitors": [mine, {"monitorId": mine}]},
        headers=world.alice.headers,
    )
    assert response.status_code == 400
    assert response.json() == {"error": f"monitors: {mine!r} is listed more than once"}


async def test_premium_fields_need_the_business_plan(api, world, database):
    for fields in ({"hideBranding": True}, {"customCss": "body{}"}):
        response = await api.post(
            PAGES,
            json={"name": "Acme", "slug": "acme", "monitors": [], **fields},
            headers=world.alice.headers,
        )
        assert response.status_code == 403
        (field,) = fields
        assert response.json() == {"error": f"{field}: needs the BUSINESS or ENTERPRISE plan; yours is FREE"}
    page = await create_page(api, world.alice, slug="acme", hideBranding=False)  # the default: allowed
    assert page["hideBranding"] is False
    refused = await api.put(f"{PAGES}/acme", json={"hideBranding": True}, headers=world.alice.headers)
    assert refused.status_code == 403 and "FREE" in refused.json()["error"]
    await set_plan(database, world.org_a, "PRO")
    still = await api.put(f"{PAGES}/acme", json={"customCss": "a{}"}, headers=world.alice.headers)
    assert still.status_code == 403 and "PRO" in still.json()["error"]
    await set_plan(database, world.org_a, "ENTERPRISE")
    allowed = await api.put(
        f"{PAGES}/acme", json={"hideBranding": True, "customCss": "a{}"}, headers=world.alice.headers
    )
    assert allowed.status_code == 200
    assert (allowed.json()["data"]["hideBranding"], allowed.json()["data"]["customCss"]) == (True, "a{}")


# --- components ------------------------------------------------------------------------------------


async def test_put_with_monitors_replaces_the_component_list(api, world, database):
    one, two, three = await monitors_of(database, world.org_a, "One", "Two", "Three")
    page = await create_page(api, world.alice, monitors=[one, two])
    kept_id = page["components"][1]["id"]
    response = await api.put(
        f"{PAGES}/acme-status", json={"monitors": [three, two]}, headers=world.alice.headers
    )
    assert response.status_code == 200, response.text
    components = response.json()["data"]["components"]
    assert [(c["monitorId"], c["order"]) for c in components] == [(three, 0), (two, 1)]
    assert components[1]["id"] == kept_id  # declared incidents name components by id
    assert await component_count(database) == 2
    emptied = await api.put(f"{PAGES}/acme-status", json={"monitors": []}, headers=world.alice.headers)
    assert emptied.json()["data"]["components"] == []
    untouched = await api.put(f"{PAGES}/acme-status", json={"name": "Renamed"}, headers=world.alice.headers)
    assert untouched.json()["data"]["components"] == []


async def test_components_are_renamed_ordered_and_grouped(api, world, database):
    one, two, three = await monitors_of(database, world.org_a, "One", "Two", "Three")
    page = await create_page(
        api,
        world.alice,
        monitors=[
            {"monitorId": one, "displayName": "Public API", "group": "Backend", "order": 20},
            two,
            {"monitorId": three, "displayName": "Dashboard", "order": 5, "group": "Frontend"},
        ],
    )
    assert [(c["displayName"], c["order"], c["group"]) for c in page["components"]] == [
        ("Two", 1, None),
        ("Dashboard", 5, "Frontend"),
        ("Public API", 20, "Backend"),
    ]
    # Plain ids keep a component's name and group; an object changes what it sends; null ungroups.
    response = await api.put(
        f"{PAGES}/acme-status",
        json={
            "monitors": [one, {"monitorId": three, "group": None}, {"monitorId": two, "displayName": "Web"}]
        },
        headers=world.alice.headers,
    )
    assert response.status_code == 200, response.text
    assert [(c["displayName"], c["order"], c["group"]) for c in response.json()["data"]["components"]] == [
        ("Public API", 0, "Backend"),
        ("Dashboard", 1, None),
        ("Web", 2, None),
    ]
    listed = (await api.get(PAGES, headers=world.alice.headers)).json()["data"][0]["components"]
    assert [(c["displayName"], c["group"], c["monitor"]["name"]) for c in listed] == [
        ("Public API", "Backend", "One"),
        ("Dashboard", None, "Three"),
        ("Web", None, "Two"),
    ]


# --- roles and tenancy -------------------------------------------------------------------------------


async def test_a_viewer_reads_but_cannot_write(api, world):
    await create_page(api, world.alice, customDomain="status.example.com")
    writes = [
        ("POST", PAGES, {"name": "V", "slug": "v", "monitors": []}),
        ("PUT", f"{PAGES}/acme-status", {"name": "V"}),
        ("DELETE", f"{PAGES}/acme-status", None),
        ("POST", f"{PAGES}/acme-status/verify-domain", None),
    ]
    for method, path, body in writes:
        response = await api.request(method, path, json=body, headers=world.vera.headers)
        assert response.status_code == 403, (method, path)
        assert "VIEWER" in response.json()["error"]
    assert (await api.get(PAGES, headers=world.vera.headers)).status_code == 200


async def test_another_organizations_page_is_a_404_on_every_route(api, world, database):
    await create_page(api, world.bob, slug="bobs-page", customDomain="status.bob.example", isPublic=False)
    calls = [
        ("PUT", f"{PAGES}/bobs-page", {"name": "Mine now"}),
        ("DELETE", f"{PAGES}/bobs-page", None),
        ("POST", f"{PAGES}/bobs-page/verify-domain", None),
        ("GET", f"{PAGES}/bobs-page/verify-domain", None),
        ("GET", f"{PAGES}/bobs-page", None),  # private: another organization's key reads nothing
    ]
    for method, path, body in calls:
        response = await api.request(method, path, json=body, headers=world.alice.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "Status page not found"}
    assert (await api.get(PAGES, headers=world.alice.headers)).json()["data"] == []
    bobs = (await api.get(PAGES, headers=world.bob.headers)).json()["data"]
    assert [(page["name"], page["slug"]) for page in bobs] == [("Acme Status", "bobs-page")]


async def test_a_user_without_an_organization_gets_404(api: httpx.AsyncClient, world: World):
    response = await api.get(PAGES, headers=world.nora.headers)
    assert response.status_code == 404
    assert "organization" in response.json()["error"].lower()
