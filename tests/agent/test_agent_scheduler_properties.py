"""The scheduler under random assignment changes and clock moves: one live schedule per assigned
monitor, at most one run per interval, never two runs of one monitor at once (issue 9)."""

from __future__ import annotations

import asyncio
from collections import Counter
from itertools import pairwise

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from test_agent_scheduler import FakeClock, Sink, make, settle, up
from test_agent_scheduler import assignment as assignment_every

from agent.checks.base import CheckResult, CheckSpec, Status
from agent.metrics import AgentMetrics
from agent.records import Assignment
from agent.scheduler import Scheduler

MONITORS = [f"mon_{i}" for i in range(4)]  # few, so removals and re-adds of one monitor are common
INTERVALS = [10, 15, 30]
EPOCHS = [1, 2]
# Due times go through the fake wall clock (~1.7e9 s), where a float is only good to ~1e-7 s.
EPSILON = 1e-6


def assignment(monitor_id: str, interval_s: int, epoch: int) -> Assignment:
    spec = CheckSpec(
        monitor_id=monitor_id, type="HTTP", target="http://x", interval_s=interval_s, timeout_s=5
    )
    return Assignment(spec, epoch)


async def test_a_monitor_removed_and_given_back_runs_in_one_series() -> None:
    """The report: paused, resumed and given a new interval; it ran twice per interval."""
    scheduler, clock, _, _ = make(up)
    scheduler.upsert(assignment_every("mon_a", 10))
    scheduler.remove("mon_a")
    scheduler.upsert(assignment_every("mon_a", 30))
    started: list[float] = []
    for _ in range(90):
        clock.now += 1
        started += [clock.now] * scheduler.dispatch_due()
        await settle()
    assert len(started) == 3 and started[1] - started[0] == started[2] - started[1] == 30, started


