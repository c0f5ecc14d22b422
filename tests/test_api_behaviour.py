"""Behaviour every endpoint shares: JSON errors, 400 for bad input, 413, no leaked tracebacks, 429."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import update

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.models import Organization
from tests import tools

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_unknown_routes_and_wrong_methods_answer_json(api, world):
    missing = await api.get("/api/nope", headers=world.alice.headers)
    assert missing.status_code == 404 and missing.json() == {"error": "Not found"}
    wrong = await api.put("/api/organization", headers=world.alice.headers, json={})
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method not allowed"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b"", "Request body is required"),
    ],
)
async def test_bad_bodies_are_400_with_a_reason(api, world, content, expected):
    response = await api.post(
        "/api/api-keys", content=content, headers={**world.alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert expected in response.json()["error"]


async def test_validation_errors_are_400_naming_field_and_rule(api, world):
    response = await api.post("/api/api-keys", json={"name": "x" * 101}, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"] == "name: String should have at most 100 characters"


async def test_oversized_bodies_get_413(api, world):
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = await api.post(
        "/api/api-keys", content=big, headers={**world.alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and "too large" in response.json()["error"]

    async def chunks():  # no Content-Length: the cap must count streamed bytes
        for _ in range(20):
            yield b"x" * 65536

    streamed = await api.post(
        "/api/api-keys", content=chunks(), headers={**world.alice.headers, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_an_unexpected_error_is_a_500_without_a_traceback(settings, runtime, world):
    app = create_app(settings, runtime)

    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/boom")
    assert response.status_code == 500
    [request_id] = response.headers.get_list("X-Request-ID")  # once: RequestEdge marks the 500 too
    assert response.json() == {"error": "Internal server error", "requestId": request_id}
    assert "secret" not in response.text and "Traceback" not in response.text


async def _set_plan(database, org_id: str, plan: str) -> None:
    async with database.session() as session:
        await session.execute(update(Organization).where(Organization.id == org_id).values(plan=plan))
        await session.commit()


@pytest.mark.parametrize(
    ("plan", "limit"), [("FREE", 60), ("PRO", 300), ("BUSINESS", 1000), ("ENTERPRISE", 5000)]
)
async def test_rate_limit_headers_follow_the_plan(api, world, database, plan, limit):
    await _set_plan(database, world.org_a, plan)
    response = await api.get("/api/organization", headers=world.alice.headers)
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == str(limit - 1)
    assert int(response.headers["X-RateLimit-Reset"]) > 0


async def test_the_organization_shares_one_budget_and_gets_429(api, world):
    for i in range(60):
        account = world.alice if i % 2 else world.vera  # members spend the same budget
        response = await api.get("/api/organization", headers=account.headers)
        assert response.status_code == 200, response.text
    limited = await api.get("/api/team", headers=world.adam.headers)
    assert limited.status_code == 429
    assert "Rate limit exceeded" in limited.json()["error"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    # The other organization, and a user without one, have budgets of their own.
    assert (await api.get("/api/organization", headers=world.bob.headers)).status_code == 200
    assert (await api.get("/api/api-keys", headers=world.nora.headers)).headers["X-RateLimit-Limit"] == "60"


async def test_failed_authentication_is_rate_limited_per_client(api, world):
    for _ in range(60):
        assert (await api.get("/api/organization")).status_code == 401
    assert (await api.get("/api/organization")).status_code == 429
    # A valid key is unaffected: its budget is its organization's.
    assert (await api.get("/api/organization", headers=world.alice.headers)).status_code == 200


async def test_replicas_share_a_budget_through_redis(settings, database, world):
    import redis.asyncio as redis

    try:
        client = redis.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
    except Exception:
        tools.missing("Redis is not running on 127.0.0.1:6379 (apt-get install redis-server)")
    replicas = []
    for _ in range(2):
        rt = Runtime.build(settings.model_copy(update={"redis_url": REDIS_URL}), database)
        transport = httpx.ASGITransport(app=create_app(settings, rt), raise_app_exceptions=False)
        replicas.append(httpx.AsyncClient(transport=transport, base_url="http://t"))
    # Org ids are random per test run, so parallel runs on the same Redis never share a budget.
    statuses = await asyncio.gather(
        *(replicas[i % 2].get("/api/organization", headers=world.alice.headers) for i in range(61))
    )
    codes = sorted(r.status_code for r in statuses)
    assert codes.count(200) == 60 and codes.count(429) == 1
    for replica in replicas:
        await replica.aclose()


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        # curl -d: what plain `curl -d '{"name": "x"}'` sends.
        (
            "application/x-www-form-urlencoded",
            "Content-Type: must be application/json for a JSON body "
            "(got 'application/x-www-form-urlencoded')",
        ),
        ("text/plain", "Content-Type: must be application/json for a JSON body (got 'text/plain')"),
        ("multipart/form-data; boundary=x", "Content-Type: must be application/json for a JSON body"),
        (None, "Content-Type: header missing; send the JSON body with 'Content-Type: application/json'"),
    ],
)
async def test_a_json_body_without_the_json_content_type_names_the_header(api, world, content_type, expected):
    headers = dict(world.alice.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await api.post("/api/api-keys", content=b'{"name": "from curl"}', headers=headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(expected), response.json()
    keys = (await api.get("/api/api-keys", headers=world.alice.headers)).json()["data"]
    assert [key["name"] for key in keys] == ["Default"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
async def test_json_content_types_with_parameters_or_suffixes_are_read(api, world, content_type):
    response = await api.post(
        "/api/api-keys",
        content=b'{"name": "typed"}',
        headers={**world.alice.headers, "Content-Type": content_type},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/api/incidents?monitorId=mon%00x&status=resolved", "monitorId"),
        ("/api/monitors/xyz/checks?from=2025%0006-01", "from"),
        ("/api/incidents?status=open&page=1&%00=1", "query"),
    ],
)
async def test_a_nul_in_a_query_parameter_is_a_400_naming_it(api, world, path: str, named: str) -> None:
    # PostgreSQL's text holds no NUL: the incidents list answered 500 (found by the long fuzz run).
    response = await api.get(path, headers=world.alice.headers)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": f"{named}: must not contain a NUL character"}
