"""/api/monitors: create, list, get, update, delete, pause/resume, checks, incidents, performance.

Shapes are the reference's examples plus our documented additions: `config` on create, get,
update, pause and resume, and `heartbeatUrl` / `ingestUrl` on HEARTBEAT / LLM monitors.
"""

from __future__ import annotations

import asyncio
import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from control_plane.models import CheckResult, CheckRollup, Incident, Monitor, Organization, RollupBacklog
from control_plane.services.monitors import MONITORS_TOPIC
from control_plane.workers.rollups import fold_rollups
from tests.monitor_tools import (
    BASE_TIME,
    HTTP_MONITOR,
    count_rows,
    create_monitor,
    insert_incident,
    insert_monitors,
    record,
    set_plan,
)
from tests.spec import assert_shape, example


def with_additions(reference: dict[str, Any], **additions: Any) -> dict[str, Any]:
    """The reference example with our documented extra keys in `data` (or in each list item)."""
    shaped = copy.deepcopy(reference)
    items = shaped["data"] if isinstance(shaped["data"], list) else [shaped["data"]]
    for item in items:
        item.update(additions)
    return shaped


CREATE_SHAPE = with_additions(example("POST", "/api/monitors"), config=None, alertChannelIds=None)
# Every check also says why it failed or warned: `error` and `errorKind` (strings or null).
CHECK_ADDITIONS = {"error": "", "errorKind": ""}
GET_SHAPE = with_additions(example("GET", "/api/monitors/:id"), config=None, alertChannelIds=None)
GET_SHAPE["data"]["checks"][0].update(CHECK_ADDITIONS)
# Every incident also says its kind, regions, timeline status, flapping, suppression, maintenance
# and acknowledgement (docs/incidents.md).
INCIDENT_ADDITIONS: dict[str, Any] = {
    "kind": "",
    "regions": [],
    "status": "",
    "flapping": False,
    "suppressedBy": None,
    "inMaintenance": False,
    "acknowledgedAt": None,
    "acknowledgedBy": None,
}
GET_SHAPE["data"]["incidents"][0].update(INCIDENT_ADDITIONS, isActive=False)
CHECKS_SHAPE = with_additions(example("GET", "/api/monitors/:id/checks"), **CHECK_ADDITIONS)
UPDATE_SHAPE = with_additions(example("PUT", "/api/monitors/:id"), config=None, alertChannelIds=None)
# pause/resume: the reference elides the monitor ("..."); we answer the full monitor, as create does.
PAUSE_SHAPE = {"data": CREATE_SHAPE["data"], "message": "Monitor paused"}
HB_TOKEN = re.compile(r"^hb_[A-Za-z0-9_-]{32,}$")


# --- create -------------------------------------------------------------------------------------


async def test_create_answers_201_in_the_reference_shape_with_defaults(api, world, settings):
    response = await api.post("/api/monitors", json=HTTP_MONITOR, headers=world.alice.headers)
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, CREATE_SHAPE)
    monitor = body["data"]
    assert monitor["id"].startswith("mon_") and len(monitor["id"]) >= 4 + 26
    assert monitor | {"id": None, "createdAt": None, "updatedAt": None} == {
        "id": None,
        "name": "Production API",
        "url": "https://api.example.com/health",
        "type": "HTTP",
        "interval": 300,  # max(60, FREE's minimum of 300)
        "isActive": True,
        "method": "GET",
        "expectedStatus": None,
        "expectedKeyword": None,
        "timeout": 30,
        "regions": ["us-east-1"],
        "config": {},
        "alertChannelIds": None,
        "orgId": world.org_a,
        "createdAt": None,
        "updatedAt": None,
    }
    assert monitor["createdAt"] == monitor["updatedAt"]


async def test_create_defaults_follow_the_plan_and_cap_the_timeout(api, world, database):
    await set_plan(database, world.org_a, "ENTERPRISE")
    monitor = await create_monitor(api, world.alice)
    assert (monitor["interval"], monitor["timeout"]) == (60, 30)  # the reference's default of 60
    short = await create_monitor(api, world.alice, interval=15)
    assert (short["interval"], short["timeout"]) == (15, 15)  # a timeout never outlasts the interval
    await set_plan(database, world.org_a, "PRO")
    assert (await create_monitor(api, world.alice))["interval"] == 60


