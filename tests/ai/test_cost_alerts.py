"""/api/monitors/:id/cost-alert: the reference's shapes, every field's rules, create-or-replace,
which marks a changed budget resets, tenancy, roles and monitor types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from control_plane.ai.budgets.worker import day_start
from control_plane.db import Database
from control_plane.models import CostAlert
from tests.ai.support import add_spend, insert_llm_monitor
from tests.conftest import World
from tests.factories import insert_monitor
from tests.spec import assert_shape, example

PATH = "/api/monitors/:id/cost-alert"
BODY = {"dailyBudget": 10.0, "monthlyBudget": 200.0, "alertEmails": "alice@example.com"}


def url(monitor_id: str) -> str:
    return f"/api/monitors/{monitor_id}/cost-alert"


async def llm_monitor_of(database: Database, world: World) -> str:
    return (await insert_llm_monitor(database, world.org_a)).id


async def put(api: httpx.AsyncClient, world: World, monitor_id: str, **body: Any) -> httpx.Response:
    return await api.put(url(monitor_id), json={**BODY, **body}, headers=world.alice.headers)


async def error_of(api: httpx.AsyncClient, world: World, monitor_id: str, body: Any) -> str:
    response = await api.put(url(monitor_id), json=body, headers=world.alice.headers)
    assert response.status_code == 400, (body, response.text)
    assert set(response.json()) == {"error"}
    message: str = response.json()["error"]
    return message


async def marks_of(database: Database, monitor_id: str) -> dict[str, datetime | None]:
    async with database.session() as session:
        alert = await session.scalar(select(CostAlert).where(CostAlert.monitor_id == monitor_id))
        assert alert is not None
        return {
            "daily": alert.last_daily_alert,
            "daily_warning": alert.last_daily_warning,
            "monthly": alert.last_monthly_alert,
            "monthly_warning": alert.last_monthly_warning,
        }


async def set_marks(database: Database, monitor_id: str, at: datetime) -> None:
    async with database.session() as session:
        await session.execute(
            update(CostAlert)
            .where(CostAlert.monitor_id == monitor_id)
            .values(
                last_daily_alert=at, last_daily_warning=at, last_monthly_alert=at, last_monthly_warning=at
            )
        )
        await session.commit()


# --- the reference ------------------------------------------------------------------------------


async def test_it_answers_the_reference_shapes(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    created = await put(api, world, monitor_id)
    assert created.status_code == 200, created.text
    assert_shape(created.json(), example("PUT", PATH))
    saved = created.json()["data"]
    assert saved["id"].startswith("ca_") and saved["monitorId"] == monitor_id
    assert (saved["dailyBudgetUsd"], saved["monthlyBudgetUsd"]) == (10.0, 200.0)
    assert saved["alertEmails"] == "alice@example.com"

    read = await api.get(url(monitor_id), headers=world.vera.headers)
    assert read.status_code == 200
    assert_shape(read.json(), example("GET", PATH))
    assert read.json()["data"] == {**saved, "lastDailyAlert": None, "lastMonthlyAlert": None}

    deleted = await api.delete(url(monitor_id), headers=world.adam.headers)
    assert deleted.status_code == 200
    assert deleted.json() == example("DELETE", PATH) == {"data": {"deleted": True}}
    gone = await api.get(url(monitor_id), headers=world.alice.headers)
    assert gone.status_code == 404 and gone.json() == {"error": "No cost alert is set for this monitor"}
    again = await api.delete(url(monitor_id), headers=world.alice.headers)
    assert again.status_code == 404 and again.json() == {"error": "No cost alert is set for this monitor"}


async def test_it_answers_the_marks_as_timestamps(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    await put(api, world, monitor_id)
    await set_marks(database, monitor_id, datetime(2026, 3, 13, 10, 30, 0, 123456, tzinfo=UTC))
    data = (await api.get(url(monitor_id), headers=world.alice.headers)).json()["data"]
    assert data["lastDailyAlert"] == data["lastMonthlyAlert"] == "2026-03-13T10:30:00.123Z"


async def test_a_put_replaces_the_alert_it_made(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    first = (await put(api, world, monitor_id)).json()["data"]
    second = await put(
        api,
        world,
        monitor_id,
        dailyBudget=None,
        monthlyBudget=50,
        alertEmails=" ops@example.com ,b@example.org",
    )
    assert second.status_code == 200
    assert second.json()["data"] == {
        "id": first["id"],
        "monitorId": monitor_id,
        "dailyBudgetUsd": None,
        "monthlyBudgetUsd": 50,
        "alertEmails": "ops@example.com, b@example.org",
    }
    omitted = await api.put(
        url(monitor_id),
        json={"dailyBudget": 3.5, "alertEmails": "ops@example.com"},
        headers=world.adam.headers,
    )
    assert omitted.json()["data"]["monthlyBudgetUsd"] is None  # an omitted budget is none
    async with database.session() as session:
        assert len((await session.scalars(select(CostAlert))).all()) == 1


async def test_it_trims_and_deduplicates_the_addresses(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    response = await put(
        api, world, monitor_id, alertEmails="  alice@example.com,bob@Example.com , alice@EXAMPLE.com "
    )
    assert response.json()["data"]["alertEmails"] == "alice@example.com, bob@example.com"


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["dailyBudget", "monthlyBudget"])
@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (0, "greater than 0"),
        (-1, "greater than 0"),
        (1e10, "less than or equal to 1000000000"),
        ("10", "valid number"),
        (True, "valid number"),
        ([10], "valid number"),
        ({"usd": 10}, "valid number"),
    ],
)
async def test_it_rejects_a_bad_budget(api, world, database, field, value, rule):
    monitor_id = await llm_monitor_of(database, world)
    message = await error_of(api, world, monitor_id, {**BODY, field: value})
    assert message.startswith(f"{field}:") and rule in message, message


async def test_it_rejects_a_budget_that_is_not_finite(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"dailyBudget": {literal}, "alertEmails": "a@example.com"}}'
        response = await api.put(
            url(monitor_id),
            content=raw,
            headers={**world.alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (literal, response.text)
        assert response.json()["error"].startswith("dailyBudget:"), response.text


async def test_it_needs_at_least_one_budget(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    for body in (
        {"alertEmails": "a@example.com"},
        {"dailyBudget": None, "monthlyBudget": None, "alertEmails": "a@example.com"},
    ):
        message = await error_of(api, world, monitor_id, body)
        assert message == "dailyBudget, monthlyBudget: at least one budget must be set (a number > 0)"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "at least one email address"),
        ("   ", "at least one email address"),
        ("alice@example.com, not-an-address", "'not-an-address' is not a valid email address"),
        ("alice@example.com,,bob@example.com", "entry 2 is empty"),
        ("alice@example.com,", "entry 2 is empty"),
        ("Alice <alice@example.com>", "is not a valid email address"),
        ("alice@localhost", "is not a valid email address"),
        ("alice@exa mple.com", "is not a valid email address"),
        (", ".join(f"user{i}@example.com" for i in range(21)), "at most 20 addresses (got 21)"),
        ("a" * 7000 + "@example.com", "at most 6600 characters"),
    ],
)
async def test_it_rejects_bad_alert_emails(api, world, database, value, says):
    monitor_id = await llm_monitor_of(database, world)
    message = await error_of(api, world, monitor_id, {**BODY, "alertEmails": value})
    assert message.startswith("alertEmails: ") and says in message, message


@pytest.mark.parametrize(
    "body",
    [
        {"dailyBudget": 10},
        {"dailyBudget": 10, "alertEmails": None},
        {"dailyBudget": 10, "alertEmails": ["a@example.com"]},
        {"dailyBudget": 10, "alertEmails": 42},
    ],
)
async def test_it_rejects_missing_or_mistyped_alert_emails(api, world, database, body):
    monitor_id = await llm_monitor_of(database, world)
    assert (await error_of(api, world, monitor_id, body)).startswith("alertEmails: ")


async def test_it_rejects_unknown_fields_and_bodies_that_are_no_object(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    assert await error_of(api, world, monitor_id, {**BODY, "dailyBudgetUsd": 5}) == (
        "dailyBudgetUsd: unknown field"
    )
    assert "JSON object" in await error_of(api, world, monitor_id, [BODY])
    async with database.session() as session:
        assert (await session.scalars(select(CostAlert))).all() == []


# --- marks when a budget changes ----------------------------------------------------------------


async def test_raising_a_budget_above_the_spend_lets_it_mail_again(api, world, database, clock):
    monitor_id = await llm_monitor_of(database, world)
    await put(api, world, monitor_id, dailyBudget=10, monthlyBudget=100)
    now = clock()
    await add_spend(database, world.org_a, monitor_id, now, 12.0)
    await set_marks(database, monitor_id, now)

    # Daily raised to 14: above the 12 spent, so the crossing can be mailed again; its warning
    # (80% = 11.2) stays, as 12 is over it. Monthly unchanged: its marks stay.
    await put(api, world, monitor_id, dailyBudget=14, monthlyBudget=100)
    marks = await marks_of(database, monitor_id)
    assert marks["daily"] is None and marks["daily_warning"] is not None
    assert marks["monthly"] is not None and marks["monthly_warning"] is not None

    await set_marks(database, monitor_id, now)
    await put(api, world, monitor_id, dailyBudget=11, monthlyBudget=200)  # 11 < 12 spent; 200 > 12
    marks = await marks_of(database, monitor_id)
    assert marks["daily"] is not None and marks["daily_warning"] is not None
    assert marks["monthly"] is None and marks["monthly_warning"] is None


async def test_the_same_budget_keeps_its_marks(api, world, database, clock):
    monitor_id = await llm_monitor_of(database, world)
    await put(api, world, monitor_id)
    await set_marks(database, monitor_id, day_start(clock()) + timedelta(minutes=1))
    await put(api, world, monitor_id, alertEmails="someone@example.com")
    assert None not in (await marks_of(database, monitor_id)).values()


# --- tenancy, roles, types ----------------------------------------------------------------------


async def test_a_viewer_reads_but_cannot_write(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    refused = await api.put(url(monitor_id), json=BODY, headers=world.vera.headers)
    assert refused.status_code == 403
    assert (await api.get(url(monitor_id), headers=world.vera.headers)).status_code == 404
    await put(api, world, monitor_id)
    assert (await api.get(url(monitor_id), headers=world.vera.headers)).status_code == 200
    assert (await api.delete(url(monitor_id), headers=world.vera.headers)).status_code == 403
    assert (await api.get(url(monitor_id), headers=world.alice.headers)).status_code == 200


async def test_another_organizations_monitor_is_not_found(api, world, database):
    monitor_id = await llm_monitor_of(database, world)
    await put(api, world, monitor_id)
    for response in (
        await api.get(url(monitor_id), headers=world.bob.headers),
        await api.put(url(monitor_id), json=BODY, headers=world.bob.headers),
        await api.delete(url(monitor_id), headers=world.bob.headers),
    ):
        assert response.status_code == 404 and response.json() == {"error": "Monitor not found"}
    unknown = await api.get(url("mon_nope"), headers=world.alice.headers)
    assert unknown.status_code == 404 and unknown.json() == {"error": "Monitor not found"}
    kept = (await api.get(url(monitor_id), headers=world.alice.headers)).json()["data"]
    assert kept["alertEmails"] == "alice@example.com"


async def test_a_monitor_that_is_not_llm_is_a_400(api, world, database):
    http = await insert_monitor(database, world.org_a)
    for response in (
        await api.get(url(http.id), headers=world.alice.headers),
        await api.put(url(http.id), json=BODY, headers=world.alice.headers),
        await api.delete(url(http.id), headers=world.alice.headers),
    ):
        assert response.status_code == 400
        assert response.json() == {
            "error": f"id: monitor {http.id} is a HTTP monitor; AI usage is kept for LLM monitors"
        }
