"""The ingest's POSTs are served before FastAPI's layers (api/ingest_fast_path.py): what every
request gets there too — the body cap, JSON errors, never a traceback — and everything else on
the ingest's paths still reaching the app."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import func, select

from control_plane.ai.ingest.committer import AiIngest
from control_plane.api.app import create_app
from control_plane.api.ingest_fast_path import IngestFastPath
from control_plane.models import AiEvent
from tests.ai.support import insert_llm_monitor

EVENT = {
    "provider": "openai",
    "model": "gpt-4o",
    "promptTokens": 150,
    "completionTokens": 80,
    "latencyMs": 1200,
}


async def test_a_body_over_the_limit_is_a_413_declared_or_streamed(api, world, database, settings):
    monitor = await insert_llm_monitor(database, world.org_a)
    too_big = b"x" * (settings.max_body_bytes + 1)
    declared = await api.post(f"/api/ai/ingest/{monitor.id}", content=too_big)
    assert declared.status_code == 413
    assert declared.json() == {"error": f"Request body too large (limit {settings.max_body_bytes} bytes)"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts what arrives
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    streamed = await api.post(f"/api/ai/ingest/{monitor.id}", content=chunks())
    assert streamed.status_code == 413
    assert streamed.headers["access-control-allow-origin"] == "*"


async def test_other_methods_and_paths_still_reach_the_app(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    got = await api.get(f"/api/ai/ingest/{monitor.id}")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    assert set(got.json()) == {"error"}
    deeper = await api.post(f"/api/ai/ingest/{monitor.id}/more", json=EVENT)
    assert deeper.status_code == 404 and set(deeper.json()) == {"error"}
    nul = await api.post("/api/ai/ingest/mon%00x", json=EVENT)
    assert nul.status_code == 404 and set(nul.json()) == {"error"}
    assert (await api.post(f"/api/ai/ingest/{monitor.id}", json=EVENT)).status_code == 200


async def test_an_unexpected_failure_is_a_json_500_without_a_traceback(world, database, settings, runtime):
    monitor = await insert_llm_monitor(database, world.org_a)

    class Broken(AiIngest):
        async def submit(self, monitor_id, events):  # type: ignore[no-untyped-def]
            raise RuntimeError("a secret detail")

    broken = dataclasses.replace(runtime, ai_ingest=Broken(runtime.db, settings, runtime.clock))
    transport = httpx.ASGITransport(app=create_app(settings, broken), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        response = await client.post(f"/api/ai/ingest/{monitor.id}", json=EVENT)
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert response.json() == {"error": "Internal server error", "requestId": request_id}
    assert "secret" not in response.text


async def test_domain_errors_and_limits_keep_their_status_and_headers(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a, is_active=False)
    paused = await api.post(f"/api/ai/ingest/{monitor.id}", json=EVENT)
    assert paused.status_code == 400 and "paused" in paused.json()["error"]
    assert (await api.post("/api/ai/ingest/mon_nothing", json=EVENT)).json() == {"error": "Monitor not found"}
    active = await insert_llm_monitor(database, world.org_a)
    batch = {"events": [EVENT] * 1000}  # FREE: 1,000 a day
    assert (await api.post(f"/api/ai/ingest/{active.id}", json=batch)).status_code == 200
    over = await api.post(f"/api/ai/ingest/{active.id}", json=EVENT)
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) >= 1
    assert over.headers["content-type"] == "application/json"


async def test_a_client_gone_before_its_body_ends_stores_nothing_and_is_answered_nothing(
    world, database, settings, runtime
):
    monitor = await insert_llm_monitor(database, world.org_a)

    async def app_behind(scope, receive, send):  # type: ignore[no-untyped-def]
        raise AssertionError("the ingest's POST reached the app")

    path = IngestFastPath(app_behind, runtime=runtime, max_body_bytes=settings.max_body_bytes)
    messages = iter(
        [
            {"type": "http.request", "body": b'{"provider": "openai", ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, object]] = []

    async def receive():  # type: ignore[no-untyped-def]
        return next(messages)

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": f"/api/ai/ingest/{monitor.id}", "headers": []}
    await path(scope, receive, send)
    assert sent == []
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(AiEvent)) == 0