async def test_create_stores_every_field_given(api, world, database, settings, monkeypatch):
    monkeypatch.setattr(settings, "regions", ["us-east-1", "eu-west-1"])
    await set_plan(database, world.org_a, "PRO")
    body = {
        "name": "  Production API  ",
        "url": "https://api.example.com/health",
        "type": "HTTP",
        "interval": 60,
        "method": "POST",
        "expectedStatus": 200,
        "expectedKeyword": "ok",
        "timeout": 10,
        "regions": ["us-east-1", "eu-west-1"],
        "config": {"headers": {"Authorization": "Bearer token"}, "body": "{}"},
    }
    response = await api.post("/api/monitors", json=body, headers=world.adam.headers)
    assert response.status_code == 201
    monitor = response.json()["data"]
    assert {key: monitor[key] for key in body} == body | {"name": "Production API"}
    fetched = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.vera.headers)).json()["data"]
    assert {key: fetched[key] for key in body} == body | {"name": "Production API"}


# --- list ---------------------------------------------------------------------------------------


async def test_list_is_newest_first_with_last_check(api, world, database):
    first = await create_monitor(api, world.alice, name="First")
    second = await create_monitor(api, world.alice, name="Second")
    await create_monitor(api, world.bob, name="Other org")
    response = await api.get("/api/monitors", headers=world.alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, with_additions(example("GET", "/api/monitors"), lastCheck=None))
    assert [m["id"] for m in body["data"]] == [second["id"], first["id"]]
    assert [m["lastCheck"] for m in body["data"]] == [None, None]

    await record(
        database,
        first["id"],
        {"checked_at": BASE_TIME, "status": "UP", "response_time": 142.4},
        {"checked_at": BASE_TIME + timedelta(minutes=5), "status": "DOWN", "response_time": 30000.0},
        {"checked_at": BASE_TIME - timedelta(minutes=5), "status": "UP", "response_time": 90.0},
    )
    body = (await api.get("/api/monitors", headers=world.alice.headers)).json()
    assert_shape({"data": body["data"][1:]}, example("GET", "/api/monitors"))
    assert body["data"][1]["lastCheck"] == {
        "status": "DOWN",
        "responseTime": 30000,
        "checkedAt": "2025-06-15T12:05:00.000Z",
    }
    assert body["data"][0]["lastCheck"] is None
    assert "config" not in body["data"][0]  # the list is the reference's, without additions


async def test_an_empty_organization_lists_nothing(api, world):
    response = await api.get("/api/monitors", headers=world.bob.headers)
    assert response.status_code == 200 and response.json() == {"data": []}


# --- get ----------------------------------------------------------------------------------------


async def test_get_has_the_last_50_checks_and_10_most_recent_incidents(api, world, database):
    monitor = await create_monitor(api, world.alice)
    await record(
        database,
        monitor["id"],
        *(
            {
                "checked_at": BASE_TIME + timedelta(minutes=i),
                "response_time": 100.0 + i,
                "region": "us-east-1",
            }
            for i in range(60)
        ),
    )
    for i in range(12):
        started = BASE_TIME - timedelta(days=i + 1)
        await insert_incident(database, world.org_a, monitor["id"], started, started + timedelta(seconds=900))
    response = await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, GET_SHAPE)
    detail = body["data"]
    assert "orgId" not in detail and "updatedAt" not in detail
    assert len(detail["checks"]) == 50
    assert detail["checks"][0] | {"id": None} == {
        "id": None,
        "status": "UP",
        "responseTime": 159,
        "statusCode": 200,
        "region": "us-east-1",
        "checkedAt": "2025-06-15T12:59:00.000Z",
        "error": None,
        "errorKind": None,
    }
    assert detail["checks"][-1]["checkedAt"] == "2025-06-15T12:10:00.000Z"
    stamps = [check["checkedAt"] for check in detail["checks"]]
    assert stamps == sorted(stamps, reverse=True)
    assert len(detail["incidents"]) == 10
    assert detail["incidents"][0] | {"id": None} == {
        "id": None,
        "startedAt": "2025-06-14T12:00:00.000Z",
        "resolvedAt": "2025-06-14T12:15:00.000Z",
        "duration": 900,
        "cause": "Connection timeout",
        "isActive": False,
        "kind": "DOWN",
        "regions": [],
        "status": "investigating",
        "flapping": False,
        "suppressedBy": None,
        "inMaintenance": False,
        "acknowledgedAt": None,
        "acknowledgedBy": None,
    }
    assert detail["incidents"][-1]["startedAt"] == "2025-06-05T12:00:00.000Z"


