"""GET /api/monitors/:id/ai-usage and /ai-events: the reference's fields, the figures from hourly
rollups (every hour of the period, p95 from merged histograms, error rate, top models, RAG), the
period's bounds as the clock moves, the events page, validation and tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from control_plane.domain import histogram
from control_plane.models.ai import EVENT_ERROR
from tests.ai.support import ai_event_row, insert_llm_monitor, insert_rows, rollup_row, rollups_of
from tests.factories import insert_monitor
from tests.spec import assert_shape, example


def usage_url(monitor_id: str) -> str:
    return f"/api/monitors/{monitor_id}/ai-usage"


def events_url(monitor_id: str) -> str:
    return f"/api/monitors/{monitor_id}/ai-events"


def current_hour(clock) -> datetime:
    return clock().astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def read_usage(api, account, monitor_id: str, **params: str) -> dict:
    response = await api.get(usage_url(monitor_id), params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_usage_has_the_reference_fields_and_the_rollups_numbers(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    await insert_rows(
        database,
        [
            rollup_row(
                monitor,
                hour,
                "gpt-4o",
                latencies=[800.0, 1000.0, 1200.0],
                errors=1,
                total_tokens=690,
                cost_usd=0.0105,
            ),
            rollup_row(
                monitor,
                hour - timedelta(hours=2),
                "gpt-4o-mini",
                latencies=[300.0],
                total_tokens=200,
                cost_usd=0.1234567,
            ),
        ],
    )
    response = await api.get(usage_url(monitor.id), headers=world.alice.headers)
    assert response.status_code == 200, response.text
    assert_shape(response.json(), example("GET", "/api/monitors/:id/ai-usage"))
    data = response.json()["data"]
    assert (data["totalEvents"], data["totalTokens"], data["totalCost"]) == (4, 890, 0.133957)
    assert data["avgLatency"] == 825  # (800 + 1000 + 1200 + 300) / 4
    assert data["errorRate"] == 25.0
    assert data["topModels"] == [
        {"model": "gpt-4o", "count": 3, "totalCost": 0.0105, "avgLatency": 1000},
        {"model": "gpt-4o-mini", "count": 1, "totalCost": 0.123457, "avgLatency": 300},
    ]
    assert data["hourlyUsage"][-1] == {
        "hour": hour.strftime("%Y-%m-%dT%H:00:00.000Z"),
        "events": 3,
        "tokens": 690,
        "cost": 0.0105,
    }
    assert data["hourlyUsage"][-3]["events"] == 1 and data["hourlyUsage"][-3]["cost"] == 0.123457
    assert data["ragStats"] == {
        "totalRagEvents": 0,
        "avgRelevance": 0,
        "avgDocsRetrieved": 0,
        "avgRetrievalMs": 0,
    }


@pytest.mark.parametrize(("period", "hours"), [(None, 24), ("24h", 24), ("7d", 168), ("30d", 720)])
async def test_every_hour_of_the_period_is_there_oldest_first_empty_ones_zero(
    api, world, database, clock, period, hours
):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    oldest = hour - timedelta(hours=hours - 1)
    await insert_rows(
        database, [rollup_row(monitor, oldest, latencies=[100.0], total_tokens=10, cost_usd=0.5)]
    )
    data = await read_usage(api, world.alice, monitor.id, **({"period": period} if period else {}))
    series = data["hourlyUsage"]
    expected = [(oldest + timedelta(hours=i)).strftime("%Y-%m-%dT%H:00:00.000Z") for i in range(hours)]
    assert [point["hour"] for point in series] == expected
    assert series[0] == {"hour": expected[0], "events": 1, "tokens": 10, "cost": 0.5}
    assert all(point == {"hour": point["hour"], "events": 0, "tokens": 0, "cost": 0} for point in series[1:])
    assert data["totalEvents"] == 1


async def test_a_monitor_without_events_answers_zeros(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    data = await read_usage(api, world.vera, monitor.id)  # a VIEWER reads too
    assert {key: value for key, value in data.items() if key != "hourlyUsage"} == {
        "totalEvents": 0,
        "totalTokens": 0,
        "totalCost": 0,
        "avgLatency": 0,
        "p95Latency": 0,
        "errorRate": 0,
        "topModels": [],
        "ragStats": {"totalRagEvents": 0, "avgRelevance": 0, "avgDocsRetrieved": 0, "avgRetrievalMs": 0},
    }
    assert len(data["hourlyUsage"]) == 24 and {p["events"] for p in data["hourlyUsage"]} == {0}


async def test_the_period_ends_with_the_current_hour_as_the_clock_moves(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    await insert_rows(database, [rollup_row(monitor, current_hour(clock), latencies=[100.0, 200.0])])
    clock.advance(timedelta(hours=23))  # its hour is the period's first
    assert (await read_usage(api, world.alice, monitor.id))["hourlyUsage"][0]["events"] == 2
    clock.advance(timedelta(hours=2))  # 25 hours on: out of 24h, in 7d
    day = await read_usage(api, world.alice, monitor.id, period="24h")
    week = await read_usage(api, world.alice, monitor.id, period="7d")
    assert (day["totalEvents"], sum(p["events"] for p in day["hourlyUsage"])) == (0, 0)
    assert (week["totalEvents"], week["avgLatency"]) == (2, 150)
    clock.advance(timedelta(hours=142))  # 167 hours on: the first hour of 7d
    assert (await read_usage(api, world.alice, monitor.id, period="7d"))["hourlyUsage"][0]["events"] == 2
    clock.advance(timedelta(hours=1))  # 168 hours on: out of 7d, in 30d
    assert (await read_usage(api, world.alice, monitor.id, period="7d"))["totalEvents"] == 0
    assert (await read_usage(api, world.alice, monitor.id, period="30d"))["totalEvents"] == 2


async def test_p95_is_read_from_the_merged_histograms_of_every_hour_and_model(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    # 1..1000 ms over three rows: no single row's p95 is the whole's (950).
    await insert_rows(
        database,
        [
            rollup_row(monitor, hour, "gpt-4o", latencies=[float(ms) for ms in range(1, 401)]),
            rollup_row(
                monitor, hour - timedelta(hours=5), "gpt-4o", latencies=[float(ms) for ms in range(401, 801)]
            ),
            rollup_row(monitor, hour, "claude-sonnet-4", latencies=[float(ms) for ms in range(801, 1001)]),
        ],
    )
    data = await read_usage(api, world.alice, monitor.id)
    assert 950 * 0.95 <= data["p95Latency"] <= 950 * 1.05
    whole: histogram.Histogram = {}
    for ms in range(1, 1001):
        histogram.add(whole, float(ms))
    assert data["p95Latency"] == round(histogram.quantile(whole, 0.95) or 0)
    assert data["avgLatency"] == 500  # 500.5 rounded to even


async def test_error_rate_is_the_percent_of_events_that_failed(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    await insert_rows(
        database,
        [
            rollup_row(monitor, hour, "gpt-4o", events=800, errors=10, latency_sum_ms=800.0),
            rollup_row(monitor, hour - timedelta(hours=1), "gpt-4o-mini", events=200, errors=2),
            rollup_row(monitor, hour - timedelta(hours=30), "gpt-4o-mini", events=5, errors=5),  # not in 24h
        ],
    )
    assert (await read_usage(api, world.alice, monitor.id))["errorRate"] == 1.2
    assert (await read_usage(api, world.alice, monitor.id, period="7d"))["errorRate"] == round(
        100 * 17 / 1005, 2
    )


async def test_top_models_are_the_ten_with_most_events_summed_over_hours_and_providers(
    api, world, database, clock
):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    rows = [rollup_row(monitor, hour, f"model-{n:02d}", events=n, cost_usd=n / 100) for n in range(1, 13)]
    # model-01 again, in another hour and under another provider: 1 + 20 events, first of all.
    rows.append(rollup_row(monitor, hour - timedelta(hours=3), "model-01", provider="azure", events=20))
    rows.append(rollup_row(monitor, hour, "tied-a", events=12))  # ties: by name
    await insert_rows(database, rows)
    top = (await read_usage(api, world.alice, monitor.id))["topModels"]
    assert [(m["model"], m["count"]) for m in top] == [
        ("model-01", 21),
        ("model-12", 12),
        ("tied-a", 12),
        ("model-11", 11),
        ("model-10", 10),
        ("model-09", 9),
        ("model-08", 8),
        ("model-07", 7),
        ("model-06", 6),
        ("model-05", 5),
    ]
    assert top[1]["totalCost"] == 0.12 and top[1]["avgLatency"] == 0


async def test_rag_stats_average_over_the_events_that_carried_each_field(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    await insert_rows(
        database,
        [
            rollup_row(
                monitor,
                hour,
                events=10,
                rag_events=4,
                rag_docs_events=4,
                rag_docs_sum=17,
                rag_relevance_events=3,
                rag_relevance_sum=2.4567,
                rag_retrieval_events=2,
                rag_retrieval_ms_sum=241.0,
            ),
            rollup_row(
                monitor,
                hour - timedelta(hours=1),
                "gpt-4o-mini",
                events=5,
                rag_events=1,
                rag_docs_events=1,
                rag_docs_sum=4,
            ),
        ],
    )
    assert (await read_usage(api, world.alice, monitor.id))["ragStats"] == {
        "totalRagEvents": 5,
        "avgRelevance": 0.819,  # 2.4567 / 3
        "avgDocsRetrieved": 4.2,  # 21 / 5
        "avgRetrievalMs": 120,  # 241 / 2 = 120.5, rounded to even
    }


@pytest.mark.parametrize("period", ["1h", "24H", "", "30", "90d"])
async def test_it_rejects_a_period_it_does_not_know(api, world, database, period):
    monitor = await insert_llm_monitor(database, world.org_a)
    response = await api.get(usage_url(monitor.id), params={"period": period}, headers=world.alice.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("period:") and all(p in error for p in ("24h", "7d", "30d")), error


@pytest.mark.parametrize("url", [usage_url, events_url])
async def test_another_organizations_or_an_unknown_monitor_is_not_found(api, world, database, url):
    monitor = await insert_llm_monitor(database, world.org_a)
    for account, monitor_id in ((world.bob, monitor.id), (world.alice, "mon_missing")):
        response = await api.get(url(monitor_id), headers=account.headers)
        assert (response.status_code, response.json()) == (404, {"error": "Monitor not found"})
    assert (await api.get(url(monitor.id))).status_code == 401


@pytest.mark.parametrize("url", [usage_url, events_url])
async def test_it_rejects_a_monitor_that_is_not_llm(api, world, database, url):
    monitor = await insert_monitor(database, world.org_a)  # HTTP
    response = await api.get(url(monitor.id), headers=world.alice.headers)
    assert response.status_code == 400
    assert "HTTP monitor" in response.json()["error"] and "LLM" in response.json()["error"]


async def test_usage_is_the_monitors_own(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    other = await insert_llm_monitor(database, world.org_a)
    await insert_rows(database, [rollup_row(other, current_hour(clock), latencies=[100.0])])
    assert (await read_usage(api, world.alice, monitor.id))["totalEvents"] == 0
    assert (await read_usage(api, world.alice, other.id))["totalEvents"] == 1


async def test_events_have_the_reference_fields_newest_first_a_page_at_a_time(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    other = await insert_llm_monitor(database, world.org_a)
    now = clock()
    rows = [ai_event_row(monitor, now - timedelta(minutes=n), id=f"evt_{n:03d}") for n in range(1, 46)]
    # Two at the same moment: the greater id first.
    rows += [ai_event_row(monitor, now, id="evt_tie_a"), ai_event_row(monitor, now, id="evt_tie_b")]
    rows.append(
        ai_event_row(
            monitor,
            now - timedelta(hours=3),
            id="evt_failed",
            model="mystery-model",
            cost_usd=None,
            status=EVENT_ERROR,
            error="upstream timeout",
            status_code=504,
        )
    )
    rows.append(ai_event_row(other, now, id="evt_other"))
    await insert_rows(database, [*rows, *rollups_of(rows)])

    response = await api.get(events_url(monitor.id), headers=world.vera.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_shape(body, example("GET", "/api/monitors/:id/ai-events"))
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 48, "totalPages": 3}
    assert [e["id"] for e in body["data"][:4]] == ["evt_tie_b", "evt_tie_a", "evt_001", "evt_002"]
    assert body["data"][2] == {
        "id": "evt_001",
        "monitorId": monitor.id,
        "provider": "openai",
        "model": "gpt-4o",
        "inputTokens": 150,
        "outputTokens": 80,
        "totalTokens": 230,
        "costUsd": 0.0035,
        "latencyMs": 1200.0,
        "status": "success",
        "errorMessage": None,
        "createdAt": (now - timedelta(minutes=1)).astimezone(UTC).isoformat(timespec="milliseconds")[:23]
        + "Z",
    }

    last = await api.get(events_url(monitor.id), params={"page": 3, "limit": 20}, headers=world.alice.headers)
    assert [e["id"] for e in last.json()["data"]] == [f"evt_{n:03d}" for n in range(39, 46)] + ["evt_failed"]
    assert last.json()["data"][-1] | {"createdAt": None} == {
        "id": "evt_failed",
        "monitorId": monitor.id,
        "provider": "openai",
        "model": "mystery-model",
        "inputTokens": 150,
        "outputTokens": 80,
        "totalTokens": 230,
        "costUsd": None,
        "latencyMs": 1200.0,
        "status": "error",
        "errorMessage": "upstream timeout",
        "createdAt": None,
    }
    beyond = await api.get(events_url(monitor.id), params={"page": 4}, headers=world.alice.headers)
    assert beyond.json() == {"data": [], "pagination": {"page": 4, "limit": 20, "total": 48, "totalPages": 3}}
    small = await api.get(events_url(monitor.id), params={"limit": 1, "page": 2}, headers=world.alice.headers)
    assert [e["id"] for e in small.json()["data"]] == ["evt_tie_a"]
    assert small.json()["pagination"] == {"page": 2, "limit": 1, "total": 48, "totalPages": 48}


async def test_a_monitor_without_events_has_an_empty_page(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    response = await api.get(events_url(monitor.id), headers=world.alice.headers)
    assert response.json() == {
        "data": [],
        "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0},
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "abc"}, "page"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "1.5"}, "limit"),
    ],
)
async def test_it_rejects_a_bad_page_or_limit(api, world, database, params, field):
    monitor = await insert_llm_monitor(database, world.org_a)
    response = await api.get(events_url(monitor.id), params=params, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.text


async def test_the_total_counts_the_oldest_hour_kept_and_the_later_hours_rollups(api, world, database, clock):
    monitor = await insert_llm_monitor(database, world.org_a)
    hour = current_hour(clock)
    events = [
        ai_event_row(monitor, hour - timedelta(hours=h, minutes=m)) for h in (5, 3, 1) for m in (10, 20, 30)
    ]
    rollups = rollups_of(events)
    # Retention took two of the oldest hour's events (its rollup still counts them): 7 are kept.
    kept = sorted(events, key=lambda event: event.created_at)[2:]
    await insert_rows(database, [*kept, *rollups])
    response = await api.get(events_url(monitor.id), params={"limit": 5}, headers=world.alice.headers)
    assert response.json()["pagination"] == {"page": 1, "limit": 5, "total": 7, "totalPages": 2}
    assert len(response.json()["data"]) == 5


async def test_events_posted_through_the_ingest_read_back_through_both_routes(api, world, database):
    monitor = await insert_llm_monitor(database, world.org_a)
    posted = [
        {"provider": "openai", "model": "gpt-4o", "promptTokens": 150, "completionTokens": 80,
         "latencyMs": 1200},
        {"provider": "openai", "model": "gpt-4o", "promptTokens": 10, "completionTokens": 5, "latencyMs": 800,
         "error": "rate limited", "statusCode": 429, "ragDocsRetrieved": 4, "ragAvgRelevance": 0.8,
         "ragRetrievalMs": 120},
        {"provider": "acme", "model": "acme-unpriced-1", "promptTokens": 100, "completionTokens": 100,
         "latencyMs": 400},
    ]  # fmt: skip
    answers = []
    for event in posted:
        response = await api.post(f"/api/ai/ingest/{monitor.id}", json=event)
        assert response.status_code == 200, response.text
        answers.append(response.json()["data"])
    page = (await api.get(events_url(monitor.id), headers=world.alice.headers)).json()
    assert page["pagination"]["total"] == 3
    assert [e["id"] for e in page["data"]] == [a["id"] for a in reversed(answers)]
    assert [e["costUsd"] for e in page["data"]] == [a["costUsd"] for a in reversed(answers)]
    assert [(e["status"], e["errorMessage"], e["totalTokens"]) for e in page["data"]] == [
        ("success", None, 200),
        ("error", "rate limited", 15),
        ("success", None, 230),
    ]
    data = await read_usage(api, world.alice, monitor.id)
    priced = sum(a["costUsd"] for a in answers if a["costUsd"] is not None)
    assert (data["totalEvents"], data["totalTokens"], data["totalCost"]) == (3, 445, round(priced, 6))
    assert (data["avgLatency"], data["errorRate"]) == (800, 33.33)
    assert [(m["model"], m["count"]) for m in data["topModels"]] == [("gpt-4o", 2), ("acme-unpriced-1", 1)]
    assert sum(p["events"] for p in data["hourlyUsage"]) == 3
    assert data["ragStats"] == {
        "totalRagEvents": 1,
        "avgRelevance": 0.8,
        "avgDocsRetrieved": 4,
        "avgRetrievalMs": 120,
    }
