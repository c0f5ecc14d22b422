"""The SQLite spool: survives reopening, bounded by size, age and a full disk, counts what it drops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from agent.checks.base import CheckResult, Status
from agent.metrics import AgentMetrics
from agent.records import ResultRecord
from agent.results import DROP_WARNING_INTERVAL_S, DropWarnings, ResultPipeline
from agent.spool import Spool
from tests.reliability.agent_fault_support import fill_disk, small_disk
from tests.waiting import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


async def test_it_keeps_results_across_reopen(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=3600, clock=clock)
    await spool.open()
    await spool.add([b"one", b"two", b"three"])
    rows = await spool.read_after(0, 10)
    await spool.delete([rows[0].seq])
    await spool.close()

    reopened = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=3600, clock=clock)
    await reopened.open()
    assert [r.payload for r in await reopened.read_after(0, 10)] == [b"two", b"three"]
    stats = await reopened.stats()
    assert (stats.count, stats.size_bytes, stats.oldest_created_at) == (2, 8, 1_000.0)
    assert [r.payload for r in await reopened.read_after(rows[1].seq, 10)] == [b"three"]
    await reopened.close()


async def test_size_bound_drops_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=25, max_age_s=3600, clock=Clock())
    await spool.open()
    dropped = await spool.add([b"x" * 10 for _ in range(4)])
    assert dropped.by_size == 2
    stats = await spool.stats()
    assert (stats.count, stats.size_bytes) == (2, 20)
    await spool.close()


async def test_age_bound_drops_old_results(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=60, clock=clock)
    await spool.open()
    await spool.add([b"old", b"old"])
    clock.now += 61
    dropped = await spool.add([b"new"])
    assert dropped.by_age == 2
    assert [r.payload for r in await spool.read_after(0, 10)] == [b"new"]
    assert (await spool.stats()).count == 1
    await spool.close()


async def test_deleting_already_dropped_rows_keeps_counts_right(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10, max_age_s=3600, clock=Clock())
    await spool.open()
    await spool.add([b"a" * 10])
    first = await spool.read_after(0, 1)
    await spool.add([b"b" * 10])  # pushes "a" out
    await spool.delete([first[0].seq])
    stats = await spool.stats()
    assert (stats.count, stats.size_bytes) == (1, 10)
    await spool.close()


# -- a full disk: a small tmpfs (root), filled by a ballast file as another program would fill it --------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        yield disk


async def test_a_full_disk_drops_the_oldest_and_keeps_storing(full_disk: Path) -> None:
    spool = Spool(
        full_disk / "s.sqlite3",
        max_bytes=100_000_000,
        max_age_s=3600,
        clock=Clock(),
        reserve_bytes=256 * 1024,
    )
    await spool.open()
    fill_disk(full_disk, leave_bytes=200_000)
    added: list[bytes] = []
    by_disk = 0
    for batch in range(600):
        payloads = [f"{batch:04d}-{i}".encode() * 20 for i in range(3)]  # 120 bytes each
        dropped = await spool.add(payloads)
        added += payloads
        assert (dropped.by_size, dropped.by_age, dropped.unstored) == (0, 0, 0), dropped
        by_disk += dropped.by_disk
    stats = await spool.stats()
    assert by_disk > 0 and stats.disk_full
    assert stats.count + by_disk == len(added)  # every result is kept or counted, none twice
    kept = await spool.read_after(0, len(added))
    assert [row.payload for row in kept] == added[-stats.count :]  # the newest, in order
    assert stats.count > 100  # the disk's room, not a handful

    await spool.delete([row.seq for row in kept])  # the control plane took them all
    assert not (await spool.stats()).disk_full  # the next results may use the room again
    await spool.close()


async def test_room_made_on_the_disk_is_used_again_before_the_spool_empties(full_disk: Path) -> None:
    """A long cut-off never empties the spool: once space is freed (the ballast removed), the spool
    stops dropping for the disk it was limited to (found by review: it dropped thousands more)."""
    spool = Spool(
        full_disk / "s.sqlite3",
        max_bytes=100_000_000,
        max_age_s=3600,
        clock=Clock(),
        reserve_bytes=256 * 1024,
    )
    await spool.open()
    ballast = fill_disk(full_disk, leave_bytes=200_000)
    by_disk = 0
    for batch in range(600):
        by_disk += (await spool.add([f"{batch:04d}-{i}".encode() * 20 for i in range(3)])).by_disk
    assert by_disk > 0 and (await spool.stats()).disk_full
    ballast.unlink()  # the operator makes room; nothing was acknowledged meanwhile
    added_after = 0
    for batch in range(200):
        dropped = await spool.add([f"after-{batch:04d}-{i}".encode() * 20 for i in range(3)])
        assert dropped.by_disk == 0, (batch, dropped)
        added_after += 3
    stats = await spool.stats()
    assert not stats.disk_full
    kept = await spool.read_after(0, stats.count)
    assert sum(row.payload.startswith(b"after-") for row in kept) == added_after  # all of them kept
    await spool.close()


async def test_a_batch_that_fits_nowhere_is_dropped_itself(full_disk: Path) -> None:
    spool = Spool(
        full_disk / "s.sqlite3", max_bytes=100_000_000, max_age_s=3600, clock=Clock(), reserve_bytes=0
    )
    await spool.open()
    await spool.add([b"kept" * 30 for _ in range(50)])
    fill_disk(full_disk)  # to the last byte, and no reserve to release: nothing can be written

    dropped = await spool.add([b"new" * 40 for _ in range(3)])

    assert (dropped.unstored, dropped.by_disk) == (3, 0), dropped
    rows = await spool.read_after(0, 100)
    assert [row.payload for row in rows] == [b"kept" * 30] * 50
    assert (await spool.stats()).count == 50
    await spool.close()


async def test_the_pipeline_counts_and_warns_once_for_a_full_disk(
    full_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    spool = Spool(
        full_disk / "s.sqlite3", max_bytes=100_000_000, max_age_s=3600, clock=clock, reserve_bytes=256 * 1024
    )
    await spool.open()
    metrics = AgentMetrics()
    pipeline = ResultPipeline(spool, metrics, clock)
    fill_disk(full_disk, leave_bytes=100_000)
    with caplog.at_level(logging.WARNING, logger="agent.results"):
        for n in range(400):
            for i in range(3):
                pipeline.submit(_record(f"chk_{n}_{i}"))
            await pipeline.flush()
            clock.now += 0.1  # 40 s of flushes: within one warning interval
    dropped = metrics.registry.get_sample_value("traxo_agent_results_dropped_total", {"reason": "disk_full"})
    assert dropped and dropped > 0
    assert metrics.registry.get_sample_value("traxo_agent_spool_disk_full") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "disk is full" in warnings[0], warnings
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    stats = await spool.stats()
    assert stats.count + dropped == 1200

    caplog.clear()
    clock.now += 60  # the next warning is due: it counts every drop since the first
    with caplog.at_level(logging.WARNING, logger="agent.results"):
        pipeline.submit(_record("chk_late"))
        await pipeline.flush()
    dropped_since = metrics.registry.get_sample_value(
        "traxo_agent_results_dropped_total", {"reason": "disk_full"}
    )
    first = int(warnings[0].split()[1])
    assert [r.getMessage() for r in caplog.records] == [
        f"dropped {int(dropped_since or 0) - first} unsent results: the disk is full: the oldest made room"
    ]
    await spool.close()


def test_a_bursts_last_count_is_logged_once_its_interval_is_over(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    warnings = DropWarnings(clock)
    with caplog.at_level(logging.WARNING, logger="agent.results"):
        warnings.note("the spool's bounds pushed them out", 3)  # the first: at once
        clock.now += 1
        warnings.note("the spool's bounds pushed them out", 4)  # within the interval: held
        warnings.note("the disk is full: the oldest made room", 2)  # another cause: its own interval
        warnings.note("the spool's bounds pushed them out", 5)
        clock.now += DROP_WARNING_INTERVAL_S / 2
        warnings.log_due()  # the burst is over, its interval is not
        clock.now += DROP_WARNING_INTERVAL_S / 2
        warnings.log_due()  # now it is, with nothing more dropped since
        warnings.log_due()
    assert [r.getMessage() for r in caplog.records] == [
        "dropped 3 unsent results: the spool's bounds pushed them out",
        "dropped 2 unsent results: the disk is full: the oldest made room",
        "dropped 9 unsent results: the spool's bounds pushed them out",
    ]


async def test_a_flush_with_nothing_dropped_logs_the_last_count_of_a_burst(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=4_000, max_age_s=3600, clock=clock)
    await spool.open()
    metrics = AgentMetrics()
    pipeline = ResultPipeline(spool, metrics, clock)
    with caplog.at_level(logging.WARNING, logger="agent.results"):
        for n in range(60):  # far over the spool's 4 kB: each flush pushes the oldest out
            pipeline.submit(_record(f"chk_{n}"))
            await pipeline.flush()
            clock.now += 0.1
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 1, logged
        await spool.delete([row.seq for row in await spool.read_after(0, 1000)])  # all sent
        clock.now += DROP_WARNING_INTERVAL_S
        pipeline.submit(_record("chk_after"))  # fits: nothing dropped by this flush
        await pipeline.flush()
    dropped = metrics.registry.get_sample_value("traxo_agent_results_dropped_total", {"reason": "spool_full"})
    first = int(logged[0].split()[1])
    assert [r.getMessage() for r in caplog.records][1:] == [
        f"dropped {int(dropped or 0) - first} unsent results: the spool's bounds pushed them out"
    ]
    await spool.close()


async def test_a_broken_spool_drops_the_batch_with_a_count_and_the_writer_goes_on(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=3600, clock=clock)
    await spool.open()
    metrics = AgentMetrics()
    pipeline = ResultPipeline(spool, metrics, clock, flush_interval_s=0.01)
    writer = asyncio.create_task(pipeline.run_writer())
    await spool.close()  # every add now fails

    def spool_errors() -> float:
        value = metrics.registry.get_sample_value(
            "traxo_agent_results_dropped_total", {"reason": "spool_error"}
        )
        return value or 0.0

    for n in range(1, 4):
        pipeline.submit(_record(f"chk_broken_{n}"))
        await eventually(partial(_equals, spool_errors, n), 5, f"{n} batches counted as dropped")
    assert not writer.done()
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


def _equals(read: Callable[[], float], expected: float) -> bool:
    return read() == expected


def _record(result_id: str) -> ResultRecord:
    result = CheckResult(status=Status.DOWN, response_time_ms=1.0, error_message="connection refused")
    return ResultRecord(result_id, "mon_full_disk", "HTTP", 1, "r1", 1.0, 1.0, 1.0, result)
