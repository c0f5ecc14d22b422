"""/api/incidents: the list (filters, paging, every 400), one incident with its timeline, status
updates, acknowledgements; the same incident views in a monitor's detail and incident list; the
dashboard's incident figures. Another organization's incident is a 404, a VIEWER's write a 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from control_plane.models import Incident, IncidentEvent, IncidentUpdate, MaintenanceWindow
from control_plane.services import dashboard
from tests.factories import insert_monitor, record, result
from tests.incident_factories import insert_incident, insert_window
from tests.spec import assert_shape, example

START = datetime(2025, 6, 14, 8, tzinfo=UTC)
ADDITIONS = {
    "kind": "",
    "regions": [""],
    "status": "",
    "flapping": True,
    "suppressedBy": None,
    "inMaintenance": True,
    "acknowledgedAt": None,
    "acknowledgedBy": None,
}


def shaped(reference: dict, **extra: object) -> dict:
    return {**reference, "data": [{**reference["data"][0], **ADDITIONS, **extra}]}


@pytest.fixture
async def seeded(database, world):
    """Org A: "Production API" with a resolved incident and an open one, "Other" with one open;
    org B: one incident."""
    api_monitor = await insert_monitor(
        database, world.org_a, name="Production API", url="https://api.example.com/health"
    )
    other = await insert_monitor(database, world.org_a, name="Other")
    theirs = await insert_monitor(database, world.org_b, name="Theirs")
    resolved = await insert_incident(
        database, world.org_a, api_monitor.id, START, START + timedelta(seconds=900)
    )
    active = await insert_incident(
        database,
        world.org_a,
        api_monitor.id,
        START + timedelta(days=1),
        cause="HTTP 503 (expected 200)",
        regions=["us-east-1", "eu-west-1"],
        flapping=True,
        suppressed_by=other.id,
        in_maintenance=True,
    )
    other_active = await insert_incident(
        database, world.org_a, other.id, START + timedelta(hours=2), kind="NO_DATA", cause="No checks"
    )
    their_incident = await insert_incident(database, world.org_b, theirs.id, START)
    return {
        "monitor": api_monitor,
        "other": other,
        "resolved": resolved,
        "active": active,
        "other_active": other_active,
        "theirs": their_incident,
    }


async def test_the_list_is_the_references_shape_newest_first(api, world, seeded):
    response = await api.get("/api/incidents", headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, shaped(example("GET", "/api/incidents")))
    assert [item["id"] for item in body["data"]] == [
        seeded["active"].id,
        seeded["other_active"].id,
        seeded["resolved"].id,
    ]
    assert body["pagination"] == {"page": 1, "limit": 50, "total": 3, "totalPages": 1}
    monitor = seeded["monitor"]
    assert body["data"][0] == {
        "id": seeded["active"].id,
        "monitorId": monitor.id,
        "monitorName": "Production API",
        "monitorUrl": "https://api.example.com/health",
        "startedAt": "2025-06-15T08:00:00.000Z",
        "resolvedAt": None,
        "duration": None,
        "cause": "HTTP 503 (expected 200)",
        "isActive": True,
        "kind": "DOWN",
        "regions": ["us-east-1", "eu-west-1"],
        "status": "investigating",
        "flapping": True,
        "suppressedBy": seeded["other"].id,
        "inMaintenance": True,
        "acknowledgedAt": None,
        "acknowledgedBy": None,
    }
    resolved = body["data"][2]
    assert (resolved["resolvedAt"], resolved["duration"], resolved["isActive"]) == (
        "2025-06-14T08:15:00.000Z",
        900,
        False,
    )
    assert body["data"][1]["kind"] == "NO_DATA"


async def test_status_and_monitor_filters(api, world, seeded):
    async def ids(**params: object) -> list[str]:
        response = await api.get("/api/incidents", params=params, headers=world.alice.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert await ids(status="active") == [seeded["active"].id, seeded["other_active"].id]
    assert await ids(status="resolved") == [seeded["resolved"].id]
    assert await ids(monitorId=seeded["monitor"].id) == [seeded["active"].id, seeded["resolved"].id]
    assert await ids(monitorId=seeded["monitor"].id, status="resolved") == [seeded["resolved"].id]
    # Another organization's monitor, or none: an empty page, not its incidents.
    assert await ids(monitorId=seeded["theirs"].monitor_id) == []
    assert await ids(monitorId="mon_nobody") == []


async def test_paging(api, world, seeded):
    response = await api.get("/api/incidents", params={"limit": 2, "page": 2}, headers=world.alice.headers)
    body = response.json()
    assert [item["id"] for item in body["data"]] == [seeded["resolved"].id]
    assert body["pagination"] == {"page": 2, "limit": 2, "total": 3, "totalPages": 2}
    beyond = (await api.get("/api/incidents", params={"page": 9}, headers=world.alice.headers)).json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "open"}, "status"),
        ({"status": ""}, "status"),
        ({"page": 0}, "page"),
        ({"page": "one"}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"monitorId": ""}, "monitorId"),
    ],
)
async def test_bad_parameters_are_400s_naming_them(api, world, params, field):
    response = await api.get("/api/incidents", params=params, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()


async def test_one_incident_has_its_timeline_oldest_first(api, world, database, seeded):
    incident = seeded["active"]
    async with database.session() as session:
        session.add(
            IncidentUpdate(
                id="iu_later",
                incident_id=incident.id,
                org_id=world.org_a,
                kind="update",
                status="identified",
                message="A bad deploy",
                author_id=world.adam.user_id,
                created_at=incident.started_at + timedelta(minutes=5),
            )
        )
        await session.commit()
    response = await api.get(f"/api/incidents/{incident.id}", headers=world.vera.headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == incident.id and data["monitorUrl"] == "https://api.example.com/health"
    assert [(e["kind"], e["status"], e["author"]) for e in data["timeline"]] == [
        ("system", "investigating", None),
        ("update", "identified", {"id": world.adam.user_id, "email": world.adam.email}),
    ]
    assert data["timeline"][1] == {
        "id": "iu_later",
        "kind": "update",
        "status": "identified",
        "message": "A bad deploy",
        "author": {"id": world.adam.user_id, "email": world.adam.email},
        "createdAt": "2025-06-15T08:05:00.000Z",
    }


async def _events(database, incident_id: str) -> list[IncidentEvent]:
    async with database.session() as session:
        query = select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
        return list(await session.scalars(query.order_by(IncidentEvent.type)))


async def _incident(database, incident_id: str) -> Incident:
    async with database.session() as session:
        found = await session.get(Incident, incident_id)
        assert found is not None
        return found


async def test_a_status_update_goes_on_the_timeline_with_its_event(api, world, database, seeded, clock):
    incident = seeded["active"]
    before = clock()
    response = await api.post(
        f"/api/incidents/{incident.id}/updates",
        json={"status": "identified", "message": "  A bad deploy;\nrolling back  "},
        headers=world.adam.headers,
    )
    assert response.status_code == 201, response.text
    entry = response.json()["data"]
    assert entry["id"].startswith("iu_") and entry["kind"] == "update" and entry["status"] == "identified"
    assert entry["message"] == "A bad deploy;\nrolling back"
    assert entry["author"] == {"id": world.adam.user_id, "email": world.adam.email}
    stored = await _incident(database, incident.id)
    assert stored.status == "identified" and stored.resolved_at is None and stored.updated_at >= before
    (event,) = await _events(database, incident.id)
    assert event.type == "incident.updated" and event.id.startswith("iev_")
    assert event.payload["status"] == "identified" and event.payload["message"] == entry["message"]
    # Copied from the incident: its alerts are held back the same way.
    assert event.in_maintenance is True and event.suppressed_by == seeded["other"].id
    detail = (await api.get(f"/api/incidents/{incident.id}", headers=world.alice.headers)).json()["data"]
    assert detail["status"] == "identified" and detail["timeline"][-1] == entry


async def test_resolved_resolves_an_open_incident_and_notes_a_resolved_one(
    api, world, database, seeded, clock
):
    incident = seeded["other_active"]
    now = clock()
    response = await api.post(
        f"/api/incidents/{incident.id}/updates",
        json={"status": "resolved", "message": "Fixed"},
        headers=world.alice.headers,
    )
    assert response.status_code == 201
    stored = await _incident(database, incident.id)
    assert stored.resolved_at is not None and stored.resolved_at >= now and stored.status == "resolved"
    assert [e.type for e in await _events(database, incident.id)] == ["incident.resolved", "incident.updated"]
    listed = (
        await api.get("/api/incidents", params={"status": "resolved"}, headers=world.alice.headers)
    ).json()
    assert incident.id in [item["id"] for item in listed["data"]]

    done = seeded["resolved"]
    note = await api.post(
        f"/api/incidents/{done.id}/updates",
        json={"status": "resolved", "message": "Postmortem: the pool was too small"},
        headers=world.alice.headers,
    )
    assert note.status_code == 201
    assert (await _incident(database, done.id)).resolved_at == done.resolved_at
    assert [e.type for e in await _events(database, done.id)] == ["incident.updated"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "fixed", "message": "x"}, "status"),
        ({"message": "x"}, "status"),
        ({"status": "identified"}, "message"),
        ({"status": "identified", "message": ""}, "message"),
        ({"status": "identified", "message": "   "}, "message"),
        ({"status": "identified", "message": "x" * 5001}, "message"),
        ({"status": "identified", "message": "bell\x07"}, "message"),
        ({"status": "identified", "message": 5}, "message"),
        ({"status": "identified", "message": "x", "extra": 1}, "extra"),
    ],
)
async def test_a_bad_update_is_a_400_naming_the_field(api, world, seeded, body, field):
    response = await api.post(
        f"/api/incidents/{seeded['active'].id}/updates", json=body, headers=world.alice.headers
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()


async def test_the_longest_message_is_taken(api, world, seeded):
    response = await api.post(
        f"/api/incidents/{seeded['active'].id}/updates",
        json={"status": "monitoring", "message": "x" * 5000},
        headers=world.alice.headers,
    )
    assert response.status_code == 201


async def test_acknowledge_records_who_once(api, world, database, seeded):
    incident = seeded["active"]
    response = await api.post(f"/api/incidents/{incident.id}/acknowledge", headers=world.adam.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["acknowledgedBy"] == {"id": world.adam.user_id, "email": world.adam.email}
    assert data["acknowledgedAt"] is not None
    assert data["timeline"][-1]["kind"] == "acknowledged"
    assert data["timeline"][-1]["author"] == {"id": world.adam.user_id, "email": world.adam.email}
    (event,) = await _events(database, incident.id)
    assert event.type == "incident.acknowledged" and event.payload == {"acknowledgedBy": world.adam.user_id}
    assert event.in_maintenance is True

    again = await api.post(f"/api/incidents/{incident.id}/acknowledge", headers=world.alice.headers)
    assert again.status_code == 409 and again.json() == {"error": "incident already acknowledged"}
    assert (await _incident(database, incident.id)).acknowledged_by == world.adam.user_id
    assert len(await _events(database, incident.id)) == 1
    listed = (await api.get("/api/incidents", headers=world.alice.headers)).json()["data"][0]
    assert listed["acknowledgedBy"] == {"id": world.adam.user_id, "email": world.adam.email}


async def test_a_resolved_incident_cannot_be_acknowledged(api, world, database, seeded):
    response = await api.post(
        f"/api/incidents/{seeded['resolved'].id}/acknowledge", headers=world.alice.headers
    )
    assert response.status_code == 409 and response.json() == {"error": "incident already resolved"}
    assert await _events(database, seeded["resolved"].id) == []


async def test_another_organizations_incident_is_a_404_everywhere(api, world, database, seeded):
    theirs = seeded["theirs"].id
    for incident_id in (theirs, "inc_nobody"):
        calls = [
            api.get(f"/api/incidents/{incident_id}", headers=world.alice.headers),
            api.post(
                f"/api/incidents/{incident_id}/updates",
                json={"status": "identified", "message": "x"},
                headers=world.alice.headers,
            ),
            api.post(f"/api/incidents/{incident_id}/acknowledge", headers=world.alice.headers),
        ]
        for call in calls:
            response = await call
            assert response.status_code == 404 and response.json() == {"error": "Incident not found"}
    listed = (await api.get("/api/incidents", headers=world.bob.headers)).json()["data"]
    assert [item["id"] for item in listed] == [theirs]
    assert await _events(database, theirs) == []
    assert (await api.get("/api/incidents", headers=world.nora.headers)).status_code == 404


async def test_a_viewer_reads_but_cannot_write(api, world, database, seeded):
    incident = seeded["active"].id
    assert (await api.get(f"/api/incidents/{incident}", headers=world.vera.headers)).status_code == 200
    for response in (
        await api.post(
            f"/api/incidents/{incident}/updates",
            json={"status": "identified", "message": "x"},
            headers=world.vera.headers,
        ),
        await api.post(f"/api/incidents/{incident}/acknowledge", headers=world.vera.headers),
    ):
        assert response.status_code == 403
    assert await _events(database, incident) == []


async def test_a_monitors_views_show_the_same_incidents(api, world, seeded):
    monitor = seeded["monitor"]
    listed = (await api.get(f"/api/monitors/{monitor.id}/incidents", headers=world.vera.headers)).json()
    assert_shape(listed, shaped(example("GET", "/api/monitors/:id/incidents")))
    assert [item["id"] for item in listed["data"]] == [seeded["active"].id, seeded["resolved"].id]
    organization_list = (await api.get("/api/incidents", headers=world.vera.headers)).json()["data"]
    assert listed["data"][0] == {
        key: value for key, value in organization_list[0].items() if key != "monitorUrl"
    }
    detail = (await api.get(f"/api/monitors/{monitor.id}", headers=world.vera.headers)).json()["data"]
    reference = example("GET", "/api/monitors/:id")["data"]["incidents"][0]
    assert_shape(detail["incidents"], [{**reference, **ADDITIONS, "isActive": True}])
    assert detail["incidents"][1] == {key: listed["data"][1][key] for key in detail["incidents"][1]}
    assert (
        await api.get(f"/api/monitors/{monitor.id}/incidents", headers=world.bob.headers)
    ).status_code == 404


# --- the dashboard's incident figures ------------------------------------------------------------

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


async def test_currently_down_and_incidents_today(database, world):
    down, silent, expiring, paused = [
        await insert_monitor(database, world.org_a, name=name, is_active=name != "paused")
        for name in ("down", "silent", "expiring", "paused")
    ]
    theirs = await insert_monitor(database, world.org_b)
    midnight = NOW.replace(hour=0)
    await insert_incident(database, world.org_a, down.id, midnight + timedelta(seconds=1))
    await insert_incident(
        database, world.org_a, down.id, midnight - timedelta(hours=3), midnight - timedelta(hours=2)
    )
    await insert_incident(database, world.org_a, silent.id, midnight - timedelta(seconds=1), kind="NO_DATA")
    await insert_incident(database, world.org_a, silent.id, midnight - timedelta(hours=1), kind="DNS_CHANGE")
    await insert_incident(database, world.org_a, expiring.id, NOW - timedelta(hours=1), kind="SSL_EXPIRY")
    await insert_incident(database, world.org_a, paused.id, NOW - timedelta(hours=1))
    await insert_incident(database, world.org_b, theirs.id, NOW - timedelta(hours=1))
    async with database.session() as session:
        stats = await dashboard.dashboard_stats(session, world.org_a, now=NOW)
    # down (DOWN) and silent (NO_DATA); not the certificate, nor the paused monitor.
    assert stats.currently_down == 2
    # Opened since UTC midnight: down's, the certificate's and the paused monitor's.
    assert stats.incidents_today == 3
    assert stats.total_monitors == 4


async def test_average_uptime_leaves_maintenance_out_and_sees_window_changes_at_once(database, world):
    today = await insert_monitor(database, world.org_a, name="today")
    earlier = await insert_monitor(database, world.org_a, name="earlier")
    statuses = ("UP", "UP", "UP", "DOWN", "DOWN")
    await record(
        database,
        [
            result(today.id, NOW - timedelta(hours=3, minutes=10 * i), status=s)
            for i, s in enumerate(statuses)
        ],
    )
    two_days_ago = NOW - timedelta(days=2)
    await record(
        database,
        [
            result(earlier.id, two_days_ago + timedelta(minutes=i), status=s)
            for i, s in enumerate(("UP", "UP", "DOWN"))
        ],
    )
    # today's DOWN checks were at 08:30 and 08:20; earlier's DOWN at +2 minutes.
    await insert_window(
        database,
        world.org_a,
        NOW - timedelta(hours=3, minutes=45),
        NOW - timedelta(hours=3, minutes=25),
        today.id,
    )
    org_wide = await insert_window(
        database, world.org_a, two_days_ago + timedelta(minutes=2), two_days_ago + timedelta(minutes=3)
    )
    cache = dashboard.UptimeCache(database.changes)

    async def uptime() -> float | None:
        async with database.session() as session:
            return await dashboard.average_uptime(session, world.org_a, now=NOW, cache=cache)

    assert await uptime() == 100.0  # without the windows: (60 + 66.67) / 2
    async with database.session() as session:
        await session.execute(delete(MaintenanceWindow).where(MaintenanceWindow.id == org_wide.id))
        await session.commit()
    assert await uptime() == 83.33  # the closed days came from the cache; the windows did not
