"""One scheduler for every assigned monitor: a heap of due times, not a sleeping task per monitor.

Each monitor runs at a stable phase within its interval (a hash of its id, aligned to the wall
clock), so checks spread evenly and an agent restart or a second agent keeps the same rhythm. A run
that comes due while the previous one is still going is skipped and counted.

A heap entry is live only while its monitor's slot carries the entry's generation. Generations come
from one counter for the whole scheduler and are never reused, so an entry left behind by an update
or a removal stays dead even when the monitor comes back (issue 9: a re-added monitor ran in two
series until the agent restarted).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from agent.checks.base import CheckResult, CheckRunner, CheckSpec, ErrorKind, Status
from agent.clock import Clock
from agent.ids import new_result_id
from agent.metrics import AgentMetrics
from agent.records import Assignment, ResultRecord

log = logging.getLogger(__name__)

# A check that ignores its own timeout is cut off this much later, so one bug cannot pin a slot.
_TIMEOUT_GRACE_S = 5.0


class ResultSink(Protocol):
    def submit(self, record: ResultRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class _Slot:
    assignment: Assignment
    generation: int


def phase_offset(monitor_id: str, interval_s: float) -> float:
    """Where in its interval a monitor runs: stable across restarts and agents, spread uniformly."""
    digest = hashlib.blake2b(monitor_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval_s


class Scheduler:
    def __init__(
        self,
        runner_for: Callable[[str], CheckRunner],
        sink: ResultSink,
        clock: Clock,
        region: str,
        metrics: AgentMetrics,
        max_concurrency: int = 1000,
    ) -> None:
        self._runner_for = runner_for
        self._sink = sink
        self._clock = clock
        self._region = region
        self._metrics = metrics
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # (due monotonic, tiebreak, monitor, generation)
        self._counter = 0
        self._generations = 0
        self._running: set[asyncio.Task[None]] = set()
        # Keyed by monitor, not kept in its slot: a check still going when its monitor is removed and
        # given back must still make the new schedule skip, or one monitor runs twice at once.
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._stopped = False

    # --- assignments -------------------------------------------------------------------------------

    def replace_all(self, assignments: Mapping[str, Assignment]) -> None:
        for monitor_id in [m for m in self._slots if m not in assignments]:
            self.remove(monitor_id)
        for assignment in assignments.values():
            self.upsert(assignment)

    def upsert(self, assignment: Assignment) -> None:
        monitor_id = assignment.spec.monitor_id
        slot = self._slots.get(monitor_id)
        if slot is not None and slot.assignment == assignment:
            return  # unchanged: keep its place in the heap
        self._generations += 1
        generation = self._generations
        self._slots[monitor_id] = _Slot(assignment, generation)
        self._push(self._first_due(assignment.spec), monitor_id, generation)
        self._metrics.assignments.set(len(self._slots))

    def remove(self, monitor_id: str) -> None:
        # Its heap entries go stale for good and are dropped when they surface; a running check
        # finishes (and still counts as running if the monitor comes back meanwhile).
        if self._slots.pop(monitor_id, None) is not None:
            self._metrics.assignments.set(len(self._slots))

    def monitor_ids(self) -> set[str]:
        return set(self._slots)

    # --- the loop ----------------------------------------------------------------------------------

    def seconds_until_due(self) -> float | None:
        self._drop_stale()
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self._clock.monotonic())

    def dispatch_due(self) -> int:
        """Starts every run that is due now; returns how many started."""
        now = self._clock.monotonic()
        started = 0
        while self._heap and self._heap[0][0] <= now and not self._stopped:
            due, _, monitor_id, generation = heapq.heappop(self._heap)
            slot = self._slots.get(monitor_id)
            if slot is None or slot.generation != generation:
                continue
            spec = slot.assignment.spec
            next_due = due + spec.interval_s
            if next_due <= now:  # we were suspended or starved: resume the rhythm, don't burst
                next_due += math.ceil((now - next_due) / spec.interval_s) * spec.interval_s
                if next_due <= now:
                    next_due += spec.interval_s
            self._push(next_due, monitor_id, generation)
            running = self._in_flight.get(monitor_id)
            if running is not None and not running.done():
                self._metrics.skipped.labels(spec.type).inc()
                continue
            task = asyncio.get_running_loop().create_task(self._execute(slot.assignment, due))
            self._in_flight[monitor_id] = task
            self._running.add(task)
            task.add_done_callback(partial(self._finished, monitor_id))
            started += 1
        return started

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            self.dispatch_due()
            delay = self.seconds_until_due()
            self._wakeup.clear()
            timer = loop.call_later(delay, self._wakeup.set) if delay is not None else None
            await self._wakeup.wait()
            if timer is not None:
                timer.cancel()

    def stop(self) -> None:
        self._stopped = True
        self._wakeup.set()

    async def drain(self, deadline_s: float) -> int:
        """Waits for running checks up to the deadline, then cancels the rest; returns how many."""
        if not self._running:
            return 0
        _, pending = await asyncio.wait(set(self._running), timeout=deadline_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    # --- internals ---------------------------------------------------------------------------------

    def _first_due(self, spec: CheckSpec) -> float:
        wall, mono = self._clock.wall(), self._clock.monotonic()
        offset = phase_offset(spec.monitor_id, spec.interval_s)
        due_wall = math.ceil((wall - offset) / spec.interval_s) * spec.interval_s + offset
        return mono + (due_wall - wall)

    def _push(self, due: float, monitor_id: str, generation: int) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (due, self._counter, monitor_id, generation))
        if self._heap[0][2] == monitor_id:
            self._wakeup.set()  # an earlier deadline than the loop is sleeping towards

    def _finished(self, monitor_id: str, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._in_flight.get(monitor_id) is task:
            del self._in_flight[monitor_id]

    def _drop_stale(self) -> None:
        while self._heap:
            _, _, monitor_id, generation = self._heap[0]
            slot = self._slots.get(monitor_id)
            if slot is not None and slot.generation == generation:
                return
            heapq.heappop(self._heap)

    async def _execute(self, assignment: Assignment, due: float) -> None:
        spec = assignment.spec
        async with self._semaphore:
            started_mono, started_wall = self._clock.monotonic(), self._clock.wall()
            lag = max(0.0, started_mono - due)
            self._metrics.schedule_lag.observe(lag)
            result = await self._run_check(spec)
            finished_mono, finished_wall = self._clock.monotonic(), self._clock.wall()
        self._metrics.checks.labels(spec.type, result.status.value).inc()
        self._metrics.check_duration.labels(spec.type).observe(finished_mono - started_mono)
        self._sink.submit(
            ResultRecord(
                result_id=new_result_id(),
                monitor_id=spec.monitor_id,
                monitor_type=spec.type,
                epoch=assignment.epoch,
                region=self._region,
                scheduled_at=started_wall - lag,
                started_at=started_wall,
                finished_at=finished_wall,
                result=result,
            )
        )

    async def _run_check(self, spec: CheckSpec) -> CheckResult:
        try:
            async with asyncio.timeout(spec.timeout_s + _TIMEOUT_GRACE_S):
                return await self._runner_for(spec.type)(spec)
        except TimeoutError:
            return CheckResult(
                Status.DOWN,
                spec.timeout_s * 1000,
                error_kind=ErrorKind.TIMEOUT,
                error_message=f"check did not finish within its {spec.timeout_s:g}s timeout",
            )
        except Exception as exc:  # a check bug becomes a result, never a dead scheduler
            log.exception("%s check of %s crashed", spec.type, spec.monitor_id)
            return CheckResult(
                Status.DOWN,
                0.0,
                error_kind=ErrorKind.INTERNAL,
                error_message=f"agent error: {type(exc).__name__}: {exc}",
            )