@pytest.mark.parametrize("monitor_id", ["mon_doesnotexist", "x" * 3000])
async def test_get_an_unknown_monitor_is_404(api, world, monitor_id):
    response = await api.get(f"/api/monitors/{monitor_id}", headers=world.alice.headers)
    assert response.status_code == 404
    assert response.json() == {"error": "Monitor not found"}


@pytest.mark.parametrize("path", ["/api/monitors/mon_%00", "/api/api-keys/key_%00", "/api/team/mem_%00"])
async def test_a_nul_character_in_a_path_is_a_plain_404(api, world, path):
    """PostgreSQL cannot even compare with U+0000: no such id can exist, so no query is made."""
    for method in ("GET", "DELETE"):
        response = await api.request(method, path, headers=world.alice.headers)
        assert response.status_code == 404 and response.json() == {"error": "Not found"}


# --- update -------------------------------------------------------------------------------------


async def test_update_changes_only_the_fields_given(api, world, database, clock):
    await set_plan(database, world.org_a, "BUSINESS")
    monitor = await create_monitor(
        api,
        world.alice,
        interval=120,
        method="HEAD",
        expectedStatus=204,
        expectedKeyword="ok",
        timeout=10,
        config={"followRedirects": False},
    )
    clock.advance(timedelta(seconds=1))  # updatedAt has millisecond resolution: move the clock past it
    response = await api.put(
        f"/api/monitors/{monitor['id']}",
        json={"name": "Production API (Updated)", "interval": 30},
        headers=world.adam.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, UPDATE_SHAPE)
    updated = body["data"]
    assert updated["name"] == "Production API (Updated)" and updated["interval"] == 30
    assert updated["updatedAt"] > monitor["updatedAt"] and updated["createdAt"] == monitor["createdAt"]
    fetched = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).json()["data"]
    unchanged = ("url", "type", "method", "expectedStatus", "expectedKeyword", "timeout", "regions", "config")
    assert {key: fetched[key] for key in unchanged} == {key: monitor[key] for key in unchanged}
    assert fetched["config"] == {"followRedirects": False}


async def test_update_can_clear_nullable_fields_and_an_empty_body_changes_nothing(api, world):
    monitor = await create_monitor(api, world.alice, expectedStatus=200, expectedKeyword="ok")
    url = f"/api/monitors/{monitor['id']}"
    response = await api.put(url, json={}, headers=world.alice.headers)
    assert response.status_code == 200
    assert response.json()["data"]["name"] == monitor["name"]
    response = await api.put(
        url,
        json={"expectedStatus": None, "expectedKeyword": None, "config": None},
        headers=world.alice.headers,
    )
    assert response.status_code == 200
    fetched = (await api.get(url, headers=world.alice.headers)).json()["data"]
    assert (fetched["expectedStatus"], fetched["expectedKeyword"], fetched["config"]) == (None, None, {})


