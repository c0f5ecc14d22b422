"""The scheduler with a fake clock: phase spreading, skip counting, scheduled vs started times."""

from __future__ import annotations

import asyncio
import re

from agent.checks.base import CheckResult, CheckRunner, CheckSpec, Status
from agent.metrics import AgentMetrics
from agent.records import Assignment, ResultRecord
from agent.scheduler import Scheduler, phase_offset


class FakeClock:
    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.now = 0.0
        self.wall_at_zero = wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_at_zero + self.now


class Sink:
    def __init__(self) -> None:
        self.records: list[ResultRecord] = []

    def submit(self, record: ResultRecord) -> None:
        self.records.append(record)


def assignment(monitor_id: str, interval_s: int = 60) -> Assignment:
    return Assignment(
        CheckSpec(
            monitor_id=monitor_id, type="HTTP", target="http://x", interval_s=interval_s, timeout_s=5.0
        ),
        epoch=7,
    )


def make(runner: CheckRunner) -> tuple[Scheduler, FakeClock, Sink, AgentMetrics]:
    clock, sink, metrics = FakeClock(), Sink(), AgentMetrics()
    scheduler = Scheduler(lambda _type: runner, sink, clock, "eu-test", metrics, max_concurrency=10)
    return scheduler, clock, sink, metrics


async def up(check: CheckSpec) -> CheckResult:
    return CheckResult(Status.UP, 1.0)


async def settle() -> None:
    for _ in range(5):  # let started check tasks run to completion
        await asyncio.sleep(0)


def test_phase_offset_is_stable_and_spread() -> None:
    offsets = [phase_offset(f"mon_{i}", 60) for i in range(1000)]
    assert offsets[:3] == [phase_offset(f"mon_{i}", 60) for i in range(3)]
    buckets = [0] * 6
    for offset in offsets:
        assert 0 <= offset < 60
        buckets[int(offset // 10)] += 1
    assert all(120 <= count <= 220 for count in buckets), buckets


async def test_checks_spread_over_the_interval_and_run_once_each() -> None:
    scheduler, clock, sink, _ = make(up)
    scheduler.replace_all({f"mon_{i}": assignment(f"mon_{i}") for i in range(600)})
    per_second = []
    for _ in range(60):
        clock.now += 1
        per_second.append(scheduler.dispatch_due())
        await settle()
    assert sum(per_second) == 600
    assert max(per_second) <= 25  # about 10 per second, never a burst
    assert len({r.monitor_id for r in sink.records}) == 600


async def test_result_records_scheduled_and_started_time() -> None:
    release = asyncio.Event()

    async def gated(check: CheckSpec) -> CheckResult:
        await release.wait()
        return CheckResult(Status.UP, 1.0)

    scheduler, clock, sink, metrics = make(gated)
    scheduler.upsert(assignment("mon_a"))
    due_in = scheduler.seconds_until_due()
    assert due_in is not None
    clock.now += due_in + 0.25  # the loop woke 250 ms late
    assert scheduler.dispatch_due() == 1
    await settle()
    release.set()
    await settle()
    record = sink.records[0]
    assert record.started_at - record.scheduled_at == 0.25
    assert record.epoch == 7 and record.region == "eu-test" and record.result_id.startswith("chk_")
    assert re.fullmatch(r"chk_[a-z2-7]{36}", record.result_id)  # time, then 130 random bits (agent/ids.py)
    assert metrics.schedule_lag._sum.get() == 0.25


async def test_a_run_still_going_when_due_again_is_skipped_and_counted() -> None:
    release = asyncio.Event()

    async def stuck(check: CheckSpec) -> CheckResult:
        await release.wait()
        return CheckResult(Status.UP, 1.0)

    scheduler, clock, sink, metrics = make(stuck)
    scheduler.upsert(assignment("mon_a", interval_s=10))
    clock.now += 10
    assert scheduler.dispatch_due() == 1
    await settle()
    clock.now += 10
    assert scheduler.dispatch_due() == 0
    assert metrics.skipped.labels("HTTP")._value.get() == 1
    release.set()
    await settle()
    clock.now += 10
    assert scheduler.dispatch_due() == 1
    await settle()
    assert len(sink.records) == 2


async def test_removed_and_updated_monitors(monkeypatch: object) -> None:
    scheduler, clock, sink, metrics = make(up)
    scheduler.replace_all({"mon_a": assignment("mon_a", 10), "mon_b": assignment("mon_b", 10)})
    scheduler.remove("mon_b")
    scheduler.upsert(Assignment(assignment("mon_a", 10).spec, epoch=8))
    assert metrics.assignments._value.get() == 1
    clock.now += 10
    assert scheduler.dispatch_due() == 1  # mon_a once, with its new epoch; mon_b's entry is stale
    await settle()
    assert [(r.monitor_id, r.epoch) for r in sink.records] == [("mon_a", 8)]


async def test_a_crashing_check_becomes_an_internal_result() -> None:
    async def broken(check: CheckSpec) -> CheckResult:
        raise RuntimeError("boom")

    scheduler, clock, sink, _ = make(broken)
    scheduler.upsert(assignment("mon_a", 10))
    clock.now += 10
    scheduler.dispatch_due()
    await settle()
    assert sink.records[0].result.error_message == "agent error: RuntimeError: boom"


async def test_stop_and_drain_cancels_checks_past_the_deadline() -> None:
    async def never(check: CheckSpec) -> CheckResult:
        await asyncio.Event().wait()  # a check that only cancellation ends
        raise AssertionError("unreachable")

    scheduler, clock, sink, _ = make(never)
    scheduler.upsert(assignment("mon_a", 10))
    clock.now += 10
    scheduler.dispatch_due()
    await settle()
    scheduler.stop()
    clock.now += 10
    assert scheduler.dispatch_due() == 0
    assert await scheduler.drain(0.01) == 1
    assert sink.records == []
