"""Screenshots of BROWSER checks: stored with their result, served by API, gone with the result."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from control_plane.core.timefmt import utcnow
from control_plane.models import CheckScreenshot
from control_plane.workers.retention import apply_retention
from tests.factories import insert_monitor, record, result

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_a_screenshot_is_served_to_its_organization_only(api, world, database):
    monitor = await insert_monitor(database, world.org_a, type="BROWSER")
    with_shot = result(monitor.id, utcnow(), status="DOWN", screenshot_png=PNG)
    without = result(monitor.id, utcnow() - timedelta(minutes=1))
    await record(database, [with_shot, without])

    path = f"/api/monitors/{monitor.id}/checks/{with_shot.id}/screenshot"
    response = await api.get(path, headers=world.vera.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png" and response.content == PNG
    assert (await api.get(path, headers=world.bob.headers)).status_code == 404
    assert (await api.get(path)).status_code == 401
    missing = await api.get(
        f"/api/monitors/{monitor.id}/checks/{without.id}/screenshot", headers=world.alice.headers
    )
    assert missing.status_code == 404 and "none" in missing.json()["error"]
    other = await insert_monitor(database, world.org_a)
    wrong_monitor = await api.get(
        f"/api/monitors/{other.id}/checks/{with_shot.id}/screenshot", headers=world.alice.headers
    )
    assert wrong_monitor.status_code == 404


async def test_a_replayed_result_does_not_store_its_screenshot_twice(database, world):
    monitor = await insert_monitor(database, world.org_a, type="BROWSER")
    shot = result(monitor.id, utcnow(), status="DOWN", screenshot_png=PNG)
    await record(database, [shot])
    await record(database, [shot])
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CheckScreenshot)) == 1


async def test_screenshots_expire_with_their_results(database, world, settings):
    monitor = await insert_monitor(database, world.org_a, type="BROWSER")
    now = utcnow()
    await record(database, [result(monitor.id, now - timedelta(days=40), status="DOWN", screenshot_png=PNG)])
    await apply_retention(database, settings, clock=lambda: now)
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CheckScreenshot)) == 0
