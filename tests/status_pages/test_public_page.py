"""GET /api/status-pages/:slug, the public view: who may read it, the reference's fields, and what
it says — each component's status by health.py's rules, 90-day uptime from daily rollups with
maintenance left out, active incidents with their public timeline, maintenance to come."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from control_plane.core.ids import new_id
from control_plane.core.timefmt import iso
from control_plane.db import Database
from control_plane.models import IncidentUpdate
from control_plane.models.status_pages import PageIncident, PageIncidentUpdate
from control_plane.results import bucket_start
from control_plane.status_pages.health import components_health, overall_status
from control_plane.status_pages.public import page_by_slug, page_view
from tests.factories import insert_monitor, record, result
from tests.incident_factories import insert_incident, insert_window
from tests.monitor_tools import set_plan
from tests.status_pages.support import (
    assert_public_shape,
    create_page,
    insert_day_rollup,
    public_view,
    set_monitor_state,
)

DAY = timedelta(days=1)


async def monitor_ids(database: Database, org_id: str, *names: str) -> list[str]:
    return [(await insert_monitor(database, org_id, name=name)).id for name in names]


async def declare(
    database: Database,
    page: dict[str, Any],
    component_ids: list[str],
    *,
    impact: str,
    started_at: datetime,
    resolved_at: datetime | None = None,
    updates: tuple[tuple[str, str, datetime], ...] = (),
    postmortem: str | None = None,
) -> str:
    """An incident declared on the page for these components, with its timeline."""
    incident_id = new_id("inc")
    async with database.session() as session:
        session.add(
            PageIncident(
                id=incident_id,
                org_id=page["orgId"],
                page_id=page["id"],
                title=f"{impact} trouble",
                impact=impact,
                status="resolved" if resolved_at else "investigating",
                component_ids=component_ids,
                postmortem=postmortem,
                started_at=started_at,
                resolved_at=resolved_at,
            )
        )
        await session.flush()
        for status, message, at in updates:
            session.add(
                PageIncidentUpdate(
                    id=new_id("piu"), incident_id=incident_id, status=status, message=message, created_at=at
                )
            )
        await session.commit()
    return incident_id


def by_name(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {component["name"]: component for component in view["components"]}


# --- who may read it --------------------------------------------------------------------------------


async def test_a_public_page_needs_no_key_and_answers_as_the_reference(api, world, database):
    api_id, web_id = await monitor_ids(database, world.org_a, "Production API", "Web App")
    await create_page(api, world.alice, monitors=[api_id, web_id], logoUrl="https://cdn.example.com/l.png")
    response = await api.get("/api/status-pages/acme-status")
    assert response.status_code == 200, response.text
    assert_public_shape(response.json())
    view = response.json()["data"]
    assert (view["name"], view["slug"], view["logoUrl"], view["overallStatus"]) == (
        "Acme Status",
        "acme-status",
        "https://cdn.example.com/l.png",
        "operational",
    )
    assert [(c["name"], c["status"], c["uptime90d"]) for c in view["components"]] == [
        ("Production API", "operational", None),  # no checks yet
        ("Web App", "operational", None),
    ]
    assert view["activeIncidents"] == [] and view["maintenance"] == []


async def test_a_private_page_is_a_404_without_a_key_of_its_organization(api, world, database):
    await create_page(api, world.alice, isPublic=False)
    not_found = {"error": "Status page not found"}
    for headers in ({}, world.bob.headers, world.nora.headers, {"Authorization": "Bearer traxo_wrong"}):
        response = await api.get("/api/status-pages/acme-status", headers=headers)
        assert response.status_code == 404, headers
        assert response.json() == not_found
    assert (await public_view(api, "acme-status", world.alice))["name"] == "Acme Status"
    assert (await public_view(api, "acme-status", world.vera))["name"] == "Acme Status"  # any role reads


async def test_a_public_page_is_read_whatever_key_comes_with_it(api, world):
    await create_page(api, world.alice)
    for headers in (
        {"Authorization": "Bearer traxo_wrong"},
        {"Authorization": "Basic abc"},
        world.bob.headers,
    ):
        response = await api.get("/api/status-pages/acme-status", headers=headers)
        assert response.status_code == 200, headers


async def test_an_unknown_slug_is_a_404(api, world):
    response = await api.get("/api/status-pages/no-such-page")
    assert response.status_code == 404
    assert response.json() == {"error": "Status page not found"}


# --- uptime ---------------------------------------------------------------------------------------


async def test_uptime90d_sums_the_daily_rollups_of_every_region(api, world, database, clock):
    (api_id,) = await monitor_ids(database, world.org_a, "Production API")
    today = bucket_start(clock(), "day")
    await insert_day_rollup(database, api_id, today, up=50, total=50, region="us-east-1")
    await insert_day_rollup(database, api_id, today, up=48, total=50, region="eu-west-1")
    await insert_day_rollup(database, api_id, today - 89 * DAY, up=100, total=100)
    await insert_day_rollup(database, api_id, today - 90 * DAY, up=0, total=100)  # outside the 90 days
    await create_page(api, world.alice, monitors=[api_id])
    view = await public_view(api, "acme-status")
    assert view["components"][0]["uptime90d"] == 99.0  # (50 + 48 + 100) / 200

    async with database.session() as session:
        health = (await components_health(session, [api_id], clock()))[api_id]
    assert len(health.days) == 90
    assert (health.days[0].day, health.days[-1].day) == ((today - 89 * DAY).date(), today.date())
    assert (health.days[0].uptime, health.days[0].checks) == (100.0, 100)
    assert (health.days[-1].uptime, health.days[-1].checks) == (98.0, 100)
    assert [day.uptime for day in health.days[1:-1]] == [None] * 88


async def test_a_days_uptime_adds_the_results_still_queued_to_its_rollups(world, database, clock):
    (api_id,) = await monitor_ids(database, world.org_a, "Production API")
    today = bucket_start(clock(), "day")
    yesterday = today - DAY
    await insert_day_rollup(database, api_id, yesterday, up=3, total=4)
    # Queued (not folded yet): two on yesterday's last microsecond and first, one at today's start.
    await record(
        database,
        [
            result(api_id, yesterday, status="DOWN"),
            result(api_id, today - timedelta(microseconds=1), status="UP"),
            result(api_id, today, status="DOWN"),
            result(api_id, today - 2 * DAY + timedelta(hours=12), status="UP"),
        ],
    )
    async with database.session() as session:
        health = (await components_health(session, [api_id], clock(), days=3))[api_id]
    assert [(day.day, day.checks, day.uptime) for day in health.days] == [
        ((today - 2 * DAY).date(), 1, 100.0),
        (yesterday.date(), 6, round(100 * 4 / 6, 2)),  # 3 of 4 rolled up, 1 of 2 queued
        (today.date(), 1, 0.0),
    ]
    assert health.uptime == round(100 * 5 / 8, 2)


async def test_uptime_leaves_out_the_checks_inside_maintenance(api, world, database, clock):
    kept, plain = await monitor_ids(database, world.org_a, "In maintenance", "Not")
    now = clock()
    start = now - timedelta(hours=3)
    for monitor_id in (kept, plain):
        await record(
            database,
            [
                result(monitor_id, start, status="UP"),
                result(monitor_id, start + timedelta(minutes=10), status="DOWN"),  # in the window
                result(monitor_id, start + timedelta(minutes=20), status="DOWN"),  # in the window
                result(monitor_id, start + timedelta(hours=2), status="UP"),
            ],
        )
    await insert_window(
        database, world.org_a, start + timedelta(minutes=5), start + timedelta(minutes=30), monitor_id=kept
    )
    await create_page(api, world.alice, monitors=[kept, plain])
    uptime = {
        name: component["uptime90d"]
        for name, component in by_name(await public_view(api, "acme-status")).items()
    }
    assert uptime == {"In maintenance": 100.0, "Not": 50.0}


async def test_a_day_counts_the_down_incidents_open_during_it(world, database, clock):
    (api_id,) = await monitor_ids(database, world.org_a, "Production API")
    today = bucket_start(clock(), "day")
    await insert_incident(
        database, world.org_a, api_id, today - 2 * DAY + timedelta(hours=23), today - DAY + timedelta(hours=1)
    )
    await insert_incident(
        database, world.org_a, api_id, today - DAY + timedelta(hours=5), today - DAY + timedelta(hours=6)
    )
    await insert_incident(database, world.org_a, api_id, today - DAY, kind="SSL_EXPIRY")  # not an outage
    async with database.session() as session:
        health = (await components_health(session, [api_id], clock(), days=5))[api_id]
    assert [day.incidents for day in health.days] == [0, 0, 1, 2, 0]


# --- statuses -------------------------------------------------------------------------------------


async def test_each_component_status_follows_the_rules(api, world, database, clock):
    names = ("Fine", "Down", "One region", "Certificate", "Flapping", "Maintenance", "Down in maintenance")
    ids = dict(zip(names, await monitor_ids(database, world.org_a, *names), strict=True))
    now = clock()
    await set_monitor_state(database, world.org_a, ids["Down"], down=True, failing_regions=("us-east-1",))
    await set_monitor_state(database, world.org_a, ids["One region"], failing_regions=("eu-west-1",))
    await insert_incident(database, world.org_a, ids["Certificate"], now - DAY, kind="SSL_EXPIRY")
    await insert_incident(database, world.org_a, ids["Flapping"], now - timedelta(hours=1), flapping=True)
    await set_monitor_state(database, world.org_a, ids["Down in maintenance"], down=True)
    for name in ("Maintenance", "Down in maintenance"):
        await insert_window(
            database, world.org_a, now - timedelta(hours=1), now + timedelta(hours=1), monitor_id=ids[name]
        )
    await create_page(api, world.alice, monitors=list(ids.values()))
    view = await public_view(api, "acme-status")
    assert {name: component["status"] for name, component in by_name(view).items()} == {
        "Fine": "operational",
        "Down": "major_outage",
        "One region": "partial_outage",
        "Certificate": "degraded",
        "Flapping": "degraded",
        "Maintenance": "under_maintenance",
        "Down in maintenance": "under_maintenance",
    }
    assert view["overallStatus"] == "major_outage"


async def test_an_open_down_incident_is_a_major_outage(api, world, database, clock):
    (api_id,) = await monitor_ids(database, world.org_a, "Production API")
    await insert_incident(database, world.org_a, api_id, clock() - timedelta(minutes=5))
    await create_page(api, world.alice, monitors=[api_id])
    view = await public_view(api, "acme-status")
    assert (view["components"][0]["status"], view["overallStatus"]) == ("major_outage", "major_outage")


@pytest.mark.parametrize(
    ("impact", "status"),
    [
        ("none", "degraded"),
        ("minor", "partial_outage"),
        ("major", "major_outage"),
        ("critical", "major_outage"),
    ],
)
async def test_a_declared_incident_gives_its_components_the_status_of_its_impact(
    api, world, database, clock, impact, status
):
    named, other = await monitor_ids(database, world.org_a, "Named", "Other")
    page = await create_page(api, world.alice, monitors=[named, other])
    await declare(database, page, [page["components"][0]["id"]], impact=impact, started_at=clock() - DAY)
    view = await public_view(api, "acme-status")
    assert {name: component["status"] for name, component in by_name(view).items()} == {
        "Named": status,
        "Other": "operational",
    }
    assert view["overallStatus"] == status


async def test_an_incident_declared_for_the_whole_page_gives_every_component_its_status(
    api, world, database, clock
):
    first, second = await monitor_ids(database, world.org_a, "First", "Second")
    page = await create_page(api, world.alice, monitors=[first, second])
    await create_page(api, world.alice, slug="internal", monitors=[first])
    await declare(database, page, [], impact="minor", started_at=clock() - DAY)

    view = await public_view(api, "acme-status")
    assert {name: component["status"] for name, component in by_name(view).items()} == {
        "First": "partial_outage",
        "Second": "partial_outage",
    }
    assert view["overallStatus"] == "partial_outage"
    assert (await public_view(api, "internal"))["components"][0]["status"] == "operational"  # its page only
    async with database.session() as session:  # a badge's view: from any page naming the monitor
        health = await components_health(session, [first, second], clock())
    assert {monitor_id: found.status for monitor_id, found in health.items()} == {
        first: "partial_outage",
        second: "partial_outage",
    }
    html = await api.get("/status/acme-status")
    assert "Affects the whole page" in html.text


async def test_the_bars_name_each_days_incidents_declared_ones_too_over_the_90_days(
    api, world, database, clock
):
    first, second = await monitor_ids(database, world.org_a, "First", "Second")
    page = await create_page(api, world.alice, monitors=[first, second])
    now = clock()
    today = bucket_start(now, "day")
    await declare(  # 20 days ago, over midnight, on the first component alone
        database,
        page,
        [page["components"][0]["id"]],
        impact="minor",
        started_at=today - 20 * DAY + timedelta(hours=22),
        resolved_at=today - 19 * DAY + timedelta(hours=2),
    )
    await declare(database, page, [], impact="major", started_at=now - timedelta(minutes=5))  # the whole page
    three_days_ago = today - 3 * DAY
    await insert_incident(database, world.org_a, second, three_days_ago, three_days_ago + timedelta(hours=1))

    html = (await api.get("/status/acme-status")).text
    titles = re.findall(r'<li class="bar [^"]*" title="([^"]*)"', html)
    assert len(titles) == 180
    bars = {"First": titles[:90], "Second": titles[90:]}
    assert bars["First"][-21].endswith("· 1 incident: minor trouble")
    assert bars["First"][-20].endswith("· 1 incident: minor trouble")
    assert bars["Second"][-21].endswith("· 0 incidents") and bars["First"][-22].endswith("· 0 incidents")
    assert bars["Second"][-4].endswith("· 1 incident: Second is down")
    for name in bars:
        assert bars[name][-1].endswith("· 1 incident: major trouble"), bars[name][-1]
    assert "3 days with incidents" in html and "2 days with incidents" in html


async def test_declared_incidents_count_while_open_and_on_their_own_page_only(api, world, database, clock):
    (api_id,) = await monitor_ids(database, world.org_a, "Production API")
    now = clock()
    page = await create_page(api, world.alice, monitors=[api_id])
    other = await create_page(api, world.alice, slug="internal", monitors=[api_id])
    await declare(database, other, [other["components"][0]["id"]], impact="critical", started_at=now - DAY)
    await declare(
        database,
        page,
        [page["components"][0]["id"]],
        impact="major",
        started_at=now - 2 * DAY,
        resolved_at=now - DAY,
    )
    assert (await public_view(api, "acme-status"))["components"][0]["status"] == "operational"
    assert (await public_view(api, "internal"))["components"][0]["status"] == "major_outage"


async def test_a_declared_incident_outweighs_maintenance(api, world, database, clock):
    (api_id,) = await monitor_ids(database, world.org_a, "Production API")
    now = clock()
    await insert_window(database, world.org_a, now - timedelta(hours=1), now + timedelta(hours=1))  # org-wide
    page = await create_page(api, world.alice, monitors=[api_id])
    assert (await public_view(api, "acme-status"))["components"][0]["status"] == "under_maintenance"
    await declare(database, page, [page["components"][0]["id"]], impact="minor", started_at=now)
    assert (await public_view(api, "acme-status"))["components"][0]["status"] == "partial_outage"


def test_the_overall_status_is_the_worst_and_maintenance_counts_as_operational():
    assert overall_status([]) == "operational"
    assert overall_status(["under_maintenance", "operational"]) == "operational"
    assert overall_status(["degraded", "under_maintenance"]) == "degraded"
    assert overall_status(["degraded", "partial_outage", "operational"]) == "partial_outage"
    assert overall_status(["partial_outage", "major_outage", "degraded"]) == "major_outage"


# --- incidents, maintenance, components ------------------------------------------------------------


async def test_active_incidents_show_their_public_timeline(api, world, database, clock):
    api_id, web_id = await monitor_ids(database, world.org_a, "Production API", "Web App")
    now = clock()
    opened = now - timedelta(hours=2)
    down = await insert_incident(
        database, world.org_a, api_id, opened, cause="connect to 10.0.0.5:443 refused"
    )
    async with database.session() as session:
        for kind, status, message, minutes in (
            ("update", "identified", "The database is overloaded", 30),
            ("acknowledged", None, "Acknowledged by alice@a.example", 20),
        ):
            session.add(
                IncidentUpdate(
                    id=new_id("iu"),
                    incident_id=down.id,
                    org_id=world.org_a,
                    kind=kind,
                    status=status,
                    message=message,
                    created_at=opened + timedelta(minutes=minutes),
                )
            )
        await session.commit()
    await insert_incident(database, world.org_a, web_id, now - DAY, now - DAY + timedelta(hours=1))  # over
    page = await create_page(api, world.alice, monitors=[api_id, {"monitorId": web_id, "displayName": "Web"}])
    declared_id = await declare(
        database,
        page,
        [page["components"][1]["id"]],
        impact="minor",
        started_at=now - timedelta(hours=1),
        updates=(
            ("investigating", "Slow logins", now - timedelta(hours=1)),
            ("monitoring", "A fix is out", now - timedelta(minutes=10)),
        ),
    )
    view = await public_view(api, "acme-status")
    assert_public_shape({"data": view})
    newest, automatic = view["activeIncidents"]
    assert newest == {
        "id": declared_id,
        "title": "minor trouble",
        "status": "investigating",
        "impact": "minor",
        "startedAt": iso(now - timedelta(hours=1)),
        "resolvedAt": None,
        "components": ["Web"],
        "declared": True,
        "updates": [
            {
                "status": "monitoring",
                "message": "A fix is out",
                "createdAt": iso(now - timedelta(minutes=10)),
            },
            {"status": "investigating", "message": "Slow logins", "createdAt": iso(now - timedelta(hours=1))},
        ],
        "postmortem": None,
        "postmortemHtml": None,
    }
    assert (automatic["id"], automatic["title"], automatic["declared"], automatic["components"]) == (
        down.id,
        "Production API is down",
        False,
        ["Production API"],
    )
    assert automatic["updates"] == [
        {
            "status": "identified",
            "message": "The database is overloaded",
            "createdAt": iso(opened + timedelta(minutes=30)),
        },
        {"status": "investigating", "message": "Production API is not responding", "createdAt": iso(opened)},
    ]
    assert "10.0.0.5" not in str(view)  # the engine's causes stay private


async def test_maintenance_in_progress_and_to_come_is_listed(api, world, database, clock):
    api_id, web_id, elsewhere = await monitor_ids(
        database, world.org_a, "Production API", "Web App", "Elsewhere"
    )
    now = clock()
    current = await insert_window(
        database, world.org_a, now - timedelta(hours=1), now + timedelta(hours=1), api_id
    )
    upcoming = await insert_window(
        database, world.org_a, now + DAY, now + DAY + timedelta(hours=2)
    )  # org-wide
    await insert_window(database, world.org_a, now - DAY, now - timedelta(hours=20), api_id)  # over
    await insert_window(database, world.org_a, now, now + timedelta(hours=1), elsewhere)  # not on the page
    await insert_window(database, world.org_b, now, now + timedelta(hours=1))  # another organization's
    await create_page(api, world.alice, monitors=[api_id, web_id])
    view = await public_view(api, "acme-status")
    assert view["maintenance"] == [
        {
            "id": current.id,
            "title": "Planned maintenance",
            "description": None,
            "startsAt": iso(now - timedelta(hours=1)),
            "endsAt": iso(now + timedelta(hours=1)),
            "components": ["Production API"],
        },
        {
            "id": upcoming.id,
            "title": "Planned maintenance",
            "description": None,
            "startsAt": iso(now + DAY),
            "endsAt": iso(now + DAY + timedelta(hours=2)),
            "components": ["Production API", "Web App"],
        },
    ]


async def test_components_are_shown_in_order_with_their_groups(api, world, database):
    one, two, three = await monitor_ids(database, world.org_a, "One", "Two", "Three")
    page = await create_page(
        api,
        world.alice,
        monitors=[
            {"monitorId": one, "order": 3, "group": "Backend"},
            {"monitorId": two, "order": 1, "displayName": "Website"},
            {"monitorId": three, "order": 2, "group": "Backend"},
        ],
    )
    view = await public_view(api, "acme-status")
    ids = {component["monitorId"]: component["id"] for component in page["components"]}
    assert [(c["id"], c["name"], c["group"]) for c in view["components"]] == [
        (ids[two], "Website", None),
        (ids[three], "Three", "Backend"),
        (ids[one], "One", "Backend"),
    ]


async def test_branding_settings_hold_while_the_plan_has_them(api, world, database, clock):
    await set_plan(database, world.org_a, "BUSINESS")
    await create_page(api, world.alice, hideBranding=True, customCss="body { color: teal; }")
    async with database.session() as session:
        page = await page_by_slug(session, "acme-status")
        assert page is not None
        view = await page_view(session, page, clock())
    assert (view.page.hide_branding, view.page.custom_css) == (True, "body { color: teal; }")
    await set_plan(database, world.org_a, "FREE")  # a downgrade keeps the settings, shown no more
    async with database.session() as session:
        view = await page_view(session, page, clock())
    assert (view.page.hide_branding, view.page.custom_css) == (False, None)


async def test_past_incidents_are_those_resolved_in_14_days_newest_first(api, world, database, clock):
    api_id, web_id = await monitor_ids(database, world.org_a, "Production API", "Web App")
    now = clock()
    old_open = await insert_incident(database, world.org_a, api_id, now - 13 * DAY)  # still open
    for index in range(60):  # a monitor that failed often: the open one must stay in view
        at = now - 12 * DAY + index * timedelta(hours=1)
        await insert_incident(database, world.org_a, web_id, at, at + timedelta(minutes=5))
    await insert_incident(database, world.org_a, web_id, now - 20 * DAY, now - 15 * DAY)  # too old
    page = await create_page(api, world.alice, monitors=[api_id, web_id])
    declared_id = await declare(
        database,
        page,
        [page["components"][0]["id"]],
        impact="major",
        started_at=now - DAY,
        resolved_at=now - timedelta(hours=1),
    )
    async with database.session() as session:
        found = await page_by_slug(session, "acme-status")
        assert found is not None
        view = await page_view(session, found, clock())
    assert [incident.id for incident in view.active_incidents] == [old_open.id]
    assert len(view.past_incidents) == 50
    assert view.past_incidents[0].id == declared_id and view.past_incidents[0].declared
    resolved = [incident.resolved_at for incident in view.past_incidents]
    assert resolved == sorted(resolved, reverse=True)  # type: ignore[type-var]
    assert all(at is not None and at >= now - 14 * DAY for at in resolved)
    assert view.past_incidents[1].updates[0].status == "resolved"
