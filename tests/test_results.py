"""The results path: idempotent batch inserts that keep rollups and each monitor's lastCheck."""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select

from control_plane.domain import histogram
from control_plane.models import CheckResult, CheckRollup, Monitor, RollupBacklog
from control_plane.results import LastCheckWriter, RecordOutcome, record_results, results_store
from control_plane.results.domain import rollup_deltas
from control_plane.results.postgres_store import PostgresResultsStore
from control_plane.results.sqlite_store import SqliteResultsStore
from control_plane.services import dashboard, history, monitors
from control_plane.workers.rollups import fold_rollups
from tests.agents_server.server_tools import insert_monitors
from tests.factories import insert_monitor, record, result

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
    monitor = await insert_monitor(database, world.org_a)
    async with database.session() as session:
        await PostgresResultsStore().insert_new(session, [result(monitor.id, T0)])
        await session.rollback()
    async with database.session() as session:
        outcome = await record_results(session, [result(monitor.id, T0 + timedelta(minutes=1))])
    assert len(outcome.inserted) == 1


# -- the rollup backlog and its fold ---------------------------------------------------------------


async def backlog_size(database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(RollupBacklog)) or 0)


async def test_reads_count_queued_results_and_read_the_same_once_they_are_folded(database, world):
    monitor = await insert_monitor(database, world.org_a)
    now = T0 + timedelta(hours=3)
    await record(
        database,
        [
            result(monitor.id, T0 + timedelta(minutes=i), response_time=50.0 + i, dns=1.0 + i % 3, size=100)
            for i in range(0, 150, 3)
        ]
        + [result(monitor.id, T0 + timedelta(minutes=20), status="DOWN", response_time=None)],
    )
    await fold_rollups(database)  # some rolled up ...
    await record(database, [result(monitor.id, now - timedelta(minutes=i), tls=4.0) for i in range(5)])
    assert await backlog_size(database) == 5  # ... and some still queued

    async def read() -> tuple[dict, float | None]:
        async with database.session() as session:
            figures = await history.performance(session, monitor.id, hours=24, now=now)
            uptime = await dashboard.average_uptime(session, world.org_a, now=now)
        return figures, uptime

    before, uptime_before = await read()
    assert before["sampleCount"] == 50 + 1 + 5
    assert before["averages"]["tls"] == 4.0
    assert uptime_before == round(100.0 * 55 / 56, 2)
    assert await fold_rollups(database) == 5
    assert await backlog_size(database) == 0
    after, uptime_after = await read()
    assert after == before and uptime_after == uptime_before


async def test_the_fold_buckets_and_sums_as_python_does(database, world):
    """PostgreSQL adds the backlog up in SQL: its histogram buckets must be Python's, edges included."""
    monitor = await insert_monitor(database, world.org_a)
    edges = [histogram.FLOOR * histogram.GROWTH**k for k in (0, 1, 7, 50, 100, 150)]
    values = [0.0, 0.005, 0.01, 1.0, 33.3, 99.99, 250.0, 1234.5, 86_399_999.0, *edges]
    values += [math.nextafter(v, math.inf) for v in edges] + [math.nextafter(v, 0.0) for v in edges]
    batch = [
        result(monitor.id, T0 + timedelta(seconds=i), response_time=value, dns=value, size=i)
        for i, value in enumerate(values)
    ] + [result(monitor.id, T0 + timedelta(days=1, hours=2), response_time=7.0, total=9.0, status="DOWN")]
    await record(database, batch)

    expected = rollup_deltas(batch)
    for granularity in ("hour", "day"):
        for row in await rollups(database, monitor.id, granularity):
            delta = expected.pop((row.monitor_id, row.region, row.granularity, row.bucket_start))
            assert (row.count, row.up_count) == (delta.count, delta.up_count)
            assert row.histograms == delta.histograms
            assert row.counts == delta.counts
            assert row.sums.keys() == delta.sums.keys()
            for name, total in delta.sums.items():
                assert row.sums[name] == pytest.approx(total, rel=1e-12)
    assert expected == {}


