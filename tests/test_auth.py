"""Authentication by API key: every failure is a JSON 401; keys are stored hashed; lastUsed is kept."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from control_plane.core.timefmt import utcnow
from control_plane.models import ApiKey
from tests.waiting import eventually


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dHJheG86eA==",
        "Token traxo_abc",
        "Bearer abc123",
        "Bearer traxo_",
        "Bearer traxo_doesnotexist000000000000000000000000000000",
        "Bearer traxo_" + "x" * 500,
    ],
)
async def test_it_rejects_missing_malformed_and_unknown_keys(api, world, header):
    headers = {} if header is None else {"Authorization": header}
    response = await api.get("/api/organization", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"} and "API key" in body["error"]


async def test_it_accepts_a_valid_key_with_any_scheme_case(api, world):
    response = await api.get("/api/organization", headers={"Authorization": f"bearer {world.alice.key}"})
    assert response.status_code == 200


async def test_a_revoked_key_fails_on_its_next_request(api, world):
    created = await api.post("/api/api-keys", json={"name": "temp"}, headers=world.alice.headers)
    new_key = created.json()["data"]
    headers = {"Authorization": f"Bearer {new_key['key']}"}
    assert (await api.get("/api/organization", headers=headers)).status_code == 200
    revoked = await api.delete(f"/api/api-keys/{new_key['id']}", headers=world.alice.headers)
    assert revoked.status_code == 200
    response = await api.get("/api/organization", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or revoked API key"}


async def test_an_expired_key_is_rejected(api, world, database):
    async with database.session() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.user_id == world.alice.user_id).values(expires_at=utcnow())
        )
        await session.commit()
    assert (await api.get("/api/organization", headers=world.alice.headers)).status_code == 401


async def test_keys_are_stored_only_as_sha256(api, world, database):
    async with database.session() as session:
        keys = list(await session.scalars(select(ApiKey).where(ApiKey.user_id == world.alice.user_id)))
    assert len(keys) == 1
    stored = keys[0]
    assert stored.key_hash == hashlib.sha256(world.alice.key.encode()).hexdigest()
    columns = [str(getattr(stored, c.key)) for c in ApiKey.__table__.columns]
    assert not any(world.alice.key in value for value in columns)
    assert stored.prefix == world.alice.key[:8] and stored.last4 == world.alice.key[-4:]


async def test_last_used_is_kept_without_a_write_per_request(api, world, database, runtime):
    async def last_used():
        async with database.session() as session:
            return await session.scalar(
                select(ApiKey.last_used_at).where(ApiKey.user_id == world.alice.user_id)
            )

    assert await last_used() is None
    await api.get("/api/organization", headers=world.alice.headers)
    first = await last_used()
    assert first is not None and utcnow() - first < timedelta(seconds=10)
    for _ in range(3):
        await api.get("/api/organization", headers=world.alice.headers)
    assert await last_used() == first  # within the resolution: no write

    stale = first - timedelta(minutes=5)
    async with database.session() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.user_id == world.alice.user_id).values(last_used_at=stale)
        )
        await session.commit()
    runtime.principals.clear()  # as on a replica that has not seen this key yet
    await api.get("/api/organization", headers=world.alice.headers)
    assert await last_used() > first

    listed = (await api.get("/api/api-keys", headers=world.alice.headers)).json()["data"]
    assert listed[0]["lastUsed"] is not None


@pytest.mark.postgres_only
async def test_a_revocation_reaches_other_replicas(settings, database, world):
    """Replica B has the key cached; a revocation through replica A must reach it (LISTEN/NOTIFY)."""
    import asyncio

    from control_plane.api.app import create_app
    from control_plane.api.deps import Runtime
    from control_plane.db import Database

    other_db = Database(database.url)
    await other_db.start()
    await asyncio.wait_for(other_db.changes.wait_connected(), 10)
    replicas = []
    try:
        for db in (database, other_db):
            transport = httpx.ASGITransport(app=create_app(settings, Runtime.build(settings, db)))
            replicas.append(httpx.AsyncClient(transport=transport, base_url="http://t"))
        a, b = replicas
        key = (await a.post("/api/api-keys", json={"name": "k"}, headers=world.alice.headers)).json()["data"]
        headers = {"Authorization": f"Bearer {key['key']}"}
        assert (await b.get("/api/organization", headers=headers)).status_code == 200  # now cached on B
        assert (await a.delete(f"/api/api-keys/{key['id']}", headers=world.alice.headers)).status_code == 200
        await eventually(
            lambda: refused(b.get("/api/organization", headers=headers)), 2, "replica B refuses a revoked key"
        )
        # Membership changes reach B's cached principal the same way.
        assert (await b.get("/api/team", headers=world.vera.headers)).status_code == 200
        assert (
            await a.delete(f"/api/team/{world.vera.member_id}", headers=world.alice.headers)
        ).status_code == 200
        await eventually(
            lambda: refused(b.get("/api/team", headers=world.vera.headers)),
            2,
            "replica B drops a removed member",
        )
    finally:
        for replica in replicas:
            await replica.aclose()
        await other_db.dispose()


async def test_a_plan_change_applies_to_the_next_request(api, world, database):
    """Cached principals carry the plan; changing it through a service empties the cache."""
    from control_plane.core import changes
    from control_plane.models import Organization
    from control_plane.services.accounts import AUTH_TOPIC

    assert (await api.get("/api/organization", headers=world.alice.headers)).json()["data"]["plan"] == "FREE"
    async with database.session() as session:
        await session.execute(update(Organization).where(Organization.id == world.org_a).values(plan="PRO"))
        await changes.publish(session, AUTH_TOPIC)
        await session.commit()
    response = await api.get("/api/organization", headers=world.alice.headers)
    assert response.json()["data"]["plan"] == "PRO" and response.headers["X-RateLimit-Limit"] == "300"


@pytest.mark.parametrize("header", ["{key}", " {key}", "{key} "])
async def test_a_key_without_the_bearer_scheme_says_the_scheme_is_missing(api, world, header):
    response = await api.get(
        "/api/organization", headers={"Authorization": header.format(key=world.alice.key)}
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": 'Authorization header must be "Bearer <API key>": the Bearer scheme is missing'
    }


@pytest.mark.parametrize("scheme", ["Token", "Basic", "ApiKey"])
async def test_another_scheme_is_named_in_the_401(api, world, scheme):
    response = await api.get("/api/organization", headers={"Authorization": f"{scheme} {world.alice.key}"})
    assert response.status_code == 401
    assert response.json() == {
        "error": f'Authorization header must be "Bearer <API key>": scheme {scheme!r} is not supported'
    }


async def test_a_key_without_the_scheme_counts_as_a_failed_authentication(api, world):
    bare = {"Authorization": world.alice.key}
    for _ in range(60):
        assert (await api.get("/api/organization", headers=bare)).status_code == 401
    assert (await api.get("/api/organization", headers=bare)).status_code == 429


async def refused(request: Awaitable[httpx.Response]) -> bool:
    return (await request).status_code != 200