async def test_a_type_change_revalidates_url_and_config(api, world):
    monitor = await create_monitor(api, world.alice, config={"headers": {"X-Probe": "1"}})
    url = f"/api/monitors/{monitor['id']}"
    response = await api.put(url, json={"type": "TCP"}, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("url:") and "tcp://" in response.json()["error"]
    response = await api.put(
        url,
        json={"type": "TCP", "url": "tcp://db.example.com:5432", "config": {"headers": {"X-Probe": "1"}}},
        headers=world.alice.headers,
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("config.headers: unknown field for a TCP monitor")
    # The HTTP config goes with the HTTP type; the stored monitor did not change on the 400s.
    response = await api.put(
        url, json={"type": "TCP", "url": "tcp://db.example.com:5432"}, headers=world.alice.headers
    )
    assert response.status_code == 200
    changed = response.json()["data"]
    assert (changed["type"], changed["url"], changed["config"]) == ("TCP", "tcp://db.example.com:5432", {})
    # To a passive type the old target goes too: HEARTBEAT needs no url.
    response = await api.put(url, json={"type": "HEARTBEAT"}, headers=world.alice.headers)
    assert response.status_code == 200
    heartbeat = response.json()["data"]
    assert heartbeat["url"] is None and HB_TOKEN.match(heartbeat["heartbeatUrl"].rsplit("/", 1)[1])
    response = await api.put(url, json={"type": "PING", "url": "db.example.com"}, headers=world.alice.headers)
    assert response.status_code == 200 and "heartbeatUrl" not in response.json()["data"]


UPDATABLE_FIELDS = (
    "name",
    "url",
    "type",
    "interval",
    "method",
    "expectedStatus",
    "expectedKeyword",
    "timeout",
    "regions",
    "config",
)


async def test_an_update_that_changes_nothing_keeps_updated_at_and_tells_no_agent(api, world, database):
    await set_plan(database, world.org_a, "BUSINESS")
    monitor = await create_monitor(
        api, world.alice, interval=120, expectedStatus=204, config={"followRedirects": False}
    )
    url = f"/api/monitors/{monitor['id']}"
    stamp = datetime(2025, 1, 1, tzinfo=UTC)  # set back, so any rewrite shows without waiting
    async with database.session() as session:
        await session.execute(update(Monitor).where(Monitor.id == monitor["id"]).values(updated_at=stamp))
        await session.commit()
    published: list[str] = []
    database.changes.subscribe(MONITORS_TOPIC, published.append)
    try:
        fetched = (await api.get(url, headers=world.alice.headers)).json()["data"]
        same_values = {key: fetched[key] for key in UPDATABLE_FIELDS}
        for body in ({}, same_values, {"name": monitor["name"]}, {"regions": fetched["regions"]}):
            response = await api.put(url, json=body, headers=world.alice.headers)
            assert response.status_code == 200, response.text
            assert response.json()["data"]["updatedAt"] == "2025-01-01T00:00:00.000Z", body
            assert await stored_updated_at(database, monitor["id"]) == stamp, body
        assert monitor["id"] not in published
        # A real change still moves updatedAt and reaches the agents.
        response = await api.put(url, json={"name": "Renamed"}, headers=world.alice.headers)
        assert response.json()["data"]["updatedAt"] > "2025-01-01T00:00:00.000Z"
        assert await stored_updated_at(database, monitor["id"]) > stamp
        assert monitor["id"] in published
    finally:
        database.changes.unsubscribe(MONITORS_TOPIC, published.append)


async def stored_updated_at(database, monitor_id: str) -> datetime:
    async with database.session() as session:
        return (await session.get(Monitor, monitor_id)).updated_at


async def test_update_an_unknown_monitor_is_404(api, world):
    response = await api.put("/api/monitors/mon_nope", json={"name": "x"}, headers=world.alice.headers)
    assert response.status_code == 404


# --- delete -------------------------------------------------------------------------------------


async def test_delete_removes_the_monitor_with_its_checks_and_incidents(api, world, database):
    monitor = await create_monitor(api, world.alice)
    keep = await create_monitor(api, world.alice, name="Kept")
    for target in (monitor, keep):
        await record(database, target["id"], {"checked_at": BASE_TIME, "dns": 1.0, "total": 90.0})
        await insert_incident(database, world.org_a, target["id"], BASE_TIME)
    await fold_rollups(database)
    for target in (monitor, keep):  # and one still queued for its rollups
        await record(database, target["id"], {"checked_at": BASE_TIME, "dns": 2.0, "total": 80.0})
    assert await count_rows(database, CheckRollup, monitor_id=monitor["id"]) > 0

    response = await api.delete(f"/api/monitors/{monitor['id']}", headers=world.adam.headers)
    assert response.status_code == 200
    assert response.json() == {"message": "Monitor deleted successfully"}
    assert_shape(response.json(), example("DELETE", "/api/monitors/:id"))
    for model in (CheckResult, CheckRollup, RollupBacklog, Incident):
        assert await count_rows(database, model, monitor_id=monitor["id"]) == 0, model.__name__
        assert await count_rows(database, model, monitor_id=keep["id"]) > 0, model.__name__
    assert await count_rows(database, Monitor, id=monitor["id"]) == 0
    assert (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).status_code == 404
    assert (
        await api.delete(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)
    ).status_code == 404


# --- pause / resume -----------------------------------------------------------------------------


async def test_pause_and_resume(api, world):
    monitor = await create_monitor(api, world.alice)
    response = await api.post(f"/api/monitors/{monitor['id']}/pause", headers=world.alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, PAUSE_SHAPE)
    assert body["message"] == "Monitor paused"
    assert body["data"]["isActive"] is False and body["data"]["id"] == monitor["id"]
    assert body["data"]["name"] == monitor["name"]
    listed = (await api.get("/api/monitors", headers=world.alice.headers)).json()["data"]
    assert listed[0]["isActive"] is False
    # Pausing twice is harmless.
    again = await api.post(f"/api/monitors/{monitor['id']}/pause", headers=world.adam.headers)
    assert again.status_code == 200 and again.json()["data"]["isActive"] is False

    response = await api.post(f"/api/monitors/{monitor['id']}/resume", headers=world.adam.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, {**PAUSE_SHAPE, "message": ""})
    assert body["message"] == "Monitor resumed" and body["data"]["isActive"] is True
    assert (await api.get("/api/monitors", headers=world.alice.headers)).json()["data"][0]["isActive"] is True


async def test_pause_and_resume_of_an_unknown_monitor_are_404(api, world):
    for action in ("pause", "resume"):
        response = await api.post(f"/api/monitors/mon_nope/{action}", headers=world.alice.headers)
        assert response.status_code == 404


# --- checks -------------------------------------------------------------------------------------


@pytest.fixture
async def with_checks(api, world, database) -> dict[str, Any]:
    """A monitor with 25 results, one a minute from BASE_TIME (12:00 … 12:24)."""
    monitor = await create_monitor(api, world.alice)
    await record(
        database,
        monitor["id"],
        *({"checked_at": BASE_TIME + timedelta(minutes=i), "response_time": float(i)} for i in range(25)),
    )
    return monitor


async def test_checks_are_paginated_newest_first(api, world, with_checks):
    url = f"/api/monitors/{with_checks['id']}/checks"
    response = await api.get(url, params={"page": 1, "limit": 10}, headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, CHECKS_SHAPE)
    assert body["pagination"] == {"page": 1, "limit": 10, "total": 25, "totalPages": 3}
    assert [c["responseTime"] for c in body["data"]] == list(range(24, 14, -1))
    assert body["data"][0]["monitorId"] == with_checks["id"]
    assert body["data"][0]["checkedAt"] == "2025-06-15T12:24:00.000Z"
    third = (await api.get(url, params={"page": 3, "limit": 10}, headers=world.vera.headers)).json()
    assert [c["responseTime"] for c in third["data"]] == [4, 3, 2, 1, 0]
    beyond = (await api.get(url, params={"page": 4, "limit": 10}, headers=world.vera.headers)).json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 25
    default = (await api.get(url, headers=world.vera.headers)).json()
    assert default["pagination"] == {"page": 1, "limit": 50, "total": 25, "totalPages": 1}
    assert len(default["data"]) == 25


async def test_checks_filter_by_from_and_to(api, world, with_checks):
    url = f"/api/monitors/{with_checks['id']}/checks"

    async def times(**params: str) -> list[int]:
        response = await api.get(url, params=params, headers=world.alice.headers)
        assert response.status_code == 200, response.text
        assert response.json()["pagination"]["total"] == len(response.json()["data"])
        return [c["responseTime"] for c in response.json()["data"]]

    assert await times(**{"from": "2025-06-15T12:20:00Z"}) == [24, 23, 22, 21, 20]
    assert await times(to="2025-06-15T12:02:00.000Z") == [2, 1, 0]
    assert await times(**{"from": "2025-06-15T14:05:00+02:00", "to": "2025-06-15T12:07:00"}) == [7, 6, 5]
    assert await times(**{"from": "2025-06-15T12:03:00Z", "to": "2025-06-15T12:03:00Z"}) == [3]
    assert await times(**{"from": "2025-06-16"}) == []
    assert len(await times(**{"from": "2025-06-15", "to": "2025-06-16"})) == 25


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01T00:00:00Z"}, "to"),
        ({"from": "2025-06-15T12:00:00+25:00"}, "from"),
        ({"to": "9999-12-31T23:59:59-23:00"}, "to"),  # past year 9999 once in UTC
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),  # before year 1 once in UTC
        ({"from": "2025-06-15T12:10:00Z", "to": "2025-06-15T12:00:00Z"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "x"}, "page"),
    ],
)
async def test_bad_check_queries_are_400(api, world, with_checks, params, field):
    response = await api.get(
        f"/api/monitors/{with_checks['id']}/checks", params=params, headers=world.alice.headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}:")