async def test_reads_during_folds_never_miss_or_count_twice(database, world):
    monitor = await insert_monitor(database, world.org_a)
    now = T0 + timedelta(hours=2)
    batch = [
        result(monitor.id, T0 + timedelta(seconds=7 * i), response_time=float(i % 90)) for i in range(600)
    ]
    await record(database, batch)
    async with database.session() as session:
        expected = await history.performance(session, monitor.id, hours=24, now=now)
    assert expected["sampleCount"] == 600

    folding = asyncio.create_task(fold_rollups(database, limit=7))  # ~86 small folds
    seen = []
    while not folding.done():
        async with database.session() as session:
            seen.append(await history.performance(session, monitor.id, hours=24, now=now))
        await asyncio.sleep(0)
    assert await folding == 600
    async with database.session() as session:
        seen.append(await history.performance(session, monitor.id, hours=24, now=now))
    assert len(seen) > 3
    for figures in seen:
        assert figures["sampleCount"] == 600
        assert figures["averages"] == pytest.approx(expected["averages"])
        assert figures["p95"] == expected["p95"]


async def test_a_fold_drops_the_queue_of_a_monitor_deleted_meanwhile(database, world):
    monitor = await insert_monitor(database, world.org_a)
    kept = await insert_monitor(database, world.org_a)
    await record(database, [result(monitor.id, T0), result(kept.id, T0)])
    async with database.session() as session:  # as if deleted between a batch and the fold
        await session.execute(delete(Monitor).where(Monitor.id == monitor.id))
        await session.commit()
    assert await fold_rollups(database) == 2
    assert await backlog_size(database) == 0
    assert [r.count for r in await rollups(database, kept.id, "hour")] == [1]
    assert await rollups(database, monitor.id, "hour") == []


async def test_the_fold_works_through_a_backlog_larger_than_its_limit(database, world):
    monitor = await insert_monitor(database, world.org_a)
    await record(database, [result(monitor.id, T0 + timedelta(minutes=i)) for i in range(10)])
    assert await fold_rollups(database, limit=3) == 10
    assert [r.count for r in await rollups(database, monitor.id, "hour")] == [10]


async def test_a_replay_racing_its_original_is_stored_once(database, world):
    monitor = await insert_monitor(database, world.org_a)
    for round_ in range(5):
        # New connections each round: the retry must not count on temp tables an earlier,
        # committed batch left on its connection (the failed transaction took its own with it).
        await database.engine.dispose()
        batch = [result(monitor.id, T0 + timedelta(minutes=round_, seconds=i)) for i in range(40)]

        async def write(results: list) -> RecordOutcome:
            async with database.session() as session:
                return await record_results(session, results)

        first, second = await asyncio.gather(write(batch), write(batch[::-1]))
        assert sorted(first.inserted + second.inserted) == sorted(r.id for r in batch)
        assert sorted(first.duplicates + second.duplicates) == sorted(r.id for r in batch)
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CheckResult)) == 200
    (hourly,) = await rollups(database, monitor.id, "hour")
    assert hourly.count == 200


@pytest.mark.postgres_only
async def test_deleting_a_monitor_waits_for_results_being_written_and_takes_them_too(database, world):
    store = PostgresResultsStore()
    monitor = await insert_monitor(database, world.org_a)
    async with database.session() as writer:
        # A batch in flight: it has found the monitor and is writing its results.
        assert await store.existing_monitors(writer, [monitor.id]) == {monitor.id}
        await store.insert_new(writer, [result(monitor.id, T0)])

        async def delete_it() -> None:
            async with database.session() as session:
                await monitors.delete_monitor(session, world.org_a, monitor.id)

        deleting = asyncio.create_task(delete_it())
        await asyncio.sleep(0.5)
        assert not deleting.done()  # waits for the batch
        await writer.commit()
    await asyncio.wait_for(deleting, 10)
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CheckResult)) == 0
        assert await session.scalar(select(func.count()).select_from(RollupBacklog)) == 0
    outcome = await record_results_now(database, [result(monitor.id, T0 + timedelta(minutes=1))])
    assert outcome.orphaned and not outcome.inserted  # and afterwards, nothing is stored for it


async def record_results_now(database, results: list) -> RecordOutcome:
    async with database.session() as session:
        return await record_results(session, results)


