"""/api/monitors/:id/insights: the reference's fields; regeneration without duplicates; dismissal
that survives similar numbers and is lifted by a material change; insights whose condition ended
unlisted and back when it holds again; the dismissal body's rules, roles and tenancy; the job as
the workers run it."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from control_plane.ai.insights.job import generate_insights
from control_plane.db import Database
from control_plane.models import Monitor
from control_plane.models.ai import EVENT_ERROR, AiInsight
from control_plane.settings import Settings
from control_plane.workers.jobs import build_runner
from tests.ai.support import insert_events_with_rollups, insert_llm_monitor, priced_event
from tests.clock import MovableClock
from tests.conftest import World
from tests.factories import insert_monitor
from tests.spec import assert_shape, example

NOW = datetime(2026, 3, 12, 14, 0, tzinfo=UTC)
PATH = "/api/monitors/{}/insights"


@pytest.fixture
async def monitor(database: Database, world: World) -> Monitor:
    return await insert_llm_monitor(database, world.org_a)


async def short_calls(database: Database, monitor: Monitor, count: int, *, now: datetime = NOW) -> None:
    """`count` short gpt-4o calls in the hour before `now`: a model_downgrade."""
    events = [
        priced_event(monitor, now - timedelta(seconds=10 * i + 1), prompt=200, completion=100)
        for i in range(count)
    ]
    await insert_events_with_rollups(database, events)


async def listed(api: httpx.AsyncClient, account: Any, monitor: Monitor) -> list[dict[str, Any]]:
    response = await api.get(PATH.format(monitor.id), headers=account.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def dismiss(
    api: httpx.AsyncClient, account: Any, monitor: Monitor, insight_id: str, value: Any = True
) -> httpx.Response:
    return await api.patch(
        f"{PATH.format(monitor.id)}/{insight_id}", json={"dismissed": value}, headers=account.headers
    )


async def rows(database: Database) -> list[AiInsight]:
    async with database.session() as session:
        return list(await session.scalars(select(AiInsight)))


# --- the reference ------------------------------------------------------------------------------


async def test_it_lists_insights_with_the_reference_fields(api, world, database, monitor):
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)

    response = await api.get(PATH.format(monitor.id), headers=world.vera.headers)  # any role reads

    assert response.status_code == 200
    body = response.json()
    reference = copy.deepcopy(example("GET", "/api/monitors/:id/insights"))
    # Our metadata carries the figures behind the recommendation besides it.
    reference["data"][0]["metadata"] = {key: None for key in body["data"][0]["metadata"]} | {
        "recommendation": ""
    }
    assert_shape(body, reference)
    insight = body["data"][0]
    assert insight["id"].startswith("ins_") and insight["monitorId"] == monitor.id
    assert insight["type"] == "model_downgrade" and insight["dismissed"] is False
    assert isinstance(insight["metadata"]["recommendation"], str)


async def test_it_lists_the_most_severe_first_then_the_largest_savings(api, world, database, monitor):
    events = [
        priced_event(monitor, NOW - timedelta(minutes=i + 1), prompt=200, completion=100) for i in range(30)
    ]
    events += [priced_event(monitor, NOW - timedelta(minutes=i + 1), status=EVENT_ERROR) for i in range(20)]
    events += [priced_event(monitor, NOW - timedelta(minutes=1), provider="acme", model="acme-1")]
    await insert_events_with_rollups(database, events)
    await generate_insights(database, now=NOW)

    types = [item["type"] for item in await listed(api, world.alice, monitor)]

    assert types == ["high_error_rate", "model_downgrade", "unpriced_model"]  # critical, warning, info


# --- regeneration -------------------------------------------------------------------------------


async def test_running_the_job_again_updates_the_insight_instead_of_adding_one(api, world, database, monitor):
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)
    first = await listed(api, world.alice, monitor)

    await short_calls(database, monitor, 10, now=NOW - timedelta(minutes=20))
    await generate_insights(database, now=NOW)
    second = await listed(api, world.alice, monitor)

    assert len(await rows(database)) == 1 and [item["id"] for item in second] == [first[0]["id"]]
    assert second[0]["metadata"]["shortCalls"] == 40
    assert second[0]["savings"] == pytest.approx(first[0]["savings"] * 40 / 30)


async def test_two_passes_at_once_keep_one_row_per_finding(api, world, database, monitor):
    await short_calls(database, monitor, 30)

    await asyncio.gather(generate_insights(database, now=NOW), generate_insights(database, now=NOW))

    async with database.session() as session:
        count = await session.scalar(select(func.count()).select_from(AiInsight))
    assert count == 1 and len(await listed(api, world.alice, monitor)) == 1


# --- dismissal ----------------------------------------------------------------------------------


async def test_a_dismissed_insight_stays_dismissed_through_similar_numbers(api, world, database, monitor):
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)
    insight = (await listed(api, world.alice, monitor))[0]

    response = await dismiss(api, world.adam, monitor, insight["id"])

    assert response.status_code == 200
    assert response.json()["data"] == {**insight, "dismissed": True}
    (row,) = await rows(database)
    assert row.dismissed_numbers == {"severity": "warning", "savings": insight["savings"], "metric": 30}

    await short_calls(database, monitor, 10, now=NOW - timedelta(minutes=20))  # 33% more: not material
    await generate_insights(database, now=NOW)
    (again,) = await listed(api, world.alice, monitor)
    assert again["dismissed"] is True and again["metadata"]["shortCalls"] == 40


async def test_a_material_change_brings_a_dismissed_insight_back(api, world, database, monitor):
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)
    insight = (await listed(api, world.alice, monitor))[0]
    assert (await dismiss(api, world.alice, monitor, insight["id"])).status_code == 200

    await short_calls(database, monitor, 15, now=NOW - timedelta(minutes=20))  # 50% more savings
    await generate_insights(database, now=NOW)

    (again,) = await listed(api, world.alice, monitor)
    assert again["id"] == insight["id"] and again["dismissed"] is False
    assert again["savings"] == pytest.approx(insight["savings"] * 1.5)


async def test_it_shows_a_dismissed_insight_again_on_request(api, world, database, monitor):
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)
    insight = (await listed(api, world.alice, monitor))[0]
    await dismiss(api, world.alice, monitor, insight["id"])

    response = await dismiss(api, world.alice, monitor, insight["id"], False)

    assert response.status_code == 200 and response.json()["data"]["dismissed"] is False
    (row,) = await rows(database)
    assert row.dismissed_numbers is None


# --- findings that end --------------------------------------------------------------------------


async def test_an_insight_whose_condition_ended_is_no_longer_listed_and_returns_when_it_holds(
    api, world, database, monitor
):
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)
    (insight,) = await listed(api, world.alice, monitor)

    later = NOW + timedelta(days=2)  # no usage in the window any more
    await generate_insights(database, now=later)
    assert await listed(api, world.alice, monitor) == []

    await short_calls(database, monitor, 30, now=later)
    await generate_insights(database, now=later)
    (back,) = await listed(api, world.alice, monitor)
    assert back["id"] == insight["id"] and back["dismissed"] is False


# --- the body, roles and tenancy ----------------------------------------------------------------


@pytest.fixture
async def insight_id(api, world, database, monitor) -> str:
    await short_calls(database, monitor, 30)
    await generate_insights(database, now=NOW)
    return str((await listed(api, world.alice, monitor))[0]["id"])


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "dismissed"),
        ({"dismissed": "true"}, "dismissed"),
        ({"dismissed": 1}, "dismissed"),
        ({"dismissed": None}, "dismissed"),
        ({"dismissed": True, "severity": "info"}, "severity"),
        ([True], "body"),
    ],
)
async def test_it_rejects_a_dismissal_body_that_breaks_a_rule(api, world, monitor, insight_id, body, named):
    response = await api.patch(
        f"{PATH.format(monitor.id)}/{insight_id}", json=body, headers=world.alice.headers
    )

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and named in response.json()["error"].lower()


async def test_a_viewer_cannot_dismiss(api, world, monitor, insight_id):
    response = await dismiss(api, world.vera, monitor, insight_id)

    assert response.status_code == 403
    assert (await listed(api, world.alice, monitor))[0]["dismissed"] is False


async def test_another_organization_sees_no_monitor_and_no_insight(api, world, monitor, insight_id):
    assert (await api.get(PATH.format(monitor.id), headers=world.bob.headers)).status_code == 404
    assert (await dismiss(api, world.bob, monitor, insight_id)).status_code == 404
    assert (await listed(api, world.alice, monitor))[0]["dismissed"] is False


async def test_an_insight_of_another_monitor_is_not_found(api, world, database, monitor, insight_id):
    other = await insert_llm_monitor(database, world.org_a, name="Other")

    response = await dismiss(api, world.alice, other, insight_id)

    assert response.status_code == 404 and response.json() == {"error": "Insight not found"}
    assert (await dismiss(api, world.alice, monitor, "ins_missing")).status_code == 404


async def test_a_monitor_that_is_not_llm_has_no_insights(api, world, database):
    http = await insert_monitor(database, world.org_a)

    listing = await api.get(PATH.format(http.id), headers=world.alice.headers)
    patching = await api.patch(
        f"{PATH.format(http.id)}/ins_x", json={"dismissed": True}, headers=world.alice.headers
    )

    assert listing.status_code == 400 and "LLM" in listing.json()["error"]
    assert patching.status_code == 400 and "LLM" in patching.json()["error"]


# --- the workers --------------------------------------------------------------------------------


async def test_the_workers_run_the_insights_job(
    api, world, database, monitor, settings: Settings, clock: MovableClock
):
    await short_calls(database, monitor, 30, now=clock())
    runner = build_runner(database, settings, clock)
    (job,) = [job for job in runner._jobs if job.name == "ai-insights"]
    assert job.interval_seconds == settings.ai_insights_seconds

    assert await runner.run_once(job)

    assert [item["type"] for item in await listed(api, world.alice, monitor)] == ["model_downgrade"]