async def test_limit_bounds_are_accepted(api, world, with_checks):
    for limit, count in ((1, 1), (100, 25)):
        response = await api.get(
            f"/api/monitors/{with_checks['id']}/checks", params={"limit": limit}, headers=world.alice.headers
        )
        assert response.status_code == 200 and len(response.json()["data"]) == count


# --- incidents ----------------------------------------------------------------------------------


async def test_incidents_are_newest_first_with_state_and_duration(api, world, database):
    monitor = await create_monitor(api, world.alice)
    other = await create_monitor(api, world.alice, name="Other")
    old = await insert_incident(
        database,
        world.org_a,
        monitor["id"],
        BASE_TIME - timedelta(days=1),
        BASE_TIME - timedelta(days=1) + timedelta(seconds=900),
    )
    active = await insert_incident(database, world.org_a, monitor["id"], BASE_TIME, cause="HTTP 503")
    await insert_incident(database, world.org_a, other["id"], BASE_TIME)
    response = await api.get(f"/api/monitors/{monitor['id']}/incidents", headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, with_additions(example("GET", "/api/monitors/:id/incidents"), **INCIDENT_ADDITIONS))
    reference_fields = set(example("GET", "/api/monitors/:id/incidents")["data"][0])
    assert [{k: v for k, v in item.items() if k in reference_fields} for item in body["data"]] == [
        {
            "id": active,
            "monitorId": monitor["id"],
            "monitorName": "Production API",
            "startedAt": "2025-06-15T12:00:00.000Z",
            "resolvedAt": None,
            "duration": None,
            "cause": "HTTP 503",
            "isActive": True,
        },
        {
            "id": old,
            "monitorId": monitor["id"],
            "monitorName": "Production API",
            "startedAt": "2025-06-14T12:00:00.000Z",
            "resolvedAt": "2025-06-14T12:15:00.000Z",
            "duration": 900,
            "cause": "Connection timeout",
            "isActive": False,
        },
    ]


