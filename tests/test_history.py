"""Performance, dashboard stats, retention and the worker lease, all read from rollups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select

from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import CheckResult, CheckRollup, Incident, Monitor
from control_plane.services import monitors
from control_plane.services.dashboard import CLOSED_DAYS_TTL, UptimeCache, average_uptime
from control_plane.workers.retention import apply_retention
from control_plane.workers.rollups import fold_rollups
from control_plane.workers.runner import PeriodicJob, WorkerRunner
from tests.factories import insert_monitor, record, result
from tests.spec import assert_shape, example


async def test_performance_reads_averages_p95_and_an_hourly_series(api, world, database):
    monitor = await insert_monitor(database, world.org_a)
    now = utcnow()
    recent = [
        result(
            monitor.id,
            now - timedelta(minutes=5 + i),
            dns=10.0 + i,
            tcp=5.0,
            tls=20.0,
            ttfb=40.0,
            download=5.0,
            total=80.0 + i,
            size=2000,
        )
        for i in range(20)
    ]
    older = [
        result(monitor.id, now - timedelta(hours=3, minutes=i), total=200.0, dns=30.0) for i in range(10)
    ]
    ancient = [result(monitor.id, now - timedelta(days=9), total=5000.0)]
    await record(database, recent + older + ancient)

    response = await api.get(f"/api/monitors/{monitor.id}/performance?hours=24", headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/monitors/:id/performance"))
    data = body["data"]
    assert data["sampleCount"] == 30
    assert data["averages"]["total"] == round((sum(80.0 + i for i in range(20)) + 2000.0) / 30, 1)
    assert data["averages"]["tls"] == 20.0 and data["averages"]["size"] == 2000
    assert abs(data["p95"]["total"] - 200.0) / 200.0 < 0.05
    assert (
        len(data["timeSeries"]) >= 2
        and data["timeSeries"][0]["timestamp"] < data["timeSeries"][-1]["timestamp"]
    )
    week = (
        await api.get(f"/api/monitors/{monitor.id}/performance?hours=168", headers=world.alice.headers)
    ).json()
    assert week["data"]["sampleCount"] == 30  # nine days ago is outside a week
    default = (await api.get(f"/api/monitors/{monitor.id}/performance", headers=world.alice.headers)).json()
    assert default["data"]["sampleCount"] == 30


async def test_dashboard_stats(api, world, database):
    up = await insert_monitor(database, world.org_a, name="up")
    flaky = await insert_monitor(database, world.org_a, name="flaky")
    paused = await insert_monitor(database, world.org_a, name="paused", is_active=False)
    other = await insert_monitor(database, world.org_b, name="other org")
    now = utcnow()
    await record(database, [result(up.id, now - timedelta(minutes=i)) for i in range(4)])
    await record(database, [result(flaky.id, now - timedelta(minutes=i + 1)) for i in range(3)])
    await record(database, [result(flaky.id, now, status="DOWN")])
    await record(database, [result(paused.id, now, status="DOWN")])
    await record(database, [result(other.id, now, status="DOWN")])
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    async with database.session() as session:
        # One open since just after midnight, one resolved that opened just before (at most one
        # incident of a kind is open per monitor).
        for started, resolved in (
            (midnight + timedelta(seconds=1), None),
            (midnight - timedelta(seconds=1), midnight),
        ):
            session.add(
                Incident(
                    id=new_id("inc"),
                    org_id=world.org_a,
                    monitor_id=flaky.id,
                    started_at=started,
                    resolved_at=resolved,
                )
            )
        session.add(Incident(id=new_id("inc"), org_id=world.org_b, monitor_id=other.id, started_at=now))
        await session.commit()

    response = await api.get("/api/dashboard/stats", headers=world.vera.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/dashboard/stats"))
    # paused: 0% uptime; up: 100%; flaky: 75%
    assert body["data"] == {"totalMonitors": 3, "currentlyDown": 1, "avgUptime": 58.33, "incidentsToday": 1}
    other_org = (await api.get("/api/dashboard/stats", headers=world.bob.headers)).json()["data"]
    assert other_org == {"totalMonitors": 1, "currentlyDown": 1, "avgUptime": 0.0, "incidentsToday": 1}
    empty = (await api.get("/api/dashboard/stats", headers=world.alice.headers)).status_code
    assert empty == 200
    assert (await api.get("/api/dashboard/stats", headers=world.nora.headers)).status_code == 404


async def test_dashboard_uptime_counts_today_at_once_and_closed_days_from_a_cache(database, world):
    monitor = await insert_monitor(database, world.org_a)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    two_days_ago = now - timedelta(days=2)
    await record(database, [result(monitor.id, two_days_ago, status=status) for status in ("UP", "DOWN")])
    cache = UptimeCache(database.changes)

    async def uptime(at: datetime) -> float | None:
        async with database.session() as session:
            return await average_uptime(session, world.org_a, now=at, cache=cache)

    assert await uptime(now) == 50.0
    await record(database, [result(monitor.id, now - timedelta(minutes=i)) for i in range(2)])
    assert await uptime(now) == 75.0  # today's rollups are always read
    await record(database, [result(monitor.id, now - timedelta(days=3), status="DOWN")])
    assert await uptime(now) == 75.0  # a late result for a closed day waits for the cache to expire
    assert await uptime(now + CLOSED_DAYS_TTL + timedelta(seconds=1)) == 60.0
    assert await uptime(now + timedelta(days=1)) == 60.0  # a new day reads the closed days anew

    async with database.session() as session:
        await monitors.delete_monitor(session, world.org_a, monitor.id)  # empties the cache at commit
    assert await uptime(now + timedelta(days=1)) is None


async def test_retention_deletes_expired_rows_in_batches(database, world, settings):
    monitor = await insert_monitor(database, world.org_a)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    expired = [result(monitor.id, now - timedelta(days=31, minutes=i)) for i in range(7)]
    kept = [result(monitor.id, now - timedelta(days=29, minutes=i)) for i in range(3)]
    ancient = [result(monitor.id, now - timedelta(days=401))]
    await record(database, expired + kept + ancient)
    await fold_rollups(database)

    deleted = await apply_retention(database, settings, clock=lambda: now, batch_size=2)
    async with database.session() as session:
        remaining = set(await session.scalars(select(CheckResult.id)))
        rollup_starts = set(await session.scalars(select(CheckRollup.bucket_start)))
    assert remaining == {r.id for r in kept}
    assert all(start > now - timedelta(days=400) for start in rollup_starts)
    assert any(start < now - timedelta(days=30) for start in rollup_starts)  # old rollups outlive raw rows
    assert deleted == 8 + 2  # raw rows, plus the ancient hour and day rollups
    assert await apply_retention(database, settings, clock=lambda: now) == 0


async def test_a_periodic_job_runs_on_one_replica_at_a_time(database):
    started = asyncio.Event()
    release = asyncio.Event()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    other_db = database if database.is_sqlite else Database(database.url)
    first = WorkerRunner(database, [PeriodicJob("exclusive", 60, job)])
    second = WorkerRunner(other_db, [PeriodicJob("exclusive", 60, job)])
    try:
        running = asyncio.create_task(first.run_once(first._jobs[0]))
        await asyncio.wait_for(started.wait(), 5)
        if database.is_sqlite:
            assert await first.run_once(first._jobs[0]) is False  # the process's own lease is held
        else:
            assert await second.run_once(second._jobs[0]) is False  # another replica holds the lease
        release.set()
        assert await running is True
        assert await second.run_once(second._jobs[0]) is True
        assert runs == 2
    finally:
        if other_db is not database:
            await other_db.dispose()
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CheckResult)) == 0


async def test_retention_deletes_what_a_monitors_deletion_left_behind(database, world, settings):
    gone = await insert_monitor(database, world.org_a)
    kept = await insert_monitor(database, world.org_a)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    await record(database, [result(m.id, now - timedelta(minutes=i)) for m in (gone, kept) for i in range(7)])
    async with database.session() as session:  # the monitor's row went, its results did not
        await session.execute(delete(Monitor).where(Monitor.id == gone.id))
        await session.commit()

    assert await apply_retention(database, settings, clock=lambda: now, batch_size=3) == 7
    async with database.session() as session:
        owners = set(await session.scalars(select(CheckResult.monitor_id)))
    assert owners == {kept.id}
    assert await apply_retention(database, settings, clock=lambda: now) == 0
