"""The results service: idempotent batch inserts that keep rollups and each monitor's lastCheck."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from control_plane import histogram
from control_plane.models import CheckResult, CheckRollup, Monitor, RollupBacklog
from control_plane.services.results import record_results
from control_plane.workers.rollups import fold_rollups
from tests.factories import insert_monitor, result

T0 = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


async def rollups(database, monitor_id: str, granularity: str) -> list[CheckRollup]:
    """The monitor's rollups once everything queued is folded in."""
    await fold_rollups(database)
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(RollupBacklog)) == 0
        rows = await session.scalars(
            select(CheckRollup)
            .where(CheckRollup.monitor_id == monitor_id, CheckRollup.granularity == granularity)
            .order_by(CheckRollup.region, CheckRollup.bucket_start)
        )
        return list(rows)


async def test_a_batch_is_stored_with_rollups_and_last_check(database, world):
    monitor = await insert_monitor(database, world.org_a)
    batch = [
        result(
            monitor.id,
            T0,
            response_time=100.0,
            dns=5.0,
            tcp=10.0,
            tls=20.0,
            ttfb=50.0,
            download=15.0,
            size=2048,
        ),
        result(monitor.id, T0 + timedelta(minutes=1), response_time=300.0, dns=7.0, size=1024),
        result(
            monitor.id, T0 + timedelta(minutes=50), status="DOWN", response_time=None, error_kind="timeout"
        ),
        result(monitor.id, T0 + timedelta(minutes=2), region="eu-west-1", response_time=50.0),
    ]
    async with database.session() as session:
        outcome = await record_results(session, batch)
    assert sorted(outcome.inserted) == sorted(r.id for r in batch)
    assert outcome.duplicates == [] and outcome.orphaned == []

    hourly = await rollups(database, monitor.id, "hour")
    assert [(r.region, r.bucket_start, r.count, r.up_count) for r in hourly] == [
        ("eu-west-1", T0.replace(minute=0), 1, 1),
        ("us-east-1", T0.replace(minute=0), 2, 2),
        ("us-east-1", T0.replace(hour=11, minute=0), 1, 0),
    ]
    us = hourly[1]
    assert us.sums["total"] == 400.0 and us.counts["total"] == 2  # total falls back to responseTime
    assert us.sums["dns"] == 12.0 and us.counts["dns"] == 2
    assert us.counts["tls"] == 1 and us.sums["size"] == 3072
    assert sum(us.histograms["total"].values()) == 2
    daily = await rollups(database, monitor.id, "day")
    assert [(r.region, r.count, r.up_count) for r in daily] == [("eu-west-1", 1, 1), ("us-east-1", 3, 2)]

    async with database.session() as session:
        stored = await session.get(Monitor, monitor.id)
    assert stored.last_checked_at == T0 + timedelta(minutes=50)
    assert stored.last_check_status == "DOWN" and stored.last_check_response_time is None


async def test_replays_are_not_counted_twice(database, world):
    monitor = await insert_monitor(database, world.org_a)
    batch = [result(monitor.id, T0 + timedelta(minutes=i)) for i in range(5)]
    async with database.session() as session:
        await record_results(session, batch[:3])
    async with database.session() as session:
        outcome = await record_results(session, batch + batch[:1])  # a replayed spool, with a repeat inside
    assert sorted(outcome.inserted) == sorted(r.id for r in batch[3:])
    assert sorted(outcome.duplicates) == sorted(r.id for r in batch[:3])
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CheckResult)) == 5
    (hourly,) = await rollups(database, monitor.id, "hour")
    assert hourly.count == 5


async def test_a_late_result_does_not_replace_a_newer_last_check(database, world):
    monitor = await insert_monitor(database, world.org_a)
    async with database.session() as session:
        await record_results(session, [result(monitor.id, T0 + timedelta(minutes=5), status="UP")])
    async with database.session() as session:
        await record_results(session, [result(monitor.id, T0, status="DOWN")])  # from a spool, older
    async with database.session() as session:
        stored = await session.get(Monitor, monitor.id)
    assert stored.last_check_status == "UP" and stored.last_checked_at == T0 + timedelta(minutes=5)


async def test_results_of_a_deleted_monitor_are_dropped_not_failed(database, world):
    monitor = await insert_monitor(database, world.org_a)
    kept = result(monitor.id, T0)
    orphan = result("mon_gone", T0)
    async with database.session() as session:
        outcome = await record_results(session, [kept, orphan])
    assert outcome.inserted == [kept.id] and outcome.orphaned == [orphan.id]


async def test_concurrent_batches_for_one_bucket_add_up(database, world):
    monitor = await insert_monitor(database, world.org_a)

    async def write(offset: int) -> None:
        async with database.session() as session:
            await record_results(
                session, [result(monitor.id, T0 + timedelta(seconds=offset * 10 + i)) for i in range(10)]
            )

    await asyncio.gather(*(write(n) for n in range(6)))
    (hourly,) = await rollups(database, monitor.id, "hour")
    assert hourly.count == 60 and hourly.up_count == 60


def test_histogram_percentiles_are_within_five_percent():
    values = [float(v) for v in range(1, 1001)]
    h: histogram.Histogram = {}
    for value in values:
        histogram.add(h, value)
    for q, exact in ((0.5, 500.0), (0.95, 950.0), (0.99, 990.0)):
        estimate = histogram.quantile(h, q)
        assert estimate is not None and abs(estimate - exact) / exact < 0.05
    assert histogram.quantile({}, 0.95) is None
    merged = histogram.merged([h, h])
    assert sum(merged.values()) == 2000 and histogram.quantile(merged, 0.95) == histogram.quantile(h, 0.95)


@pytest.mark.postgres_only
async def test_a_rolled_back_batch_leaves_the_fast_path_working(database, world):
    """PostgreSQL's path creates its temp tables inside the batch's transaction; a rollback drops
    them, and the next batch on the same pooled connection must create them again."""
    from control_plane.services import results_pg

    monitor = await insert_monitor(database, world.org_a)
    async with database.session() as session:
        await results_pg.insert_new(session, [result(monitor.id, T0)])
        await session.rollback()
    async with database.session() as session:
        outcome = await record_results(session, [result(monitor.id, T0 + timedelta(minutes=1))])
    assert len(outcome.inserted) == 1