async def test_a_monitor_without_incidents_lists_none(api, world):
    monitor = await create_monitor(api, world.alice)
    response = await api.get(f"/api/monitors/{monitor['id']}/incidents", headers=world.alice.headers)
    assert response.status_code == 200 and response.json() == {"data": []}


# --- performance --------------------------------------------------------------------------------


async def test_performance_reports_averages_p95_and_a_series(api, world, database):
    monitor = await create_monitor(api, world.alice)
    now = datetime.now(UTC)
    phases = {
        "dns": 10.0,
        "tcp": 8.0,
        "tls": 20.0,
        "ttfb": 40.0,
        "download": 5.0,
        "total": 83.0,
        "size": 2048,
    }
    await record(
        database,
        monitor["id"],
        {"checked_at": now - timedelta(minutes=10), **phases},
        {"checked_at": now - timedelta(minutes=9), **phases},
        {"checked_at": now - timedelta(hours=30), **phases},  # outside 24 h
    )
    response = await api.get(f"/api/monitors/{monitor['id']}/performance", headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/monitors/:id/performance"))
    data = body["data"]
    assert data["sampleCount"] == 2
    assert data["averages"] == {
        "dns": 10.0,
        "tcp": 8.0,
        "tls": 20.0,
        "ttfb": 40.0,
        "download": 5.0,
        "total": 83.0,
        "size": 2048,
    }
    assert set(data["p95"]) == {"dns", "tcp", "tls", "ttfb", "download", "total"}
    assert data["timeSeries"] and all(
        point["timestamp"].endswith(":00:00.000Z") for point in data["timeSeries"]
    )
    week = (
        await api.get(
            f"/api/monitors/{monitor['id']}/performance", params={"hours": 168}, headers=world.vera.headers
        )
    ).json()
    assert week["data"]["sampleCount"] == 3


async def test_performance_of_a_monitor_without_results_is_empty(api, world):
    monitor = await create_monitor(api, world.alice)
    response = await api.get(
        f"/api/monitors/{monitor['id']}/performance", params={"hours": 1}, headers=world.alice.headers
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["sampleCount"] == 0 and data["timeSeries"] == []


@pytest.mark.parametrize("hours", ["0", "169", "-1", "abc", "1.5"])
async def test_performance_hours_outside_1_to_168_are_400(api, world, hours):
    monitor = await create_monitor(api, world.alice)
    response = await api.get(
        f"/api/monitors/{monitor['id']}/performance", params={"hours": hours}, headers=world.alice.headers
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("hours:")


# --- passive types ------------------------------------------------------------------------------


async def test_a_heartbeat_monitor_carries_its_ping_url(api, world, settings):
    first = await create_monitor(api, world.alice, type="HEARTBEAT", url=None, name="Nightly backup")
    second = await create_monitor(api, world.alice, type="HEARTBEAT", name="Hourly job", url=None)
    assert_shape({"data": first}, with_additions(CREATE_SHAPE, heartbeatUrl=""))
    prefix = f"{settings.public_url}/api/heartbeat/"
    tokens = []
    for monitor in (first, second):
        assert monitor["heartbeatUrl"].startswith(prefix) and monitor["url"] is None
        token = monitor["heartbeatUrl"].removeprefix(prefix)
        assert HB_TOKEN.match(token), token  # 32+ url-safe characters: at least 192 random bits
        tokens.append(token)
    assert tokens[0] != tokens[1]
    url = f"/api/monitors/{first['id']}"
    # Every answer about the monitor carries the same URL: the token never changes on an update.
    detail = (await api.get(url, headers=world.alice.headers)).json()
    assert_shape(detail, with_additions(GET_SHAPE, heartbeatUrl=""))
    listed = (await api.get("/api/monitors", headers=world.alice.headers)).json()
    assert_shape(listed, with_additions(example("GET", "/api/monitors"), heartbeatUrl="", lastCheck=None))
    updated = (await api.put(url, json={"name": "Renamed"}, headers=world.alice.headers)).json()
    paused = (await api.post(f"{url}/pause", headers=world.alice.headers)).json()
    for answer in (detail["data"], listed["data"][1], updated["data"], paused["data"]):
        assert answer["heartbeatUrl"] == first["heartbeatUrl"]


async def test_an_llm_monitor_carries_its_ingest_url(api, world, settings):
    monitor = await create_monitor(api, world.alice, type="LLM", name="Chat bot", url=None)
    assert_shape({"data": monitor}, with_additions(CREATE_SHAPE, ingestUrl=""))
    assert monitor["ingestUrl"] == f"{settings.public_url}/api/ai/ingest/{monitor['id']}"
    assert "heartbeatUrl" not in monitor
    detail = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).json()["data"]
    assert detail["ingestUrl"] == monitor["ingestUrl"]


async def test_other_types_carry_no_passive_url(api, world):
    monitor = await create_monitor(api, world.alice)
    assert "heartbeatUrl" not in monitor and "ingestUrl" not in monitor


# --- tenancy and roles --------------------------------------------------------------------------


def every_endpoint(monitor_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/api/monitors/{monitor_id}"
    return [
        ("GET", base, None),
        ("PUT", base, {"name": "Taken over"}),
        ("DELETE", base, None),
        ("POST", f"{base}/pause", None),
        ("POST", f"{base}/resume", None),
        ("GET", f"{base}/checks", None),
        ("GET", f"{base}/incidents", None),
        ("GET", f"{base}/performance", None),
    ]


async def test_another_organizations_monitor_is_404_and_unchanged(api, world, database):
    monitor = await create_monitor(api, world.alice)
    await record(database, monitor["id"], {"checked_at": BASE_TIME})
    await insert_incident(database, world.org_a, monitor["id"], BASE_TIME)
    before = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).json()
    for method, path, body in every_endpoint(monitor["id"]):
        response = await api.request(method, path, json=body, headers=world.bob.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "Monitor not found"}
    after = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).json()
    assert after == before
    assert [m["id"] for m in (await api.get("/api/monitors", headers=world.bob.headers)).json()["data"]] == []


async def test_a_viewer_reads_but_every_write_is_403(api, world):
    monitor = await create_monitor(api, world.alice)
    writes = [(m, p, b) for m, p, b in every_endpoint(monitor["id"]) if m != "GET"]
    writes.append(("POST", "/api/monitors", HTTP_MONITOR))
    for method, path, body in writes:
        response = await api.request(method, path, json=body, headers=world.vera.headers)
        assert response.status_code == 403, (method, path)
        assert "VIEWER" in response.json()["error"]
    reads = [(m, p) for m, p, _ in every_endpoint(monitor["id"]) if m == "GET"] + [("GET", "/api/monitors")]
    for method, path in reads:
        assert (await api.request(method, path, headers=world.vera.headers)).status_code == 200, path
    after = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).json()["data"]
    assert after["name"] == monitor["name"] and after["isActive"] is True
    assert len((await api.get("/api/monitors", headers=world.alice.headers)).json()["data"]) == 1