async def test_last_checks_written_behind_keep_the_newest(database, world):
    monitor = await insert_monitor(database, world.org_a)
    writer = LastCheckWriter(database, interval_seconds=0.01)
    writer.start()
    try:
        async with database.session() as session:
            await record_results(
                session, [result(monitor.id, T0 + timedelta(minutes=2), status="DOWN")], last_checks=writer
            )
        async with database.session() as session:
            await record_results(session, [result(monitor.id, T0, response_time=1.0)], last_checks=writer)
    finally:
        await writer.stop()  # writes what is left
    async with database.session() as session:
        stored = await session.get(Monitor, monitor.id)
    assert stored.last_checked_at == T0 + timedelta(minutes=2) and stored.last_check_status == "DOWN"


@pytest.mark.postgres_only
@pytest.mark.parametrize("rolled_up_before", [False, True])
async def test_deleting_a_monitor_while_a_fold_holds_its_queue(database, world, rolled_up_before):
    """The fold has taken a monitor's queued results when the monitor is deleted: the deletion must
    not deadlock with it (nor fail), and the fold drops them instead of failing for good."""
    monitor = await insert_monitor(database, world.org_a)
    kept = await insert_monitor(database, world.org_a)
    if rolled_up_before:
        await record(database, [result(monitor.id, T0), result(kept.id, T0)])
        await fold_rollups(database)
    await record(database, [result(monitor.id, T0 + timedelta(minutes=1)), result(kept.id, T0)])

    deletion: list[asyncio.Task] = []

    class TakeThenDelete(PostgresResultsStore):
        async def take_backlog(self, session, limit):
            taken = await super().take_backlog(session, limit)
            if not deletion:  # the first time: delete the monitor while this fold holds its rows

                async def delete_it() -> None:
                    async with database.session() as other:
                        await monitors.delete_monitor(other, world.org_a, monitor.id)

                deletion.append(asyncio.create_task(delete_it()))
                await asyncio.sleep(0.5)
            return taken

    await fold_rollups(database, store=TakeThenDelete())
    await asyncio.wait_for(deletion[0], 10)
    await fold_rollups(database)

    assert await backlog_size(database) == 0
    assert await rollups(database, monitor.id, "hour") == []
    assert [r.count for r in await rollups(database, kept.id, "hour")] == [2 if rolled_up_before else 1]
    async with database.session() as session:
        assert await session.scalar(select(func.count()).where(CheckResult.monitor_id == monitor.id)) == 0


@pytest.mark.sqlite_only
async def test_the_sqlite_fold_unqueues_exactly_what_it_read(database, world):
    """SQLite reuses the rowids of deleted rows: results stored by another connection between the
    fold's read and its delete must stay queued, whatever rowid they got."""
    kept = await insert_monitor(database, world.org_a)
    doomed = await insert_monitor(database, world.org_a)
    await record(database, [result(kept.id, T0 + timedelta(seconds=i)) for i in range(5)])
    await record(database, [result(doomed.id, T0 + timedelta(seconds=i)) for i in range(3)])  # newest rowids

    meanwhile: list[bool] = []

    class ReadThenOthersWrite(SqliteResultsStore):
        async def read_backlog(self, session, limit):
            rows = await super().read_backlog(session, limit)
            if not meanwhile:  # between the fold's read and its delete
                meanwhile.append(True)
                async with database.session() as other:
                    await monitors.delete_monitor(other, world.org_a, doomed.id)
                later = [result(kept.id, T0 + timedelta(minutes=5, seconds=i)) for i in range(3)]
                await record(database, later)
            return rows

    store = ReadThenOthersWrite()
    assert await fold_rollups(database, store=store) == 8  # 5 kept + the 3 deleted meanwhile (dropped)
    assert meanwhile
    assert await backlog_size(database) == 3  # the three stored meanwhile, still queued
    (hourly,) = await rollups(database, kept.id, "hour")  # folds them
    assert hourly.count == 8


class FirstLastCheckWriteFails:
    """The database's results store, but its first lastCheck write fails as if the connection dropped."""

    def __init__(self, store) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def update_last_checks(self, session, newest) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the database went away")
        await self._store.update_last_checks(session, newest)


