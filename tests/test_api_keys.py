"""/api/api-keys: a user's own keys, masked in lists, shown in full once, revocable."""

from __future__ import annotations

import re

import pytest

from tests.spec import assert_shape, example

MASKED = re.compile(r"^traxo_[A-Za-z0-9_-]{2}\.\.\.[A-Za-z0-9_-]{4}$")


async def test_list_shows_masked_keys(api, world):
    response = await api.get("/api/api-keys", headers=world.alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/api-keys"))
    (key,) = body["data"]
    assert MASKED.match(key["key"])
    assert key["key"] == f"{world.alice.key[:8]}...{world.alice.key[-4:]}"
    assert key["expiresAt"] is None and key["name"] == "Default"


async def test_create_shows_the_full_key_once(api, world):
    response = await api.post("/api/api-keys", json={"name": "CI/CD Pipeline"}, headers=world.alice.headers)
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, example("POST", "/api/api-keys"))
    created = body["data"]
    assert created["key"].startswith("traxo_") and len(created["key"]) >= 6 + 43
    assert created["lastUsed"] is None and created["id"].startswith("key_")
    works = await api.get("/api/organization", headers={"Authorization": f"Bearer {created['key']}"})
    assert works.status_code == 200
    listed = (await api.get("/api/api-keys", headers=world.alice.headers)).json()["data"]
    assert created["key"] not in str(listed)
    assert {k["id"] for k in listed} >= {created["id"]}


async def test_keys_are_private_to_their_user(api, world):
    mine = (await api.get("/api/api-keys", headers=world.alice.headers)).json()["data"]
    theirs = (await api.get("/api/api-keys", headers=world.adam.headers)).json()["data"]
    assert {k["id"] for k in mine}.isdisjoint({k["id"] for k in theirs})


async def test_revoke(api, world):
    created = (await api.post("/api/api-keys", json={"name": "temp"}, headers=world.alice.headers)).json()[
        "data"
    ]
    response = await api.delete(f"/api/api-keys/{created['id']}", headers=world.alice.headers)
    assert response.status_code == 200
    assert response.json() == example("DELETE", "/api/api-keys/:id")
    listed = (await api.get("/api/api-keys", headers=world.alice.headers)).json()["data"]
    assert created["id"] not in {k["id"] for k in listed}
    again = await api.delete(f"/api/api-keys/{created['id']}", headers=world.alice.headers)
    assert again.status_code == 404 and again.json() == {"error": "API key not found"}


async def test_revoking_someone_elses_key_is_404_and_leaves_it_working(api, world):
    alice_keys = (await api.get("/api/api-keys", headers=world.alice.headers)).json()["data"]
    for intruder in (world.bob, world.adam):
        response = await api.delete(f"/api/api-keys/{alice_keys[0]['id']}", headers=intruder.headers)
        assert response.status_code == 404
    assert (await api.get("/api/organization", headers=world.alice.headers)).status_code == 200


async def test_a_user_without_organization_manages_keys(api, world):
    response = await api.post("/api/api-keys", json={"name": "mine"}, headers=world.nora.headers)
    assert response.status_code == 201


async def test_viewer_reads_but_cannot_write(api, world):
    assert (await api.get("/api/api-keys", headers=world.vera.headers)).status_code == 200
    assert (
        await api.post("/api/api-keys", json={"name": "x"}, headers=world.vera.headers)
    ).status_code == 403
    key_id = (await api.get("/api/api-keys", headers=world.vera.headers)).json()["data"][0]["id"]
    assert (await api.delete(f"/api/api-keys/{key_id}", headers=world.vera.headers)).status_code == 403


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "name: field required"),
        ({"name": ""}, "name:"),
        ({"name": "  "}, "name:"),
        ({"name": "x" * 101}, "name: String should have at most 100 characters"),
        ({"name": 5}, "name:"),
        ({"name": None}, "name: must not be null"),
        ({"name": "ok", "expiresAt": "2030-01-01T00:00:00Z"}, "expiresAt: unknown field"),
        ({"name": "CI\x08 key"}, "name: must not contain control characters"),
        ({"name": "CI\r\nkey"}, "name: must not contain control characters"),
        ({"name": "CI\x00"}, "name: must not contain NUL characters"),
    ],
)
async def test_create_validates_name(api, world, body, error):
    response = await api.post("/api/api-keys", json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert error in response.json()["error"]


async def test_a_name_with_unicode_letters_and_inner_spaces_is_kept(api, world):
    response = await api.post(
        "/api/api-keys", json={"name": "Déploiement  CI — ünïcode"}, headers=world.alice.headers
    )
    assert response.status_code == 201
    assert response.json()["data"]["name"] == "Déploiement  CI — ünïcode"