async def test_a_check_still_going_when_its_monitor_comes_back_makes_the_new_schedule_skip() -> None:
    release = asyncio.Event()

    async def stuck(check: CheckSpec) -> CheckResult:
        await release.wait()
        return CheckResult(Status.UP, 1.0)

    scheduler, clock, sink, metrics = make(stuck)
    scheduler.upsert(assignment_every("mon_a", 10))
    clock.now += 10
    assert scheduler.dispatch_due() == 1
    await settle()
    scheduler.remove("mon_a")
    scheduler.upsert(assignment_every("mon_a", 10))
    clock.now += 10
    assert scheduler.dispatch_due() == 0  # not a second check of mon_a beside the first
    assert metrics.skipped.labels("HTTP")._value.get() == 1
    release.set()
    await settle()
    clock.now += 10
    assert scheduler.dispatch_due() == 1
    await settle()
    assert len(sink.records) == 2


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # dispatch_due starts tasks, so it needs a running loop; one per example, closed in teardown.
        self.loop = asyncio.new_event_loop()
        self.clock, self.sink = FakeClock(), Sink()
        self.scheduler = Scheduler(
            lambda _type: self.check, self.sink, self.clock, "eu-test", AgentMetrics(), max_concurrency=1000
        )
        self.assigned: dict[str, Assignment] = {}  # what the scheduler was told to run
        # Start times of each monitor's checks since it was last (re)assigned or changed, with the
        # interval they ran under: the first run after a change may come any time after it.
        self.runs: dict[str, list[tuple[float, int, bool]]] = {}  # (started, interval, late)
        self.unassigned_runs: list[tuple[str, float]] = []
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[tuple[str, float]] = []
        self.slow = False
        self.late = False
        self.release = asyncio.Event()

    async def check(self, spec: CheckSpec) -> CheckResult:
        monitor_id = spec.monitor_id
        # Recorded here, not asserted: the scheduler turns a check's exception into a result.
        if self.in_flight[monitor_id]:
            self.overlaps.append((monitor_id, self.clock.now))
        if monitor_id in self.assigned:
            self.runs[monitor_id].append((self.clock.now, spec.interval_s, self.late))
        else:
            self.unassigned_runs.append((monitor_id, self.clock.now))
        self.in_flight[monitor_id] += 1
        try:
            if self.slow:
                await self.release.wait()
        finally:
            self.in_flight[monitor_id] -= 1
        return CheckResult(Status.UP, 1.0)

    def settle(self) -> None:
        async def yield_a_few_times() -> None:
            for _ in range(5):  # started checks reach their runner (and finish, unless slow)
                await asyncio.sleep(0)

        self.loop.run_until_complete(yield_a_few_times())

    def assign(self, new: Assignment) -> None:
        monitor_id = new.spec.monitor_id
        if self.assigned.get(monitor_id) != new:
            self.runs[monitor_id] = []
        self.assigned[monitor_id] = new

    # --- what the control plane and the clock do ---------------------------------------------------

    @rule(
        monitor_id=st.sampled_from(MONITORS),
        interval=st.sampled_from(INTERVALS),
        epoch=st.sampled_from(EPOCHS),
    )
    def upsert(self, monitor_id: str, interval: int, epoch: int) -> None:
        """A new assignment, a changed interval or epoch, or (by chance) the same one again."""
        new = assignment(monitor_id, interval, epoch)
        self.scheduler.upsert(new)
        self.assign(new)

    @precondition(lambda self: bool(self.assigned))
    @rule(data=st.data())
    def upsert_unchanged(self, data: st.DataObject) -> None:
        monitor_id = data.draw(st.sampled_from(sorted(self.assigned)))
        self.scheduler.upsert(self.assigned[monitor_id])

    @rule(monitor_id=st.sampled_from(MONITORS))
    def remove(self, monitor_id: str) -> None:
        self.scheduler.remove(monitor_id)
        self.assigned.pop(monitor_id, None)

    @rule(
        chosen=st.dictionaries(
            st.sampled_from(MONITORS), st.tuples(st.sampled_from(INTERVALS), st.sampled_from(EPOCHS))
        )
    )
    def replace_all(self, chosen: dict[str, tuple[int, int]]) -> None:
        snapshot = {m: assignment(m, interval, epoch) for m, (interval, epoch) in chosen.items()}
        self.scheduler.replace_all(snapshot)
        for monitor_id in set(self.assigned) - set(snapshot):
            del self.assigned[monitor_id]
        for new in snapshot.values():
            self.assign(new)

    @rule(seconds=st.one_of(st.sampled_from([0.0, 1.0, 10.0]), st.floats(0.0, 45.0)))
    def time_passes(self, seconds: float) -> None:
        """As `Scheduler.run` sees it: woken at every due time on the way, then at the end."""
        until = self.clock.now + seconds
        for _ in range(1000):
            delay = self.scheduler.seconds_until_due()
            if delay is None or self.clock.now + delay > until:
                break
            self.clock.now += delay
            self.dispatch()
        else:
            raise AssertionError("the scheduler keeps coming due without time passing")
        self.clock.now = until
        self.dispatch()

    @rule(seconds=st.floats(0.0, 45.0))
    def loop_is_starved(self, seconds: float) -> None:
        """The process was suspended or the loop busy: one wake-up, however many due times passed.

        What starts now starts late, and the next run keeps the monitor's phase rather than a full
        interval after this one (no burst, no drift), so those runs do not count as on time.
        """
        self.clock.now += seconds
        self.late = True
        self.dispatch()
        self.late = False

    def dispatch(self) -> None:
        async def dispatch_due() -> None:
            self.scheduler.dispatch_due()

        self.loop.run_until_complete(dispatch_due())
        self.settle()

    @rule(slow=st.booleans())
    def checks_become(self, slow: bool) -> None:
        """Slow checks hang until released, so later due times find them still running."""
        self.slow = slow

    @rule()
    def running_checks_finish(self) -> None:
        self.release.set()
        self.release = asyncio.Event()
        self.settle()

    # --- what must hold after every step -----------------------------------------------------------

    @invariant()
    def each_assigned_monitor_has_exactly_one_live_schedule(self) -> None:
        # The heap and slots are private, but "live" is the scheduler's own test of an entry: its
        # monitor has a slot of the entry's generation. A second live entry is a second series.
        assert self.scheduler.monitor_ids() == set(self.assigned)
        slots = self.scheduler._slots
        live: dict[str, list[float]] = {}
        for due, _, monitor_id, generation in self.scheduler._heap:
            slot = slots.get(monitor_id)
            if slot is not None and slot.generation == generation:
                live.setdefault(monitor_id, []).append(due)
        assert sorted(live) == sorted(self.assigned), live
        for monitor_id, dues in live.items():
            assert len(dues) == 1, (monitor_id, dues)
            interval = self.assigned[monitor_id].spec.interval_s
            assert self.clock.now - EPSILON <= dues[0] <= self.clock.now + interval + EPSILON, (
                monitor_id,
                dues[0],
                self.clock.now,
            )

    @invariant()
    def each_monitor_runs_at_most_once_per_interval(self) -> None:
        for monitor_id, runs in self.runs.items():
            for (earlier, _, late), (later, interval, _) in pairwise(runs):
                assert late or later - earlier >= interval - EPSILON, (monitor_id, runs)

    @invariant()
    def removed_monitors_do_not_run_and_no_monitor_runs_twice_at_once(self) -> None:
        assert self.unassigned_runs == []
        assert self.overlaps == []

    def teardown(self) -> None:
        self.release.set()
        self.settle()
        self.scheduler.stop()
        self.loop.run_until_complete(self.scheduler.drain(1.0))
        self.loop.close()


SchedulerMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSchedulerKeepsOneSchedulePerMonitor = SchedulerMachine.TestCase