async def test_a_failed_last_check_write_keeps_its_notes_for_the_next(database, world):
    monitor = await insert_monitor(database, world.org_a)
    store = FirstLastCheckWriteFails(results_store(database.engine))
    writer = LastCheckWriter(database, store=store)  # not started: flushed by hand
    writer.note([(monitor.id, ("DOWN", None, T0))])

    with pytest.raises(ConnectionError):
        await writer.flush()
    writer.note([(monitor.id, ("UP", 3.0, T0 - timedelta(minutes=1)))])  # older: must not win
    await writer.stop()
    async with database.session() as session:
        stored = await session.get(Monitor, monitor.id)
    assert (stored.last_check_status, stored.last_checked_at) == ("DOWN", T0)


async def test_another_organizations_queued_results_stay_out_of_uptime(database, world):
    mine = await insert_monitor(database, world.org_a)
    theirs = await insert_monitor(database, world.org_b)
    now = T0 + timedelta(hours=1)
    await record(database, [result(mine.id, now - timedelta(minutes=i)) for i in range(4)])
    await record(database, [result(theirs.id, now - timedelta(minutes=i), status="DOWN") for i in range(4)])
    assert await backlog_size(database) == 8
    async with database.session() as session:
        assert await dashboard.average_uptime(session, world.org_a, now=now) == 100.0
        assert await dashboard.average_uptime(session, world.org_b, now=now) == 0.0


async def test_a_large_fold_leaves_the_event_loop_free(database, world):
    # A fold takes up to its store's fold_limit results at once (50,000 on PostgreSQL): over many
    # monitors that is hundreds of thousands of rows to add up and merge, which must not hold the
    # loop (the agents' calls and the API share it in one process) for more than moments at a time.
    # SQLite's folds take 2,000 at a time whatever the backlog: a few of them show it as well.
    monitors = 500 if database.is_sqlite else 2_000
    monitor_ids = await insert_monitors(database, world.org_a, monitors)
    measures = {"dns_ms": 3.0, "tcp_ms": 5.0, "tls_ms": 9.0, "ttfb_ms": 40.0, "download_ms": 2.0}

    async def queue(first_hour: int) -> None:
        rows = [
            {
                "monitor_id": monitor_id,
                "checked_at": T0 + timedelta(hours=first_hour + hour),
                "result_id": f"res_{first_hour}_{hour}_{monitor_id}",
                "region": "us-east-1",
                "up": True,
                "response_time": 60.0 + hour,
                "total_ms": 60.0 + hour,
                "size_bytes": 512,
                **measures,
            }
            for monitor_id in monitor_ids
            for hour in range(8)
        ]
        async with database.session() as session:
            await session.execute(insert(RollupBacklog), rows)
            await session.commit()

    async def longest_step_while(work: Awaitable[int]) -> tuple[int, float]:
        # The test process's heap (a whole suite's, under xdist) frozen out of the collector, as
        # `traxo api` and `traxo worker` freeze theirs at start: a full collection of it (seconds,
        # late in a run) would be counted against the fold, which did not make that heap.
        gc.freeze()
        try:
            return await _longest_step_while(work)
        finally:
            gc.unfreeze()

    async def _longest_step_while(work: Awaitable[int]) -> tuple[int, float]:
        # Steps measured in the loop thread's CPU time, not the wall's: the machine's other
        # processes (the database, another test worker) take the core away now and then.
        done = False
        longest = 0.0

        async def tick() -> None:
            nonlocal longest
            last = time.thread_time()
            while not done:
                await asyncio.sleep(0.001)
                now = time.thread_time()
                longest, last = max(longest, now - last), now

        ticker = asyncio.create_task(tick())
        try:
            folded = await work
        finally:
            done = True
            await ticker
        return folded, longest

    await queue(0)  # new rollup rows
    folded, longest = await longest_step_while(fold_rollups(database))
    assert folded == monitors * 8
    assert longest < 0.4, f"the fold held the loop for {longest:.3f} s of CPU"
    await queue(4)  # half of them merged into the rows just written, half new
    folded, longest = await longest_step_while(fold_rollups(database))
    assert folded == monitors * 8
    assert longest < 0.4, f"the fold held the loop for {longest:.3f} s of CPU"
    async with database.session() as session:
        hours = (
            await session.execute(
                select(func.count(), func.sum(CheckRollup.count)).where(CheckRollup.granularity == "hour")
            )
        ).one()
    assert tuple(hours) == (monitors * 12, monitors * 16)
