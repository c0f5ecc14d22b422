"""GET /api/monitors/:id/sla: a hand-computed report (rollups, the queue not yet folded,
maintenance, incidents overlapping the edges), csv, the range's rules and tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from control_plane.workers.rollups import fold_rollups
from tests.factories import insert_monitor, record, result
from tests.incident_factories import insert_incident, insert_window


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


@pytest.fixture
async def report_case(database, world, clock):
    """Three past days d0..d2 of one monitor (the numbers in test_the_report_is_the_hand_computed_one)."""
    monitor = await insert_monitor(database, world.org_a)
    neighbour = await insert_monitor(database, world.org_a, name="neighbour")
    d0 = clock().replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC) - timedelta(days=3)
    d1, d2 = d0 + timedelta(days=1), d0 + timedelta(days=2)
    # d0: 4 UP and 2 DOWN, plus a DOWN inside maintenance (09:00-09:30); folded into rollups. No
    # two DOWN in a row: the incidents are this test's own, the engine opens none.
    await record(
        database,
        [result(monitor.id, at(d0, hour, minute)) for hour, minute in ((9, 45), (10, 2), (11, 0), (12, 0))]
        + [result(monitor.id, at(d0, 10, minute), status="DOWN") for minute in (0, 5)]
        + [result(monitor.id, at(d0, 9, 10), status="DOWN")]
        + [result(neighbour.id, at(d0, 9, 20), status="DOWN")],
    )
    await fold_rollups(database)
    # d1: 2 UP, still queued for their rollups. d2: no checks.
    await record(database, [result(monitor.id, at(d1, 12)), result(monitor.id, at(d1, 13))])
    await insert_window(database, world.org_a, at(d0, 9), at(d0, 9, 30), monitor.id)
    await insert_window(database, world.org_a, at(d1, 2), at(d1, 3), neighbour.id)  # not this monitor's
    # DOWN incidents: 1200 s; 2400 s of which 1800 in maintenance; 7200 s across d1/d2's midnight;
    # 3600 s starting 30 minutes before the range. Not counted: a certificate's, another monitor's.
    await insert_incident(database, world.org_a, monitor.id, at(d0, 9, 55), at(d0, 10, 15))
    await insert_incident(database, world.org_a, monitor.id, at(d0, 9), at(d0, 9, 40))
    await insert_incident(database, world.org_a, monitor.id, at(d1, 23), at(d2, 1))
    await insert_incident(database, world.org_a, monitor.id, at(d0, -1, 30), at(d0, 0, 30))
    await insert_incident(database, world.org_a, monitor.id, at(d1, 5), at(d1, 6), kind="SSL_EXPIRY")
    await insert_incident(database, world.org_a, neighbour.id, at(d1, 5), at(d1, 6))
    return monitor, d0


def iso_day(day: datetime) -> str:
    return day.date().isoformat()


async def test_the_report_is_the_hand_computed_one(api, world, report_case):
    monitor, d0 = report_case
    params = {"from": iso_day(d0), "to": iso_day(d0 + timedelta(days=3))}
    response = await api.get(f"/api/monitors/{monitor.id}/sla", params=params, headers=world.vera.headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "monitorId": monitor.id,
        "from": f"{iso_day(d0)}T00:00:00.000Z",
        "to": f"{iso_day(d0 + timedelta(days=3))}T00:00:00.000Z",
        "uptimePercent": 75.0,  # 6 of 8 checks outside maintenance
        "checks": 8,
        "failedChecks": 2,
        "downtimeSeconds": 10800,  # d0: 1200 + 600 + 1800; d1: 3600; d2: 3600
        "incidentCount": 4,
        "mttrSeconds": 3600,  # (1200 + 2400 + 7200 + 3600) / 4
        "longestOutageSeconds": 7200,
        "maintenanceSeconds": 1800,
        "days": [
            {"date": iso_day(d0), "uptimePercent": 66.667, "checks": 6, "downtimeSeconds": 3600},
            {
                "date": iso_day(d0 + timedelta(days=1)),
                "uptimePercent": 100.0,
                "checks": 2,
                "downtimeSeconds": 3600,
            },
            {
                "date": iso_day(d0 + timedelta(days=2)),
                "uptimePercent": None,
                "checks": 0,
                "downtimeSeconds": 3600,
            },
        ],
    }


async def test_timestamps_widen_to_whole_days(api, world, report_case):
    monitor, d0 = report_case
    params = {"from": f"{iso_day(d0)}T09:15:00Z", "to": f"{iso_day(d0)}T10:00:00-02:00"}
    data = (
        await api.get(f"/api/monitors/{monitor.id}/sla", params=params, headers=world.alice.headers)
    ).json()["data"]
    assert (data["from"], data["to"]) == (
        f"{iso_day(d0)}T00:00:00.000Z",
        f"{iso_day(d0 + timedelta(days=1))}T00:00:00.000Z",
    )
    assert [day["checks"] for day in data["days"]] == [6]


async def test_csv_has_a_header_and_a_row_per_day(api, world, report_case):
    monitor, d0 = report_case
    params = {"from": iso_day(d0), "to": iso_day(d0 + timedelta(days=3)), "format": "csv"}
    response = await api.get(f"/api/monitors/{monitor.id}/sla", params=params, headers=world.alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    filename = f"sla-{monitor.id}-{iso_day(d0)}-{iso_day(d0 + timedelta(days=3))}.csv"
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert response.text.splitlines() == [
        "date,uptimePercent,checks,downtimeSeconds",
        f"{iso_day(d0)},66.667,6,3600",
        f"{iso_day(d0 + timedelta(days=1))},100.0,2,3600",
        f"{iso_day(d0 + timedelta(days=2))},,0,3600",
    ]


async def test_an_open_incident_counts_until_now_and_the_default_is_30_days(api, world, database, clock):
    monitor = await insert_monitor(database, world.org_a)
    now = clock()
    await insert_incident(database, world.org_a, monitor.id, now - timedelta(hours=1))
    data = (await api.get(f"/api/monitors/{monitor.id}/sla", headers=world.alice.headers)).json()["data"]
    tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert data["to"] == f"{iso_day(tomorrow)}T00:00:00.000Z"
    assert data["from"] == f"{iso_day(tomorrow - timedelta(days=30))}T00:00:00.000Z"
    assert len(data["days"]) == 30 and data["days"][-1]["date"] == iso_day(now)
    assert 3600 <= data["downtimeSeconds"] <= 3600 + 60  # up to the request's now
    assert data["mttrSeconds"] is None and data["incidentCount"] == 1
    assert data["uptimePercent"] is None and data["checks"] == 0


async def test_400_days_are_the_limit(api, world, database):
    monitor = await insert_monitor(database, world.org_a)
    url = f"/api/monitors/{monitor.id}/sla"
    ok = await api.get(url, params={"from": "2025-01-01", "to": "2026-02-05"}, headers=world.alice.headers)
    assert ok.status_code == 200 and len(ok.json()["data"]["days"]) == 400


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-01-01", "to": "2026-02-06"}, "to"),
        ({"from": "2025-06-02", "to": "2025-06-01"}, "to"),
        ({"from": "2025-06-01", "to": "2025-06-01"}, "to"),
        ({"from": "2025-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_a_bad_range_or_format_is_a_400_naming_it(api, world, database, params, field):
    monitor = await insert_monitor(database, world.org_a)
    response = await api.get(f"/api/monitors/{monitor.id}/sla", params=params, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()


async def test_another_organizations_monitor_is_a_404(api, world, database):
    theirs = await insert_monitor(database, world.org_b)
    for monitor_id in (theirs.id, "mon_nobody"):
        for fmt in ("json", "csv"):
            response = await api.get(
                f"/api/monitors/{monitor_id}/sla", params={"format": fmt}, headers=world.alice.headers
            )
            assert response.status_code == 404 and response.json() == {"error": "Monitor not found"}
    assert (await api.get(f"/api/monitors/{theirs.id}/sla", headers=world.bob.headers)).status_code == 200