async def test_without_an_organization_every_endpoint_is_404(api, world):
    monitor = await create_monitor(api, world.alice)
    calls = [
        *every_endpoint(monitor["id"]),
        ("GET", "/api/monitors", None),
        ("POST", "/api/monitors", HTTP_MONITOR),
    ]
    for method, path, body in calls:
        response = await api.request(method, path, json=body, headers=world.nora.headers)
        assert response.status_code == 404, (method, path)
        assert "Organization not found" in response.json()["error"]


async def test_without_a_key_every_endpoint_is_401(api, world):
    monitor = await create_monitor(api, world.alice)
    for method, path, body in [*every_endpoint(monitor["id"]), ("GET", "/api/monitors", None)]:
        assert (await api.request(method, path, json=body)).status_code == 401, (method, path)


# --- concurrency --------------------------------------------------------------------------------


async def org_updated_at(database, org_id: str) -> datetime:
    async with database.session() as session:
        return (await session.get(Organization, org_id)).updated_at


async def test_concurrent_creations_never_pass_the_plan_limit(api, world, database):
    await insert_monitors(database, world.org_a, 3)
    before = await org_updated_at(database, world.org_a)
    responses = await asyncio.gather(
        *(
            api.post(
                "/api/monitors", json={**HTTP_MONITOR, "name": f"Racer {i}"}, headers=world.alice.headers
            )
            for i in range(6)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 201, 403, 403, 403, 403]
    assert await count_rows(database, Monitor, org_id=world.org_a) == 5
    # The lock that serializes them is not an edit of the organization.
    assert await org_updated_at(database, world.org_a) == before
