"""/api/organization: one organization per user, unique slugs, shapes as the reference writes them."""

from __future__ import annotations

import asyncio

import pytest

from tests.spec import assert_shape, example


async def test_get_returns_the_callers_organization(api, world):
    response = await api.get("/api/organization", headers=world.alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/organization"))
    assert body["data"] | {"createdAt": None} == {
        "id": world.org_a,
        "name": "Org-A",
        "slug": "org-a",
        "plan": "FREE",
        "createdAt": None,
    }
    other = (await api.get("/api/organization", headers=world.bob.headers)).json()["data"]
    assert other["id"] == world.org_b and other["slug"] == "org-b"


async def test_get_without_an_organization_is_404(api, world):
    response = await api.get("/api/organization", headers=world.nora.headers)
    assert response.status_code == 404
    assert "create one" in response.json()["error"]


async def test_create_makes_the_caller_owner(api, world):
    response = await api.post(
        "/api/organization", json={"name": "Nora Inc", "slug": "nora-inc"}, headers=world.nora.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, example("POST", "/api/organization"))
    assert body["data"]["name"] == "Nora Inc" and body["data"]["id"].startswith("org_")
    team = (await api.get("/api/team", headers=world.nora.headers)).json()["data"]
    assert [(m["email"], m["role"]) for m in team] == [("nora@example.com", "OWNER")]
    org = (await api.get("/api/organization", headers=world.nora.headers)).json()["data"]
    assert org["plan"] == "FREE"


async def test_a_second_organization_is_409(api, world):
    response = await api.post(
        "/api/organization", json={"name": "Again", "slug": "again"}, headers=world.bob.headers
    )
    assert response.status_code == 409
    assert "only belong to one" in response.json()["error"]


async def test_a_taken_slug_is_409(api, world):
    response = await api.post(
        "/api/organization", json={"name": "Copy", "slug": "org-b"}, headers=world.nora.headers
    )
    assert response.status_code == 409
    assert response.json()["error"].startswith("slug:")


async def test_concurrent_creations_with_one_slug_give_one_organization(api, world, database):
    from tests.conftest import make_account

    others = [await make_account(database, f"racer{i}@example.com", f"Racer {i}") for i in range(4)]
    responses = await asyncio.gather(
        *(
            api.post("/api/organization", json={"name": "Race", "slug": "race"}, headers=account.headers)
            for account in others
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]


BAD_ORGANIZATION_BODIES = [
    ({"slug": "ok-slug"}, "name: field required"),
    ({"name": "", "slug": "ok-slug"}, "name:"),
    ({"name": "   ", "slug": "ok-slug"}, "name:"),
    ({"name": "x" * 101, "slug": "ok-slug"}, "name:"),
    ({"name": 42, "slug": "ok-slug"}, "name:"),
    ({"name": None, "slug": "ok-slug"}, "name: must not be null"),
    ({"name": "Ok"}, "slug: field required"),
    ({"name": "Ok", "slug": "Has-Caps"}, "slug:"),
    ({"name": "Ok", "slug": "has space"}, "slug:"),
    ({"name": "Ok", "slug": "-leading"}, "slug:"),
    ({"name": "Ok", "slug": "trailing-"}, "slug:"),
    ({"name": "Ok", "slug": "double--hyphen"}, "slug:"),
    ({"name": "Ok", "slug": "a"}, "slug:"),
    ({"name": "Ok", "slug": "x" * 51}, "slug:"),
    ({"name": "Ok", "slug": 7}, "slug:"),
    ({"name": "Ok", "slug": "ok-slug", "plan": "ENTERPRISE"}, "plan: unknown field"),
    ({"name": "Acme\x07", "slug": "ok-slug"}, "name: must not contain control characters"),
    ({"name": "Ac\nme", "slug": "ok-slug"}, "name: must not contain control characters"),
    ({"name": "Acme\x1b[31m", "slug": "ok-slug"}, "name: must not contain control characters"),
    ({"name": "Acme\x7f", "slug": "ok-slug"}, "name: must not contain control characters"),
    ({"name": "Acme\u0085Corp", "slug": "ok-slug"}, "name: must not contain control characters"),
]


@pytest.mark.parametrize(("body", "error"), BAD_ORGANIZATION_BODIES)
async def test_create_validates_every_field(api, world, body, error):
    response = await api.post("/api/organization", json=body, headers=world.nora.headers)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert (await api.get("/api/organization", headers=world.nora.headers)).status_code == 404


@pytest.mark.parametrize("account", ["alice", "adam"])
async def test_owner_and_admin_update(api, world, account):
    headers = getattr(world, account).headers
    response = await api.patch("/api/organization", json={"name": "Acme Corporation"}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("PATCH", "/api/organization"))
    assert body["data"] == {"id": world.org_a, "name": "Acme Corporation", "slug": "org-a", "plan": "FREE"}
    renamed = await api.patch("/api/organization", json={"slug": "acme"}, headers=headers)
    assert renamed.json()["data"]["slug"] == "acme" and renamed.json()["data"]["name"] == "Acme Corporation"


async def test_update_changes_only_the_callers_organization(api, world):
    await api.patch("/api/organization", json={"name": "Renamed"}, headers=world.alice.headers)
    assert (await api.get("/api/organization", headers=world.bob.headers)).json()["data"]["name"] == "Org-B"


async def test_viewer_cannot_update(api, world):
    response = await api.patch("/api/organization", json={"name": "Nope"}, headers=world.vera.headers)
    assert response.status_code == 403
    assert "VIEWER" in response.json()["error"]


async def test_update_to_a_taken_slug_is_409_and_same_slug_is_fine(api, world):
    taken = await api.patch("/api/organization", json={"slug": "org-b"}, headers=world.alice.headers)
    assert taken.status_code == 409
    same = await api.patch("/api/organization", json={"slug": "org-a"}, headers=world.alice.headers)
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"name": ""}, "name:"),
        ({"name": "x" * 101}, "name:"),
        ({"name": None}, "name: must not be null"),
        ({"name": ["list"]}, "name:"),
        ({"slug": "Bad Slug"}, "slug:"),
        ({"slug": None}, "slug: must not be null"),
        ({"slug": 1}, "slug:"),
        ({"plan": "ENTERPRISE"}, "plan: unknown field"),
        ({"id": "org_x"}, "id: unknown field"),
        ({"name": "Re\tnamed"}, "name: must not contain control characters"),
        ({"name": "Renamed\x00"}, "name: must not contain NUL characters"),
    ],
)
async def test_update_validates_every_field(api, world, body, error):
    response = await api.patch("/api/organization", json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert (await api.get("/api/organization", headers=world.alice.headers)).json()["data"]["slug"] == "org-a"


async def test_update_without_an_organization_is_404(api, world):
    response = await api.patch("/api/organization", json={"name": "X"}, headers=world.nora.headers)
    assert response.status_code == 404
