"""POST /api/ai/ingest/{monitorId}: the reference's answer, prices, validation of every field,
CORS on the ingest paths only, the daily limit, idempotent retries, batches, and the group commit's
promise (a 200 is committed; concurrent requests all stored, rollups and counters in step)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text

from control_plane.ai.ingest.store import _PG_STORED_EVENTS, _SQLITE_STORED_EVENTS, ingest_store
from control_plane.ai.pricing import PRICE_VERSION, cost_usd
from control_plane.db import Database
from control_plane.domain import histogram
from control_plane.models import AiDailyUsage, AiEvent, AiUsageRollup
from tests.ai.support import insert_llm_monitor
from tests.factories import insert_monitor
from tests.spec import assert_shape, example

EXAMPLE = {
    "provider": "openai",
    "model": "gpt-4o",
    "promptTokens": 150,
    "completionTokens": 80,
    "latencyMs": 1200,
}


def url(monitor_id: str) -> str:
    return f"/api/ai/ingest/{monitor_id}"


async def events_of(db: Database, monitor_id: str) -> list[AiEvent]:
    async with db.session() as session:
        rows = await session.scalars(select(AiEvent).where(AiEvent.monitor_id == monitor_id))
        return list(rows)


async def used_today(db: Database, org_id: str) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(select(func.sum(AiDailyUsage.events)).where(AiDailyUsage.org_id == org_id))
            or 0
        )


async def test_it_stores_the_reference_example_and_answers_as_the_reference(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    response = await api.post(url(monitor.id), json=EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_shape(body, example("POST", "/api/ai/ingest/:monitorId"))
    data = body["data"]
    assert data["id"].startswith("evt_")
    assert data["costUsd"] == cost_usd("openai", "gpt-4o", clock(), prompt_tokens=150, completion_tokens=80)
    assert data["costUsd"] > 0
    assert (data["dailyEventsUsed"], data["dailyEventsLimit"]) == (1, 1000)
    [event] = await events_of(database, monitor.id)
    assert (event.id, event.org_id, event.input_tokens, event.output_tokens, event.total_tokens) == (
        data["id"], world.org_a, 150, 80, 230
    )  # fmt: skip
    assert (event.status, event.source, event.price_version, event.cost_usd) == (
        "success", "api", PRICE_VERSION, data["costUsd"]
    )  # fmt: skip


async def test_an_unknown_model_is_unpriced_and_cached_tokens_are_priced(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    unknown = await api.post(url(monitor.id), json={**EXAMPLE, "model": "my-own-finetune-7b"})
    assert unknown.status_code == 200 and unknown.json()["data"]["costUsd"] is None
    cached = await api.post(url(monitor.id), json={**EXAMPLE, "cachedTokens": 100, "reasoningTokens": 10})
    expected = cost_usd(
        "openai", "gpt-4o", clock(), prompt_tokens=150, completion_tokens=80, cached_tokens=100
    )
    assert cached.json()["data"]["costUsd"] == expected
    assert expected is not None and expected < unknown_price(clock())
    stored = {e.model: e for e in await events_of(database, monitor.id)}
    assert stored["my-own-finetune-7b"].cost_usd is None
    assert stored["my-own-finetune-7b"].price_version == PRICE_VERSION
    assert (stored["gpt-4o"].cached_tokens, stored["gpt-4o"].reasoning_tokens) == (100, 10)


def unknown_price(at: datetime) -> float:
    full = cost_usd("openai", "gpt-4o", at, prompt_tokens=150, completion_tokens=80)
    assert full is not None
    return full


async def test_it_answers_404_for_an_unknown_monitor_and_400_for_other_types_or_paused(api, world, database):
    missing = await api.post(url("mon_doesnotexist"), json=EXAMPLE)
    assert missing.status_code == 404 and missing.json() == {"error": "Monitor not found"}
    http = await insert_monitor(database, world.org_a)
    wrong = await api.post(url(http.id), json=EXAMPLE)
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("monitorId: ")
    assert "HTTP monitor" in wrong.json()["error"]
    paused = await insert_llm_monitor(database, world.org_a, is_active=False)
    response = await api.post(url(paused.id), json=EXAMPLE)
    assert response.status_code == 400 and "paused" in response.json()["error"]
    assert response.json()["error"].startswith("monitorId: ")
    assert await events_of(database, paused.id) == [] and await used_today(database, world.org_a) == 0


BAD_VALUES: list[tuple[str, Any]] = [
    ("provider", ""), ("provider", "x" * 65), ("provider", 3), ("provider", "open\nai"),
    ("model", ""), ("model", "m" * 201), ("model", None),
    ("promptTokens", -1), ("promptTokens", 1.5), ("promptTokens", "150"), ("promptTokens", 10**10),
    ("promptTokens", True),
    ("completionTokens", -1), ("completionTokens", None),
    ("latencyMs", -0.1), ("latencyMs", "fast"), ("latencyMs", 10**9),
    ("totalTokens", -5), ("statusCode", 99), ("statusCode", 600), ("statusCode", 200.5),
    ("error", "e" * 10_001), ("error", 5), ("promptHash", ""), ("promptHash", "h" * 129),
    ("metadata", [1, 2]), ("metadata", "text"),
    ("ragDocsRetrieved", -1), ("ragAvgRelevance", 1.01), ("ragAvgRelevance", -0.1),
    ("ragRetrievalMs", -1), ("ragContextTokens", 2.5),
    ("cachedTokens", -1), ("cachedTokens", 151), ("reasoningTokens", 81), ("reasoningTokens", -1),
    ("eventId", ""), ("eventId", "e" * 129), ("eventId", "tab\there"), ("eventId", 12),
    ("surprise", 1),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
async def test_it_rejects_each_bad_value_naming_the_field(api, world, database, field, value):
    monitor = await insert_llm_monitor(database, world.org_a)
    response = await api.post(url(monitor.id), json={**EXAMPLE, field: value})
    assert response.status_code == 400, (field, value, response.text)
    assert response.json()["error"].startswith(f"{field}: "), response.text
    assert await events_of(database, monitor.id) == []


async def test_it_rejects_a_missing_field_and_bodies_that_are_not_events(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    for name in ("provider", "model", "promptTokens", "completionTokens", "latencyMs"):
        body = {k: v for k, v in EXAMPLE.items() if k != name}
        response = await api.post(url(monitor.id), json=body)
        assert response.status_code == 400 and response.json() == {"error": f"{name}: field required"}
    for content in (b"not json", b"[1, 2]", b'"text"', b"{"):
        response = await api.post(url(monitor.id), content=content)
        assert response.status_code == 400 and response.json()["error"].startswith("Request body"), content
    assert (await api.post(url(monitor.id), json={"events": []})).status_code == 400
    assert (await api.post(url(monitor.id), json={"events": "x"})).status_code == 400
    too_many = await api.post(url(monitor.id), json={"events": [EXAMPLE] * 1001})
    assert (
        too_many.status_code == 400
        and too_many.json()["error"] == "events: must be an array of 1 to 1000 events"
    )
    extra = await api.post(url(monitor.id), json={"events": [EXAMPLE], "other": 1})
    assert extra.status_code == 400 and extra.json()["error"].startswith("other: ")


async def test_optional_fields_are_stored_and_null_is_as_if_absent(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    full = {
        **EXAMPLE, "totalTokens": 240, "statusCode": 429, "error": "rate limited", "promptHash": "abc",
        "metadata": {"user": "u1", "tags": ["a", {"b": 1}]}, "ragDocsRetrieved": 4, "ragAvgRelevance": 0.8,
        "ragRetrievalMs": 120.5, "ragContextTokens": 90, "latencyMs": 1200.25,
    }  # fmt: skip
    assert (await api.post(url(monitor.id), json=full)).status_code == 200
    assert (
        await api.post(url(monitor.id), json={**EXAMPLE, "error": None, "metadata": None})
    ).status_code == 200
    stored = sorted(await events_of(database, monitor.id), key=lambda e: e.total_tokens)
    assert stored[0].status == "success" and stored[0].error is None and stored[0].event_metadata is None
    event = stored[1]
    assert (event.total_tokens, event.status_code, event.status, event.error, event.prompt_hash) == (
        240, 429, "error", "rate limited", "abc"
    )  # fmt: skip
    assert event.event_metadata == {"user": "u1", "tags": ["a", {"b": 1}]}
    rag = (
        event.rag_docs_retrieved,
        event.rag_avg_relevance,
        event.rag_retrieval_ms,
        event.rag_context_tokens,
    )
    assert rag == (4, 0.8, 120.5, 90)
    assert event.latency_ms == 1200.25


async def test_metadata_is_bounded_in_size_and_depth(api, world, database, settings):
    monitor = await insert_llm_monitor(database, world.org_a)
    big = {"blob": "x" * settings.ai_metadata_max_bytes}
    response = await api.post(url(monitor.id), json={**EXAMPLE, "metadata": big})
    assert response.status_code == 400 and response.json()["error"].startswith("metadata: must be at most")
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(settings.ai_metadata_max_depth):
        deep = {"next": deep}
    response = await api.post(url(monitor.id), json={**EXAMPLE, "metadata": deep})
    assert response.status_code == 400 and response.json()["error"].startswith("metadata: must be nested")
    just = {"leaf": 1}
    for _ in range(settings.ai_metadata_max_depth - 1):
        just = {"next": just}
    assert (await api.post(url(monitor.id), json={**EXAMPLE, "metadata": just})).status_code == 200


async def test_cors_is_answered_on_the_ingest_paths_only(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    preflight = await api.options(
        url(monitor.id),
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-trace",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert preflight.headers["access-control-allow-headers"] == "content-type, x-trace"
    assert int(preflight.headers["access-control-max-age"]) > 0
    plain = await api.options(
        url(monitor.id), headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert plain.headers["access-control-allow-headers"] == "Content-Type, Content-Encoding"
    origin = {"Origin": "https://app.example"}
    for response in (
        await api.post(url(monitor.id), json=EXAMPLE, headers=origin),
        await api.post(url("mon_nope"), json=EXAMPLE, headers=origin),
        await api.post(url(monitor.id), json={**EXAMPLE, "model": ""}, headers=origin),
        await api.post(url(monitor.id), content=b"x" * (2 * 1024 * 1024), headers=origin),
        await api.post("/api/ai/otlp/mon_nope/v1/traces", content=b"{}", headers=origin),
    ):
        assert response.headers.get("access-control-allow-origin") == "*", (
            response.status_code,
            response.text,
        )
    elsewhere = await api.get("/api/monitors", headers={**world.alice.headers, **origin})
    assert elsewhere.status_code == 200 and "access-control-allow-origin" not in elsewhere.headers
    options_elsewhere = await api.options(
        "/api/monitors", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in options_elsewhere.headers


def seconds_to_midnight(at: datetime) -> int:
    midnight = (at + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return math.ceil((midnight - at).total_seconds())


async def test_the_daily_limit_answers_429_until_the_next_utc_midnight(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    now = clock()
    target = (now + timedelta(days=1)).replace(hour=23, minute=59, second=20, microsecond=0)
    clock.advance(target - now)
    batch = await api.post(url(monitor.id), json={"events": [EXAMPLE] * 1000})
    assert batch.status_code == 200
    answers = batch.json()["data"]
    assert [a["dailyEventsUsed"] for a in answers] == list(range(1, 1001))
    assert {a["dailyEventsLimit"] for a in answers} == {1000}
    before = seconds_to_midnight(clock())
    over = await api.post(url(monitor.id), json=EXAMPLE)
    after = seconds_to_midnight(clock())
    assert over.status_code == 429, over.text
    assert after <= int(over.headers["retry-after"]) <= before
    assert over.json()["error"].startswith(
        "Daily AI event limit reached: 1000 events per day on the FREE plan"
    )
    assert set(over.json()) == {"error"}
    all_over = await api.post(url(monitor.id), json={"events": [EXAMPLE, {"model": 1}]})
    assert all_over.status_code == 429 and "retry-after" in all_over.headers
    assert len(await events_of(database, monitor.id)) == 1000
    clock.advance(timedelta(seconds=before + 1))  # the next UTC day
    again = await api.post(url(monitor.id), json=EXAMPLE)
    assert again.status_code == 200 and again.json()["data"]["dailyEventsUsed"] == 1


async def test_the_limit_is_the_organizations_and_its_plans(api, world, database):
    from tests.monitor_tools import set_plan

    await set_plan(database, world.org_a, "PRO")
    first = await insert_llm_monitor(database, world.org_a)
    second = await insert_llm_monitor(database, world.org_a, name="Second")
    other = await insert_llm_monitor(database, world.org_b)
    assert (await api.post(url(first.id), json=EXAMPLE)).json()["data"]["dailyEventsUsed"] == 1
    answer = (await api.post(url(second.id), json=EXAMPLE)).json()["data"]
    assert (answer["dailyEventsUsed"], answer["dailyEventsLimit"]) == (2, 10_000)
    assert (await api.post(url(other.id), json=EXAMPLE)).json()["data"]["dailyEventsUsed"] == 1


async def test_a_batch_answers_each_event_in_order(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    events = [EXAMPLE, {**EXAMPLE, "promptTokens": -1}, {**EXAMPLE, "model": "gpt-4o-mini"}, "nope"]
    response = await api.post(url(monitor.id), json={"events": events})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data[0]["id"].startswith("evt_") and data[0]["dailyEventsUsed"] == 1
    assert data[1] == {
        "error": "events[1].promptTokens: must be an integer >= 0 (at most 1000000000)",
        "status": 400,
    }
    assert data[2]["dailyEventsUsed"] == 2
    assert data[3]["status"] == 400 and data[3]["error"].startswith("events[3]: ")
    assert sorted(e.id for e in await events_of(database, monitor.id)) == sorted(
        [data[0]["id"], data[2]["id"]]
    )


async def test_a_batch_of_only_invalid_events_still_names_a_wrong_monitor(api, world, database):
    bad = {"events": [{**EXAMPLE, "promptTokens": -1}]}
    assert (await api.post(url("mon_unknown"), json=bad)).json() == {"error": "Monitor not found"}
    paused = await insert_llm_monitor(database, world.org_a, is_active=False)
    assert (await api.post(url(paused.id), json=bad)).status_code == 400
    monitor = await insert_llm_monitor(database, world.org_a)
    answered = await api.post(url(monitor.id), json=bad)
    assert answered.status_code == 200 and answered.json()["data"][0]["status"] == 400


async def test_a_batch_over_the_limit_stores_up_to_it_and_answers_the_rest_429(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    assert (await api.post(url(monitor.id), json={"events": [EXAMPLE] * 998})).status_code == 200
    response = await api.post(url(monitor.id), json={"events": [EXAMPLE] * 4})
    assert response.status_code == 200
    data = response.json()["data"]
    assert [d.get("dailyEventsUsed") for d in data[:2]] == [999, 1000]
    assert [d.get("status") for d in data[2:]] == [429, 429]
    assert await used_today(database, world.org_a) == 1000


async def test_a_retried_event_id_is_stored_once_and_answered_the_same(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    body = {**EXAMPLE, "eventId": "req-42"}
    first = await api.post(url(monitor.id), json=body)
    second = await api.post(url(monitor.id), json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    batch = await api.post(url(monitor.id), json={"events": [body, {**EXAMPLE, "eventId": "req-43"}] * 2})
    data = batch.json()["data"]
    assert data[0]["id"] == data[2]["id"] == first.json()["data"]["id"]
    assert data[1]["id"] == data[3]["id"] != data[0]["id"]
    assert [d["dailyEventsUsed"] for d in data] == [1, 2, 2, 2]
    assert len(await events_of(database, monitor.id)) == 2
    assert await used_today(database, world.org_a) == 2
    # The same eventId on another monitor is another event.
    other = await insert_llm_monitor(database, world.org_a, name="Other")
    assert (await api.post(url(other.id), json=body)).json()["data"]["id"] != data[0]["id"]


async def test_a_groups_event_ids_are_each_a_point_lookup_in_the_unique_index(api, world, database):
    """Seen under load (bench/overload.py): as a row-value IN list, the lookup of a group's eventIds
    filtered every event of the monitor against the whole list (1.9 s a group at 95,000 events on
    PostgreSQL with its statistics behind; a full scan on SQLite), and the ingest's throughput fell
    as its table grew. Each eventId must be an equality on the unique index, whatever the
    statistics say: the plan is read here, on a table the planner knows nothing of yet."""
    monitor = await insert_llm_monitor(database, world.org_a)
    for start in range(0, 600, 200):
        events = [{**EXAMPLE, "eventId": f"req-{n}"} for n in range(start, start + 200)]
        assert (await api.post(url(monitor.id), json={"events": events})).status_code == 200
    keys = [[monitor.id, f"req-{n}"] for n in range(0, 1200, 2)]  # half stored, half not
    async with database.session() as session:
        store = ingest_store(session)
        found = await store.stored_events(session, [(m, e) for m, e in keys])
        assert sorted(found) == sorted((m, e) for m, e in keys if int(e.split("-")[1]) < 600)
        rows = await events_of(database, monitor.id)
        stored = {row.client_event_id: (row.id, row.cost_usd) for row in rows}
        assert all(found[monitor.id, event_id] == stored[event_id] for _, event_id in found)
        payload = orjson.dumps(keys).decode()
        if database.is_sqlite:
            plan = " ".join(
                str(row[-1])
                for row in await session.execute(
                    text("EXPLAIN QUERY PLAN " + str(_SQLITE_STORED_EVENTS)), {"keys": payload}
                )
            )
            # The unique constraint's own index (SQLite names it sqlite_autoindex_ai_events_N).
            assert "SEARCH a USING INDEX" in plan and "(monitor_id=? AND client_event_id=?)" in plan, plan
            assert "SCAN a" not in plan, plan
        else:
            # A table as big as a busy monitor's, its statistics behind (no ANALYZE since): the
            # planner sees its pages, not the rows of the monitor.
            columns = ", ".join(
                c for c in AiEvent.__table__.columns.keys() if c not in ("id", "client_event_id")
            )
            await session.execute(
                text(
                    f"INSERT INTO ai_events (id, client_event_id, {columns}) "
                    f"SELECT 'evt_bulk_' || g, 'bulk-' || g, {columns} "
                    "FROM ai_events CROSS JOIN generate_series(1, 40000) AS g WHERE ai_events.id = :one"
                ),
                {"one": rows[0].id},
            )
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            pg_keys = orjson.dumps([{"m": m, "e": e} for m, e in keys]).decode()
            cursor = await driver.execute("EXPLAIN " + _PG_STORED_EVENTS, (pg_keys,))
            plan = " ".join(row[0] for row in await cursor.fetchall())
            assert "Index Scan using uq_ai_events_monitor_id_client_event_id" in plan, plan
            assert "Seq Scan on ai_events" not in plan, plan


async def test_concurrent_retries_of_one_event_id_store_it_once(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    body = {**EXAMPLE, "eventId": "concurrent"}
    responses = await asyncio.gather(*(api.post(url(monitor.id), json=body) for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert len(await events_of(database, monitor.id)) == 1 and await used_today(database, world.org_a) == 1


async def test_many_concurrent_requests_are_all_stored_with_rollups_and_counts_in_step(api, world, database):
    from tests.monitor_tools import set_plan

    await set_plan(database, world.org_a, "PRO")
    monitors = [await insert_llm_monitor(database, world.org_a, name=f"LLM {i}") for i in range(3)]
    bodies = [
        (monitors[i % 3].id, {**EXAMPLE, "model": ("gpt-4o", "gpt-4o-mini")[i % 2], "latencyMs": 100 + i,
                              "promptTokens": i, "ragDocsRetrieved": i % 5 if i % 4 == 0 else None})
        for i in range(200)
    ]  # fmt: skip
    responses = await asyncio.gather(*(api.post(url(mid), json=body) for mid, body in bodies))
    assert [r.status_code for r in responses] == [200] * 200
    ids = {r.json()["data"]["id"] for r in responses}
    assert sorted(r.json()["data"]["dailyEventsUsed"] for r in responses) == list(range(1, 201))
    async with database.session() as session:
        stored = list(await session.scalars(select(AiEvent)))
        rollups = list(await session.scalars(select(AiUsageRollup)))
    assert {e.id for e in stored} == ids
    assert sum(r.events for r in rollups) == 200
    assert sum(r.input_tokens for r in rollups) == sum(e.input_tokens for e in stored)
    assert sum(r.total_tokens for r in rollups) == sum(e.total_tokens for e in stored)
    assert math.isclose(sum(r.cost_usd for r in rollups), sum(e.cost_usd or 0 for e in stored))
    assert math.isclose(sum(r.latency_sum_ms for r in rollups), sum(e.latency_ms for e in stored))
    assert sum(r.rag_docs_events for r in rollups) == sum(
        1 for e in stored if e.rag_docs_retrieved is not None
    )
    assert sum(r.rag_docs_sum for r in rollups) == sum(e.rag_docs_retrieved or 0 for e in stored)
    for rollup in rollups:
        mine = [e for e in stored if (e.monitor_id, e.model) == (rollup.monitor_id, rollup.model)]
        assert rollup.events == len(mine)
        expected: dict[str, int] = {}
        for event in mine:
            histogram.add(expected, event.latency_ms)
        assert rollup.latency_histogram == expected
    assert await used_today(database, world.org_a) == 200


async def test_a_200_is_committed_as_another_connection_reads(api, world, database, migrated):
    monitor = await insert_llm_monitor(database, world.org_a)
    response = await api.post(url(monitor.id), json=EXAMPLE)
    other = Database(migrated)
    try:
        async with other.engine.connect() as connection:
            found = await connection.scalar(
                select(AiEvent.id).where(AiEvent.id == response.json()["data"]["id"])
            )
    finally:
        await other.engine.dispose()
    assert found == response.json()["data"]["id"]


async def test_deleting_a_monitor_deletes_its_events_and_rollups(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    keep = await insert_llm_monitor(database, world.org_a, name="Kept")
    assert (await api.post(url(monitor.id), json={"events": [EXAMPLE] * 3})).status_code == 200
    assert (await api.post(url(keep.id), json=EXAMPLE)).status_code == 200
    deleted = await api.delete(f"/api/monitors/{monitor.id}", headers=world.alice.headers)
    assert deleted.status_code == 200, deleted.text
    assert await events_of(database, monitor.id) == []
    assert len(await events_of(database, keep.id)) == 1
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(AiUsageRollup)) == 1
    assert (await api.post(url(monitor.id), json=EXAMPLE)).status_code == 404


async def test_a_failed_transaction_fails_every_request_of_its_group_and_stores_none(
    api, world, database, runtime
):
    monitor = await insert_llm_monitor(database, world.org_a)
    postgres = not database.is_sqlite
    async with database.engine.begin() as connection:
        if postgres:
            await connection.execute(
                text(
                    "CREATE FUNCTION traxo_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN IF NEW.model = 'explode' THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER traxo_test_refuse BEFORE INSERT ON ai_events "
                    "FOR EACH ROW EXECUTE FUNCTION traxo_test_refuse()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER traxo_test_refuse BEFORE INSERT ON ai_events WHEN NEW.model = 'explode' "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    try:
        from control_plane.ai.events import AiEventIn
        from control_plane.ai.ingest.committer import IngestFailed

        def event(model: str) -> AiEventIn:
            return AiEventIn(
                provider="openai", model=model, prompt_tokens=1, completion_tokens=1, latency_ms=1.0
            )

        # Queued together before the writer runs: one group, one transaction.
        outcomes = await asyncio.gather(
            *(
                runtime.ai_ingest.submit(monitor.id, [event("explode" if i == 5 else "gpt-4o")])
                for i in range(10)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(outcome, IngestFailed) for outcome in outcomes), outcomes
        assert await events_of(database, monitor.id) == []
        assert await used_today(database, world.org_a) == 0
        async with database.session() as session:
            assert await session.scalar(select(func.count()).select_from(AiUsageRollup)) == 0
        response = await api.post(url(monitor.id), json={**EXAMPLE, "model": "explode"})
        assert response.status_code == 503 and set(response.json()) == {"error"}
        # The writer carries on.
        assert (await api.post(url(monitor.id), json=EXAMPLE)).status_code == 200
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(
                text("DROP TRIGGER traxo_test_refuse" + (" ON ai_events" if postgres else ""))
            )
            if postgres:
                await connection.execute(text("DROP FUNCTION traxo_test_refuse()"))


async def test_events_are_stamped_with_the_clocks_time(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    clock.advance(timedelta(days=3))
    await api.post(url(monitor.id), json=EXAMPLE)
    [event] = await events_of(database, monitor.id)
    assert abs(event.created_at - clock()) < timedelta(seconds=5)
    assert event.created_at.tzinfo is not None and event.created_at.utcoffset() == timedelta(0)
    async with database.session() as session:
        [rollup] = list(await session.scalars(select(AiUsageRollup)))
    assert rollup.hour == event.created_at.replace(minute=0, second=0, microsecond=0)
    assert rollup.hour.tzinfo is not None and rollup.hour.astimezone(UTC) == rollup.hour
