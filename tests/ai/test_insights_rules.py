"""The insights worker on real rows: each type generated from inserted events (and the rollups the
ingest would have written for them), with its numbers from real prices, and not generated when its
condition does not hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from control_plane.ai.insights.cheaper_models import cheaper_model
from control_plane.ai.insights.job import generate_insights
from control_plane.ai.pricing import cost_usd
from control_plane.db import Database
from control_plane.domain import histogram
from control_plane.models import Monitor
from control_plane.models.ai import EVENT_ERROR
from tests.ai.support import insert_events_with_rollups, insert_llm_monitor, priced_event
from tests.conftest import World

# On the hour: the window is then exactly the 24 h before, and savings per day are its sums.
NOW = datetime(2026, 3, 12, 14, 0, tzinfo=UTC)


def at(minutes_ago: float) -> datetime:
    """A second more than `minutes_ago` before NOW: at(0) is in the window, which ends before NOW."""
    return NOW - timedelta(minutes=minutes_ago, seconds=1)


@pytest.fixture
async def monitor(database: Database, world: World) -> Monitor:
    return await insert_llm_monitor(database, world.org_a)


async def insights_of(api: httpx.AsyncClient, world: World, monitor: Monitor) -> dict[str, dict[str, Any]]:
    response = await api.get(f"/api/monitors/{monitor.id}/insights", headers=world.alice.headers)
    assert response.status_code == 200, response.text
    return {item["type"]: item for item in response.json()["data"]}


def cost(model: str, prompt: int, completion: int, provider: str = "openai") -> float:
    value = cost_usd(
        provider, model, NOW - timedelta(hours=1), prompt_tokens=prompt, completion_tokens=completion
    )
    assert value is not None
    return value


# --- model_downgrade ----------------------------------------------------------------------------


async def test_it_suggests_the_cheaper_model_when_most_calls_on_a_premium_one_are_short(
    api, world, database, monitor
):
    short = [priced_event(monitor, at(10 + i), prompt=200, completion=100) for i in range(24)]
    long = [priced_event(monitor, at(50 + i), prompt=3000, completion=800) for i in range(6)]
    await insert_events_with_rollups(database, short + long)

    await generate_insights(database, now=NOW)

    insight = (await insights_of(api, world, monitor))["model_downgrade"]
    expected = 24 * (cost("gpt-4o", 200, 100) - cost("gpt-4o-mini", 200, 100))
    assert insight["savings"] == pytest.approx(expected, rel=1e-6)
    assert insight["title"] == "Consider using gpt-4o-mini"
    assert insight["severity"] == "warning"
    assert insight["metadata"]["cheaperModel"] == "gpt-4o-mini"
    assert insight["metadata"]["shortCallShare"] == 80.0
    assert insight["metadata"]["shortCalls"] == 24 and insight["metadata"]["calls"] == 30
    assert f"${expected:.2f}/day" in insight["metadata"]["recommendation"]


async def test_it_suggests_no_cheaper_model_when_short_calls_are_under_sixty_percent(
    api, world, database, monitor
):
    short = [priced_event(monitor, at(10 + i), prompt=200, completion=100) for i in range(17)]
    long = [priced_event(monitor, at(50 + i), prompt=3000, completion=100) for i in range(13)]
    await insert_events_with_rollups(database, short + long)

    await generate_insights(database, now=NOW)

    assert "model_downgrade" not in await insights_of(api, world, monitor)


def test_it_pairs_premium_models_with_the_same_providers_priced_cheaper_one():
    assert cheaper_model("openai", "gpt-4o-2024-08-06", NOW) == "gpt-4o-mini"
    assert cheaper_model("openai", "gpt-4.1", NOW) == "gpt-4.1-mini"
    assert cheaper_model("openai", "o3", NOW) == "o4-mini"
    assert cheaper_model("anthropic", "claude-sonnet-4-5", NOW) == "claude-haiku-4-5"
    assert cheaper_model("anthropic", "claude-sonnet-4-20250514", NOW) == "claude-haiku-4-5"
    assert cheaper_model("google", "gemini-2.5-pro", NOW) == "gemini-2.5-flash"
    assert cheaper_model("openai", "gpt-4o-mini", NOW) is None
    assert cheaper_model("acme", "acme-large", NOW) is None


# --- duplicate_prompts --------------------------------------------------------------------------


async def test_it_finds_repeated_prompts_and_prices_the_repeats(api, world, database, monitor):
    repeated = [
        priced_event(monitor, at(5 + i), model="gpt-4o-mini", prompt=400, completion=200, prompt_hash="h-faq")
        for i in range(10)
    ]
    unique = [
        priced_event(
            monitor, at(30 + i), model="gpt-4o-mini", prompt=400, completion=200, prompt_hash=f"u{i}"
        )
        for i in range(10)
    ]
    await insert_events_with_rollups(database, repeated + unique)

    await generate_insights(database, now=NOW)

    insight = (await insights_of(api, world, monitor))["duplicate_prompts"]
    assert insight["savings"] == pytest.approx(9 * cost("gpt-4o-mini", 400, 200), rel=1e-6)
    assert insight["severity"] == "warning"  # 9 of 20 calls: 45%
    assert insight["metadata"]["repeatedCalls"] == 9 and insight["metadata"]["repeatedShare"] == 45.0
    assert insight["metadata"]["topPrompts"] == [{"promptHash": "h-faq", "calls": 10}]


async def test_it_counts_a_share_of_repeats_and_none_among_distinct_prompts(api, world, database, monitor):
    events = [priced_event(monitor, at(i), prompt_hash=f"p{i % 15}") for i in range(20)]
    await insert_events_with_rollups(database, events)  # p0-p4 twice: 5 repeats of 20 calls, 25%

    await generate_insights(database, now=NOW)
    assert "duplicate_prompts" in await insights_of(api, world, monitor)

    other = await insert_llm_monitor(database, world.org_a, name="Distinct")
    await insert_events_with_rollups(
        database, [priced_event(other, at(i), prompt_hash=f"d{i}") for i in range(30)]
    )
    await generate_insights(database, now=NOW)
    assert "duplicate_prompts" not in await insights_of(api, world, other)


# --- high_error_rate ----------------------------------------------------------------------------


@pytest.mark.parametrize(("errors", "severity", "rate"), [(4, "warning", 10.0), (10, "critical", 25.0)])
async def test_it_reports_a_high_error_rate(api, world, database, monitor, errors, severity, rate):
    events = [
        priced_event(monitor, at(i), **({"status": EVENT_ERROR, "error": "429"} if i < errors else {}))
        for i in range(40)
    ]
    await insert_events_with_rollups(database, events)

    await generate_insights(database, now=NOW)

    insight = (await insights_of(api, world, monitor))["high_error_rate"]
    assert insight["severity"] == severity and insight["savings"] is None
    assert insight["metadata"]["errorRate"] == rate and insight["metadata"]["errors"] == errors


async def test_it_reports_no_error_rate_from_too_few_calls(api, world, database, monitor):
    events = [priced_event(monitor, at(i), status=EVENT_ERROR) for i in range(5)]
    events += [priced_event(monitor, at(10 + i)) for i in range(14)]  # 19 calls in all
    await insert_events_with_rollups(database, events)

    await generate_insights(database, now=NOW)

    assert "high_error_rate" not in await insights_of(api, world, monitor)


# --- retry_storm --------------------------------------------------------------------------------


async def test_it_finds_one_prompt_failing_again_and_again_within_seconds(api, world, database, monitor):
    start = at(30)
    storm = [
        priced_event(
            monitor,
            start + timedelta(seconds=5 * i),
            prompt=1000,
            completion=0,
            status=EVENT_ERROR,
            prompt_hash="h-storm",
        )
        for i in range(4)
    ]
    # Three failures hours apart are no storm.
    spread = [
        priced_event(monitor, at(60 * (i + 1)), status=EVENT_ERROR, prompt_hash="h-slow") for i in range(3)
    ]
    await insert_events_with_rollups(database, storm + spread)

    await generate_insights(database, now=NOW)

    response = await api.get(f"/api/monitors/{monitor.id}/insights", headers=world.alice.headers)
    storms = [item for item in response.json()["data"] if item["type"] == "retry_storm"]
    assert len(storms) == 1
    assert storms[0]["metadata"]["promptHash"] == "h-storm"
    assert storms[0]["metadata"]["failures"] == 4 and storms[0]["metadata"]["retries"] == 3
    assert storms[0]["savings"] == pytest.approx(3 * cost("gpt-4o", 1000, 0), rel=1e-6)


# --- latency_regression -------------------------------------------------------------------------


async def regress(database: Database, monitor: Monitor, before_ms: float, after_ms: float) -> None:
    previous = [priced_event(monitor, at(60 * 24 + 30 + i), latency_ms=before_ms) for i in range(30)]
    current = [priced_event(monitor, at(30 + i), latency_ms=after_ms) for i in range(30)]
    await insert_events_with_rollups(database, previous + current)


async def test_it_reports_p95_latency_up_against_the_previous_day(api, world, database, monitor):
    await regress(database, monitor, 1000, 1800)

    await generate_insights(database, now=NOW)

    insight = (await insights_of(api, world, monitor))["latency_regression"]
    p95 = histogram.quantile({str(histogram.bucket_of(1800)): 30}, 0.95)
    before = histogram.quantile({str(histogram.bucket_of(1000)): 30}, 0.95)
    assert p95 is not None and before is not None
    assert insight["metadata"]["p95LatencyMs"] == round(p95, 1)
    assert insight["metadata"]["previousP95LatencyMs"] == round(before, 1)
    assert insight["severity"] == "warning" and insight["savings"] is None


async def test_it_reports_no_latency_regression_under_fifty_percent(api, world, database, monitor):
    await regress(database, monitor, 1000, 1300)

    await generate_insights(database, now=NOW)

    assert "latency_regression" not in await insights_of(api, world, monitor)


# --- rag_context_bloat --------------------------------------------------------------------------


async def test_it_finds_large_context_of_low_relevance_and_prices_its_irrelevant_share(
    api, world, database, monitor
):
    events = [
        priced_event(
            monitor,
            at(i),
            prompt=2000,
            completion=100,
            rag_context_tokens=1500,
            rag_avg_relevance=0.2,
            rag_docs_retrieved=8,
        )
        for i in range(12)
    ]
    await insert_events_with_rollups(database, events)

    await generate_insights(database, now=NOW)

    insight = (await insights_of(api, world, monitor))["rag_context_bloat"]
    assert insight["savings"] == pytest.approx(12 * cost("gpt-4o", 1200, 0), rel=1e-6)  # 80% of 1,500
    assert insight["metadata"]["contextShare"] == 75.0 and insight["metadata"]["avgRelevance"] == 0.2
    assert insight["metadata"]["excessContextTokens"] == 12 * 1200


async def test_it_finds_no_context_bloat_when_the_context_is_relevant(api, world, database, monitor):
    events = [
        priced_event(monitor, at(i), prompt=2000, rag_context_tokens=1500, rag_avg_relevance=0.8)
        for i in range(12)
    ]
    await insert_events_with_rollups(database, events)

    await generate_insights(database, now=NOW)

    assert "rag_context_bloat" not in await insights_of(api, world, monitor)


# --- unpriced_model -----------------------------------------------------------------------------


async def test_it_names_a_model_the_price_data_does_not_know(api, world, database, monitor):
    events = [priced_event(monitor, at(i), provider="acme", model="acme-llm-9000") for i in range(3)]
    assert events[0].cost_usd is None
    await insert_events_with_rollups(database, [*events, priced_event(monitor, at(5))])

    await generate_insights(database, now=NOW)

    insight = (await insights_of(api, world, monitor))["unpriced_model"]
    assert insight["severity"] == "info" and insight["savings"] is None
    assert insight["title"] == "No prices for acme-llm-9000"
    assert insight["metadata"]["model"] == "acme-llm-9000" and insight["metadata"]["calls"] == 3


async def test_it_reads_nothing_older_than_the_window(api, world, database, monitor):
    events = [priced_event(monitor, at(60 * 25 + i), provider="acme", model="acme-old") for i in range(3)]
    await insert_events_with_rollups(database, events)

    await generate_insights(database, now=NOW)

    assert await insights_of(api, world, monitor) == {}
