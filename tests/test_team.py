"""/api/team: members by join date; OWNER and ADMIN invite existing users and remove members."""

from __future__ import annotations

import asyncio

import pytest

from tests.spec import assert_shape, example


async def test_list_is_ordered_by_join_date(api, world):
    response = await api.get("/api/team", headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/team"))
    assert [(m["email"], m["role"]) for m in body["data"]] == [
        ("alice@a.example", "OWNER"),
        ("adam@a.example", "ADMIN"),
        ("vera@a.example", "VIEWER"),
    ]
    assert body["data"][0]["userId"] == world.alice.user_id and body["data"][0]["id"] == world.alice.member_id


async def test_each_organization_sees_only_its_members(api, world):
    members = (await api.get("/api/team", headers=world.bob.headers)).json()["data"]
    assert [m["email"] for m in members] == ["bob@b.example"]


async def test_without_an_organization_the_team_is_404(api, world):
    assert (await api.get("/api/team", headers=world.nora.headers)).status_code == 404


@pytest.mark.parametrize("inviter", ["alice", "adam"])
async def test_owner_and_admin_invite_an_existing_user(api, world, inviter):
    response = await api.post(
        "/api/team/invite",
        json={"email": "NORA@example.com", "role": "VIEWER"},
        headers=getattr(world, inviter).headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, example("POST", "/api/team/invite"))
    assert body["message"] == "Team member invited successfully"
    assert body["data"]["email"] == "nora@example.com" and body["data"]["role"] == "VIEWER"
    assert body["data"]["userId"] == world.nora.user_id
    org = (await api.get("/api/organization", headers=world.nora.headers)).json()["data"]
    assert org["id"] == world.org_a
    # The new VIEWER is read-only at once.
    assert (
        await api.post("/api/api-keys", json={"name": "n"}, headers=world.nora.headers)
    ).status_code == 403


async def test_invite_an_unknown_email_is_404(api, world):
    response = await api.post(
        "/api/team/invite", json={"email": "ghost@example.com", "role": "ADMIN"}, headers=world.alice.headers
    )
    assert response.status_code == 404
    assert "ghost@example.com" in response.json()["error"]


@pytest.mark.parametrize("email", ["bob@b.example", "adam@a.example", "alice@a.example"])
async def test_invite_a_member_of_any_organization_is_409(api, world, email):
    response = await api.post(
        "/api/team/invite", json={"email": email, "role": "ADMIN"}, headers=world.alice.headers
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"role": "ADMIN"}, "email: field required"),
        ({"email": "not-an-email", "role": "ADMIN"}, "email: must be a valid email address"),
        ({"email": "a@b", "role": "ADMIN"}, "email:"),
        ({"email": 12, "role": "ADMIN"}, "email:"),
        ({"email": None, "role": "ADMIN"}, "email: must not be null"),
        ({"email": "x" * 320 + "@example.com", "role": "ADMIN"}, "email:"),
        ({"email": "nora@example.com"}, "role: field required"),
        ({"email": "nora@example.com", "role": "OWNER"}, "role:"),
        ({"email": "nora@example.com", "role": "admin"}, "role:"),
        ({"email": "nora@example.com", "role": 1}, "role:"),
        ({"email": "nora@example.com", "role": "ADMIN", "name": "x"}, "name: unknown field"),
        ({"email": "nora\x07@example.com", "role": "ADMIN"}, "email: must not contain control characters"),
        ({"email": "nora@example.com\x1b", "role": "ADMIN"}, "email: must not contain control characters"),
    ],
)
async def test_invite_validates_every_field(api, world, body, error):
    response = await api.post("/api/team/invite", json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert error in response.json()["error"]


async def test_viewer_cannot_invite_or_remove(api, world):
    invite = await api.post(
        "/api/team/invite", json={"email": "nora@example.com", "role": "ADMIN"}, headers=world.vera.headers
    )
    assert invite.status_code == 403
    remove = await api.delete(f"/api/team/{world.adam.member_id}", headers=world.vera.headers)
    assert remove.status_code == 403
    assert len((await api.get("/api/team", headers=world.alice.headers)).json()["data"]) == 3


async def test_remove_a_member(api, world):
    response = await api.delete(f"/api/team/{world.vera.member_id}", headers=world.adam.headers)
    assert response.status_code == 200
    assert response.json() == example("DELETE", "/api/team/:memberId")
    emails = [m["email"] for m in (await api.get("/api/team", headers=world.alice.headers)).json()["data"]]
    assert "vera@a.example" not in emails
    # The removed user keeps their account but no longer sees the organization.
    assert (await api.get("/api/team", headers=world.vera.headers)).status_code == 404


async def test_cannot_remove_yourself(api, world):
    response = await api.delete(f"/api/team/{world.adam.member_id}", headers=world.adam.headers)
    assert response.status_code == 400
    assert "yourself" in response.json()["error"]


async def test_cannot_remove_the_owner(api, world):
    response = await api.delete(f"/api/team/{world.alice.member_id}", headers=world.adam.headers)
    assert response.status_code == 403
    assert "owner" in response.json()["error"]


@pytest.mark.parametrize("member_id", ["bob", "unknown"])
async def test_removing_outside_the_organization_is_404(api, world, member_id):
    target = world.bob.member_id if member_id == "bob" else "mem_doesnotexist"
    response = await api.delete(f"/api/team/{target}", headers=world.alice.headers)
    assert response.status_code == 404
    assert (await api.get("/api/team", headers=world.bob.headers)).json()["data"][0][
        "id"
    ] == world.bob.member_id


async def test_concurrent_invites_of_one_user_give_one_member(api, world):
    """Invites that all pass the "already a member" check before one of them commits: the unique
    membership decides, and the losers hear 409, not 500 (on PostgreSQL they used to)."""
    inviters = [world.alice, world.adam, world.bob] * 3
    responses = await asyncio.gather(
        *(
            api.post(
                "/api/team/invite",
                json={"email": "nora@example.com", "role": "VIEWER"},
                headers=inviter.headers,
            )
            for inviter in inviters
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (len(inviters) - 1), [r.text for r in responses]
    conflicts = {response.json()["error"] for response in responses if response.status_code == 409}
    assert conflicts == {"email: 'nora@example.com' is already a member of an organization"}
    org = (await api.get("/api/organization", headers=world.nora.headers)).json()["data"]
    assert org["id"] in (world.org_a, world.org_b)
