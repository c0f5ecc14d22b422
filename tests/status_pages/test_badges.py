"""Badges: shields-style SVGs (well-formed, escaped, sized by the text) and shields.io JSON of the
monitors that opted in with config.publicBadge; statuses and uptime from rollups, incidents and
maintenance; the opt-in rule, caching headers and the monitors API's validation of the key."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, timedelta

import pytest
from sqlalchemy import update

from control_plane.core.ids import new_id
from control_plane.models import MonitorState
from control_plane.models.status_pages import PageIncident, StatusPage, StatusPageComponent
from control_plane.status_pages.badges import Badge, render_svg, text_width, uptime_colour, uptime_message
from control_plane.workers.rollups import fold_rollups
from tests.factories import insert_monitor, record, result
from tests.incident_factories import insert_incident, insert_window
from tests.monitor_tools import create_monitor

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def title_of(svg: str) -> str:
    title = ET.fromstring(svg).find(f"{SVG}title")
    assert title is not None
    return title.text or ""


async def badge_monitor(database, org_id, **fields):
    return await insert_monitor(database, org_id, config={"publicBadge": True}, **fields)


def test_the_svg_is_well_formed_and_its_text_escaped():
    name = 'Shop <&> "API" \x07'
    svg = render_svg(Badge(name, "up", "brightgreen", f"{name}: up"))
    root = ET.fromstring(svg)  # well-formed: the text and attributes are escaped
    assert root.tag == f"{SVG}svg" and root.get("height") == "20"
    # Shadow and text of the label, then of the message; the control character XML cannot hold, dropped.
    assert texts(svg) == ['Shop <&> "API" '] * 2 + ["up"] * 2
    assert root.get("aria-label") == title_of(svg) == 'Shop <&> "API" : up'
    assert "<&>" not in svg and "<script" not in svg


def test_its_width_follows_the_text_as_verdana_draws_it():
    narrow = ET.fromstring(render_svg(Badge("iii", "up", "brightgreen", "")))
    wide = ET.fromstring(render_svg(Badge("WWW", "up", "brightgreen", "")))
    assert text_width("WWW") > 3 * text_width("iii")
    # Each part: the text rounded up to an odd width, plus 5 px each side.
    assert int(narrow.get("width") or 0) == 11 + 10 + 15 + 10  # "iii" 9.06 -> 11, "up" 13.81 -> 15
    assert int(wide.get("width") or 0) == 33 + 10 + 15 + 10  # "WWW" 32.64 -> 33
    # Characters outside the table are taken wide (an "m"), never zero.
    assert text_width("ü€") == 2 * text_width("m")


def test_uptime_reads_as_a_percentage_rounded_down_and_coloured_by_its_level():
    assert [uptime_message(value) for value in (100.0, 99.996, 99.5, 87.5, 0.0, None)] == [
        "100%",
        "99.99%",
        "99.5%",
        "87.5%",
        "0%",
        "pending",
    ]
    assert [uptime_colour(value) for value in (100.0, 99.9, 99.5, 98.0, 96.0, 90.0, None)] == [
        "brightgreen",
        "brightgreen",
        "green",
        "yellow",
        "orange",
        "red",
        "lightgrey",
    ]


async def test_the_status_badge_is_an_svg_with_the_monitors_name_and_its_headers(api, world):
    monitor = await create_monitor(api, world.alice, name="Shop <&> API", config={"publicBadge": True})
    response = await api.get(f"/badge/{monitor['id']}/status.svg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "Shop &lt;&amp;&gt; API" in response.text
    assert texts(response.text) == ["Shop <&> API"] * 2 + ["pending"] * 2  # never checked yet
    etag = response.headers["etag"]
    again = await api.get(f"/badge/{monitor['id']}/status.svg", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = await api.get(f"/badge/{monitor['id']}/status.svg", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.headers["etag"] == etag


async def test_the_status_word_follows_the_monitor(api, world, database, clock):
    now = clock()
    up = await badge_monitor(database, world.org_a, name="up")
    down = await badge_monitor(database, world.org_a, name="down")
    degraded = await badge_monitor(database, world.org_a, name="degraded")
    maintenance = await badge_monitor(database, world.org_a, name="maintenance")
    paused = await badge_monitor(database, world.org_a, name="paused", is_active=False)
    pending = await badge_monitor(database, world.org_a, name="pending")
    checked = [up, down, degraded, maintenance, paused]
    await record(database, [result(monitor.id, now - timedelta(minutes=1)) for monitor in checked])
    async with database.session() as session:
        # As the engine leaves it once the monitor is down (the results above made its row).
        await session.execute(
            update(MonitorState).where(MonitorState.monitor_id == down.id).values(down=True, changed_at=now)
        )
        await session.commit()
    await insert_incident(database, world.org_a, down.id, now - timedelta(minutes=5))
    await insert_incident(
        database, world.org_a, degraded.id, now - timedelta(hours=1), kind="SSL_EXPIRY", cause="Expires soon"
    )
    await insert_window(
        database, world.org_a, now - timedelta(hours=1), now + timedelta(hours=1), maintenance.id
    )
    expected = {
        up.id: ("up", "brightgreen"),
        down.id: ("down", "red"),
        degraded.id: ("degraded", "yellow"),
        maintenance.id: ("maintenance", "blue"),
        paused.id: ("paused", "lightgrey"),
        pending.id: ("pending", "lightgrey"),
    }
    for monitor in (up, down, degraded, maintenance, paused, pending):
        word, colour = expected[monitor.id]
        svg = await api.get(f"/badge/{monitor.id}/status.svg")
        assert texts(svg.text)[2:] == [word, word], monitor.name
        assert title_of(svg.text) == f"{monitor.name}: {word}"
        shields = await api.get(f"/badge/{monitor.id}/shields.json")
        assert shields.status_code == 200 and shields.headers["content-type"] == "application/json"
        assert shields.json() == {"schemaVersion": 1, "label": monitor.name, "message": word, "color": colour}


@pytest.fixture
async def uptime_case(database, world, clock):
    """Yesterday 3 UP and 1 DOWN (folded into rollups), two days ago 4 UP (still queued) and a DOWN
    inside maintenance: 7 of 8 checks up outside maintenance; nothing today."""
    monitor = await badge_monitor(database, world.org_a, name="API")
    today = clock().replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)
    await record(
        database,
        [result(monitor.id, yesterday + timedelta(hours=hour)) for hour in (1, 2, 3)]
        + [result(monitor.id, yesterday + timedelta(hours=4), status="DOWN")],
    )
    await fold_rollups(database)
    await record(
        database,
        [result(monitor.id, before + timedelta(hours=hour)) for hour in (1, 2, 3, 4)]
        + [result(monitor.id, before + timedelta(hours=6, minutes=10), status="DOWN")],
    )
    await insert_window(
        database, world.org_a, before + timedelta(hours=6), before + timedelta(hours=7), monitor.id
    )
    return monitor


async def test_the_uptime_badge_counts_the_days_asked_for_without_maintenance(api, uptime_case):
    monitor = uptime_case
    response = await api.get(f"/badge/{monitor.id}/uptime.svg")  # 30 days by default
    assert response.status_code == 200, response.text
    assert texts(response.text) == ["uptime 30d"] * 2 + ["87.5%"] * 2
    assert title_of(response.text) == "API uptime 30d: 87.5%"
    two_days = await api.get(f"/badge/{monitor.id}/uptime.svg", params={"days": 2})
    assert texts(two_days.text)[2:] == ["75%"] * 2  # yesterday and today: 3 of 4
    today = await api.get(f"/badge/{monitor.id}/uptime.svg", params={"days": 1})
    assert texts(today.text) == ["uptime 1d"] * 2 + ["pending"] * 2
    shields = await api.get(f"/badge/{monitor.id}/shields.json", params={"kind": "uptime", "days": 90})
    assert shields.json() == {"schemaVersion": 1, "label": "uptime 90d", "message": "87.5%", "color": "red"}


@pytest.mark.parametrize("days", ["0", "91", "-1", "1.5", "x", ""])
async def test_it_rejects_days_out_of_1_to_90(api, world, database, days):
    monitor = await badge_monitor(database, world.org_a)
    for path in ("uptime.svg", "shields.json"):
        response = await api.get(f"/badge/{monitor.id}/{path}", params={"days": days, "kind": "uptime"})
        assert response.status_code == 400, (path, days, response.text)
        assert response.json()["error"].startswith("days"), response.text
    assert (await api.get(f"/badge/{monitor.id}/shields.json", params={"kind": "svg"})).status_code == 400


async def test_only_monitors_that_opted_in_have_badges(api, world, database):
    hidden = await insert_monitor(database, world.org_a, config={})
    declined = await insert_monitor(database, world.org_b, config={"publicBadge": False})
    answers = []
    for monitor_id in (hidden.id, declined.id, "mon_unknown", "x" * 40, "x" * 500):
        for path in ("status.svg", "uptime.svg", "shields.json"):
            response = await api.get(f"/badge/{monitor_id}/{path}")
            assert response.status_code == 404, (monitor_id, path)
            answers.append(response.json())
    assert len({str(answer) for answer in answers}) == 1  # the same words whichever id it was


async def test_ids_that_have_no_badge_spend_the_addresss_budget(api, world, database):
    monitor = await badge_monitor(database, world.org_a)
    statuses = [(await api.get(f"/badge/mon_guess{n}/status.svg")).status_code for n in range(61)]
    assert statuses[:60] == [404] * 60 and statuses[60] == 429
    # A badge that exists costs nothing and still answers.
    assert (await api.get(f"/badge/{monitor.id}/status.svg")).status_code == 200


@pytest.mark.parametrize(
    ("monitor_type", "fields"),
    [("HTTP", {}), ("TCP", {"url": "tcp://db.example.com:5432"}), ("HEARTBEAT", {"url": None})],
)
async def test_the_monitors_api_takes_public_badge_as_a_strict_boolean(api, world, monitor_type, fields):
    monitor = await create_monitor(
        api, world.alice, type=monitor_type, config={"publicBadge": True}, **fields
    )
    assert monitor["config"] == {"publicBadge": True}
    assert (await api.get(f"/badge/{monitor['id']}/status.svg")).status_code == 200
    url = f"/api/monitors/{monitor['id']}"
    response = await api.put(url, json={"config": {"publicBadge": False}}, headers=world.alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["config"] == {"publicBadge": False}
    assert (await api.get(f"/badge/{monitor['id']}/status.svg")).status_code == 404
    for bad in ("true", 1, None, [True]):
        response = await api.put(url, json={"config": {"publicBadge": bad}}, headers=world.alice.headers)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"].startswith("config.publicBadge:"), response.text


async def test_an_incident_declared_on_a_page_shows_on_the_badge(api, world, database, clock):
    now = clock()
    monitor = await badge_monitor(database, world.org_a, name="API")
    await record(database, [result(monitor.id, now - timedelta(minutes=1))])
    page = StatusPage(id=new_id("sp"), org_id=world.org_a, name="Acme", slug="acme")
    component = StatusPageComponent(
        id=new_id("spc"), page_id=page.id, monitor_id=monitor.id, display_name="API"
    )
    incident = PageIncident(
        id=new_id("inc"),
        org_id=world.org_a,
        page_id=page.id,
        title="Slow checkouts",
        impact="minor",
        component_ids=[component.id],
        started_at=now - timedelta(minutes=10),
    )
    async with database.session() as session:
        session.add(page)
        await session.flush()
        session.add_all([component, incident])
        await session.commit()
    assert texts((await api.get(f"/badge/{monitor.id}/status.svg")).text)[2:] == ["degraded"] * 2
    async with database.session() as session:
        await session.execute(
            update(PageIncident).where(PageIncident.id == incident.id).values(impact="critical")
        )
        await session.commit()
    assert texts((await api.get(f"/badge/{monitor.id}/status.svg")).text)[2:] == ["down"] * 2
