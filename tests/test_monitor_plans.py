"""Plan rules on monitors (README, Self-hosting: plans): count, minimum interval, BROWSER, resume."""

from __future__ import annotations

import pytest

from control_plane.models import Monitor
from tests.monitor_tools import (
    HTTP_MONITOR,
    count_rows,
    create_monitor,
    insert_monitors,
    set_plan,
    stored_monitor,
)

PLANS = [
    # plan, monitors, minimum interval
    ("FREE", 5, 300),
    ("PRO", 50, 60),
    ("BUSINESS", 200, 30),
    ("ENTERPRISE", None, 15),
]
BROWSER_MONITOR = {"name": "Checkout flow", "url": "https://shop.example.com/", "type": "BROWSER"}


async def test_free_allows_five_monitors(api, world, database):
    for i in range(5):
        await create_monitor(api, world.alice, name=f"Monitor {i}")
    response = await api.post("/api/monitors", json=HTTP_MONITOR, headers=world.alice.headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert "FREE" in error and "5 monitors" in error
    assert await count_rows(database, Monitor, org_id=world.org_a) == 5
    # Another organization's monitors do not count against this one.
    await create_monitor(api, world.bob)


async def test_paused_monitors_count_against_the_limit(api, world, database):
    ids = await insert_monitors(database, world.org_a, 5, is_active=False)
    assert len(ids) == 5
    response = await api.post("/api/monitors", json=HTTP_MONITOR, headers=world.alice.headers)
    assert response.status_code == 403


async def test_deleting_a_monitor_makes_room(api, world, database):
    ids = await insert_monitors(database, world.org_a, 5)
    assert (
        await api.post("/api/monitors", json=HTTP_MONITOR, headers=world.alice.headers)
    ).status_code == 403
    assert (await api.delete(f"/api/monitors/{ids[0]}", headers=world.alice.headers)).status_code == 200
    await create_monitor(api, world.alice)


@pytest.mark.parametrize(("plan", "limit", "minimum"), PLANS)
async def test_each_plans_monitor_count(api, world, database, plan, limit, minimum):
    await set_plan(database, world.org_a, plan)
    existing = (limit or 250) - 1  # ENTERPRISE: past every other plan's limit
    await insert_monitors(database, world.org_a, existing)
    await create_monitor(api, world.alice, interval=minimum)
    response = await api.post(
        "/api/monitors", json={**HTTP_MONITOR, "interval": minimum}, headers=world.alice.headers
    )
    if limit is None:
        assert response.status_code == 201
        return
    assert response.status_code == 403
    assert plan in response.json()["error"] and f"{limit} monitors" in response.json()["error"]


@pytest.mark.parametrize(("plan", "limit", "minimum"), PLANS)
async def test_each_plans_minimum_interval(api, world, database, plan, limit, minimum):
    await set_plan(database, world.org_a, plan)
    response = await api.post(
        "/api/monitors", json={**HTTP_MONITOR, "interval": minimum - 1}, headers=world.alice.headers
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error.startswith("interval:") and plan in error and f"{minimum} s" in error
    monitor = await create_monitor(api, world.alice, interval=minimum, timeout=min(10, minimum))
    assert monitor["interval"] == minimum
    # An update below the minimum is refused the same way and changes nothing.
    url = f"/api/monitors/{monitor['id']}"
    response = await api.put(
        url, json={"interval": minimum - 1, "name": "Faster"}, headers=world.alice.headers
    )
    assert response.status_code == 403 and plan in response.json()["error"]
    assert (await api.get(url, headers=world.alice.headers)).json()["data"]["name"] == HTTP_MONITOR["name"]


async def test_free_interval_rules(api, world):
    for interval, status in ((60, 403), (299, 403), (300, 201), (3600, 201), (3601, 400), (86400, 400)):
        response = await api.post(
            "/api/monitors", json={**HTTP_MONITOR, "interval": interval}, headers=world.alice.headers
        )
        assert response.status_code == status, (interval, response.text)
        if status == 403:
            assert "FREE" in response.json()["error"] and "300" in response.json()["error"]
        if status == 400:
            assert response.json()["error"].startswith("interval:")
        if status == 201:
            await api.delete(f"/api/monitors/{response.json()['data']['id']}", headers=world.alice.headers)


async def test_enterprise_accepts_15_seconds_although_the_reference_says_30(api, world, database):
    await set_plan(database, world.org_a, "ENTERPRISE")
    monitor = await create_monitor(api, world.alice, interval=15)
    assert monitor["interval"] == 15 and monitor["timeout"] == 15


@pytest.mark.parametrize("plan", ["FREE", "PRO"])
async def test_browser_needs_business_or_enterprise(api, world, database, plan):
    await set_plan(database, world.org_a, plan)
    response = await api.post("/api/monitors", json=BROWSER_MONITOR, headers=world.alice.headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert "BROWSER" in error and plan in error and "BUSINESS" in error
    # Nor may an existing monitor become one.
    monitor = await create_monitor(api, world.alice)
    response = await api.put(
        f"/api/monitors/{monitor['id']}", json={"type": "BROWSER"}, headers=world.alice.headers
    )
    assert response.status_code == 403 and plan in response.json()["error"]
    assert (await stored_monitor(database, monitor["id"])).type == "HTTP"  # type: ignore[union-attr]


@pytest.mark.parametrize("plan", ["BUSINESS", "ENTERPRISE"])
async def test_browser_on_business_and_enterprise(api, world, database, plan):
    await set_plan(database, world.org_a, plan)
    monitor = await create_monitor(
        api, world.alice, **BROWSER_MONITOR, config={"viewport": {"width": 800, "height": 600}}
    )
    assert monitor["type"] == "BROWSER"
    http = await create_monitor(api, world.alice)
    response = await api.put(
        f"/api/monitors/{http['id']}", json={"type": "BROWSER"}, headers=world.alice.headers
    )
    assert response.status_code == 200 and response.json()["data"]["type"] == "BROWSER"


async def test_a_kept_browser_monitor_can_still_be_edited_after_a_downgrade(api, world, database):
    (browser_id,) = await insert_monitors(database, world.org_a, 1, type="BROWSER", is_active=False)
    url = f"/api/monitors/{browser_id}"
    response = await api.put(url, json={"name": "Renamed", "type": "BROWSER"}, headers=world.alice.headers)
    assert response.status_code == 200 and response.json()["data"]["name"] == "Renamed"
    # Running it again needs the plan, though.
    response = await api.post(f"{url}/resume", headers=world.alice.headers)
    assert response.status_code == 403
    assert "BROWSER" in response.json()["error"] and "FREE" in response.json()["error"]


async def test_resume_is_refused_at_the_active_limit(api, world, database):
    # As a downgrade leaves it: five active monitors and a sixth paused beyond the limit.
    active = await insert_monitors(database, world.org_a, 5)
    (paused,) = await insert_monitors(database, world.org_a, 1, is_active=False)
    response = await api.post(f"/api/monitors/{paused}/resume", headers=world.alice.headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert "FREE" in error and "5" in error
    assert (await stored_monitor(database, paused)).is_active is False  # type: ignore[union-attr]
    # Resuming an already active monitor is not a new one.
    assert (
        await api.post(f"/api/monitors/{active[0]}/resume", headers=world.alice.headers)
    ).status_code == 200
    # Pausing another makes room.
    assert (
        await api.post(f"/api/monitors/{active[0]}/pause", headers=world.alice.headers)
    ).status_code == 200
    response = await api.post(f"/api/monitors/{paused}/resume", headers=world.alice.headers)
    assert response.status_code == 200 and response.json()["data"]["isActive"] is True


async def test_resume_raises_an_interval_below_the_plan_minimum(api, world, database):
    (monitor_id,) = await insert_monitors(database, world.org_a, 1, interval=30, timeout=10, is_active=False)
    response = await api.post(f"/api/monitors/{monitor_id}/resume", headers=world.alice.headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["interval"], data["timeout"], data["isActive"]) == (300, 10, True)
    assert (await stored_monitor(database, monitor_id)).interval == 300  # type: ignore[union-attr]


async def test_a_kept_interval_below_the_minimum_does_not_block_other_edits(api, world, database):
    (monitor_id,) = await insert_monitors(database, world.org_a, 1, interval=60)
    url = f"/api/monitors/{monitor_id}"
    # Sending the stored interval back unchanged is not asking for it anew.
    response = await api.put(url, json={"name": "Renamed", "interval": 60}, headers=world.alice.headers)
    assert response.status_code == 200 and response.json()["data"]["interval"] == 60
    response = await api.put(url, json={"interval": 120}, headers=world.alice.headers)
    assert response.status_code == 403


async def test_an_upgrade_applies_to_the_next_request(api, world, database):
    await insert_monitors(database, world.org_a, 5)
    assert (
        await api.post("/api/monitors", json=HTTP_MONITOR, headers=world.alice.headers)
    ).status_code == 403
    await set_plan(database, world.org_a, "PRO")
    monitor = await create_monitor(api, world.alice, interval=60)
    assert monitor["interval"] == 60
