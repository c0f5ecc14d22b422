"""Issue 16 benchmark: 200 agents connected at once serving 100,000 monitors, against one real
`traxo api` on PostgreSQL: how long until every agent has its assignments, then the control
plane's steady-state CPU and memory while every monitor's results arrive at its interval.

Builds a fresh database (traxo_bench_agents_at_scale, `traxo migrate`): an ENTERPRISE organization
(the organizations service), one agent token per region (`traxo agents create-token`), and
--monitors HTTP monitors COPYed in, spread over --regions regions (monitor i in region i mod R).
Then `traxo api` (workers included, as deployed by default: the incident queue and rollup fold
take every result) and --agents simulated agents in this one process, each on a gRPC channel of
its own speaking the real protocol (protos/traxo/agent/v1) as traxo-agent does: Register, a
RenewLease every third of the lease, WatchAssignments (a snapshot, then changes applied), and
StreamResults: each assigned monitor's result at its interval (first at a random offset in it),
batches of up to 500 every half second, at most 8 unacknowledged, what is unacknowledged kept in
the agent's spool (memory here) and sent again on a new stream, as agent/results.py does.

Measured: the time from the first registration to the last assignment change any agent heard,
once every monitor is held by exactly one agent and no change came for 3 s; then, after --settle seconds, over a --seconds window, the
API process's CPU (utime + stime from /proc/PID/stat, % of one core), its RSS (VmRSS, sampled each
second), PostgreSQL's CPU, this process's own CPU (the simulated agents share the machine), and
the results acknowledged per second against what the monitors' intervals ask for.

    .venv/bin/python bench/agents_at_scale.py                 # 200 agents, 100,000 monitors, 60 s
    .venv/bin/python bench/agents_at_scale.py --agents 10 --monitors 2000 --seconds 10   # smoke

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth). Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import psycopg
from bench_support import (
    BIN,
    COPY_MONITORS,
    POSTGRES,
    ROOT,
    free_port,
    psql_admin,
    start_api,
    stop,
    traxo,
)
from google.protobuf.timestamp_pb2 import Timestamp

sys.path.insert(0, str(ROOT))

from agent_soak import cpu_seconds, create_organization, postgres_cpu_seconds, process_tree, rss_kb

from agent.ids import new_result_id
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

DATABASE = "traxo_bench_agents_at_scale"
DSN = f"{POSTGRES}/{DATABASE}"
BATCH_SIZE = 500  # the agent's defaults (agent/results.py)
WINDOW = 8
FLUSH_SECONDS = 0.5
QUIET_SECONDS = 3.0  # assignments are settled once no agent heard a change for this long
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # A connection of its own, as each agent process has (channels of one process with the same
    # target and options share one connection otherwise); traxo-agent sets it too.
    ("grpc.use_local_subchannel_pool", 1),
]
REGISTER_RETRIES: Counter[str] = Counter()  # Register calls tried again, by the status they met
RENEW_SECONDS: list[float] = []  # each RenewLease's round trip, all agents


def _quantiles(seconds: list[float]) -> str:
    if not seconds:
        return "none"
    ordered = sorted(seconds)
    at = [ordered[min(len(ordered) - 1, int(len(ordered) * q))] for q in (0.5, 0.99)]
    return f"{1000 * at[0]:.0f} / {1000 * at[1]:.0f} / {1000 * ordered[-1]:.0f} ms ({len(ordered):,} calls)"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def region_name(i: int) -> str:
    return f"bench-{i}"


def stamp(seconds: float) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


@dataclass
class Tally:
    """What every simulated agent adds to, read by the bench between phases."""

    produced: int = 0
    sent: int = 0
    acked: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stream_failures: Counter[str] = field(default_factory=Counter)
    acked_ids: list[str] | None = None  # kept when a bench verifies them against the database

    def spooled(self, agents: list[SimulatedAgent]) -> int:
        return sum(len(agent.spool) + agent.unacknowledged for agent in agents)


class SimulatedAgent:
    """One agent of the real protocol, without checks: each assignment's result is made up at its
    interval (or, given `rate`, results at that rate over its assignments, for overload runs)."""

    def __init__(self, target: str, token: str, region: str, name: str, tally: Tally) -> None:
        self.target, self.region, self.name, self.tally = target, region, name, tally
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.agent_id = ""
        self.assignments: dict[str, tuple[int, int, int]] = {}  # monitor -> (epoch, interval, generation)
        self.snapshot_at: float | None = None  # monotonic time of the first snapshot
        self.changed_at = 0.0  # monotonic time of the last snapshot or change
        self.spool: deque[pb.CheckResult] = deque()
        self.in_flight: dict[int, list[pb.CheckResult]] = {}
        self.rate: float | None = None  # results/s over the assignments instead of their intervals
        self.spool_cap: int | None = None  # with a rate: make none while the spool holds this many
        self._due: list[tuple[float, str, int]] = []  # (wall time due, monitor, generation)
        self._generation = 0
        self._cursor = 0
        self._lease_s = 10.0
        self._by_results = False  # the server renews the lease of every batch it receives
        self.acks = 0
        self._registering = asyncio.Lock()
        self._registered_at = 0.0

    @property
    def unacknowledged(self) -> int:
        return sum(len(results) for results in self.in_flight.values())

    async def _register(self, stub: AgentServiceStub) -> pb.RegisterResponse:
        """As the agent does: a refused or cut-off Register is tried again after a pause (200 at once
        can find the server busy), and the attempts are counted."""
        for attempt in range(30):
            try:
                return await stub.Register(
                    pb.RegisterRequest(
                        name=self.name, region=self.region, version="bench", capabilities=["http"]
                    ),
                    metadata=self.metadata,
                )
            except grpc.aio.AioRpcError as exc:
                REGISTER_RETRIES[exc.code().name] += 1
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
        raise RuntimeError(f"{self.name}: Register failed 30 times")

    async def run(self, stop: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS) as channel:
            stub = AgentServiceStub(channel)
            registered = await self._register(stub)
            self.agent_id = registered.agent_id
            self._registered_at = time.monotonic()
            self._lease_s = registered.lease_duration.ToTimedelta().total_seconds()
            self._by_results = registered.results_renew_lease
            tasks = [
                asyncio.create_task(self._watch(stub, stop)),
                asyncio.create_task(self._renew(stub, stop)),
                asyncio.create_task(self._produce(stop)),
                asyncio.create_task(self._send(stub, stop)),
            ]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _register_again(self, stub: AgentServiceStub, why: str) -> None:
        """As the agent's new session after a lapsed lease: once, however many streams said so."""
        async with self._registering:
            if time.monotonic() - self._registered_at < 2:
                return
            self.tally.stream_failures[f"{why}, registered again"] += 1
            self.agent_id = (await self._register(stub)).agent_id
            self._registered_at = time.monotonic()

    async def _renew(self, stub: AgentServiceStub, stop: asyncio.Event) -> None:
        acks = self.acks
        while not stop.is_set():
            await asyncio.sleep(self._lease_s / 3)
            if self._by_results and self.acks != acks:  # as the agent: its results renewed it
                acks = self.acks
                continue
            started = time.monotonic()
            try:
                renewed = await stub.RenewLease(
                    pb.RenewLeaseRequest(agent_id=self.agent_id), metadata=self.metadata
                )
            except grpc.aio.AioRpcError as exc:
                self.tally.stream_failures[f"renew {exc.code().name}"] += 1
                continue
            RENEW_SECONDS.append(time.monotonic() - started)
            if not renewed.held:  # judged lapsed: register again, as the agent does
                await self._register_again(stub, "lease lapsed")

    async def _watch(self, stub: AgentServiceStub, stop: asyncio.Event) -> None:
        known = 0
        while not stop.is_set():
            call = stub.WatchAssignments(
                pb.WatchAssignmentsRequest(agent_id=self.agent_id, known_version=known),
                metadata=self.metadata,
            )
            try:
                async for update in call:
                    known = self._apply(update) or known
            except grpc.aio.AioRpcError as exc:
                self.tally.stream_failures[f"watch {exc.code().name}"] += 1
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # lapsed: "register first"
                    await self._register_again(stub, "watch refused")
                await asyncio.sleep(1)

    def _apply(self, update: pb.AssignmentUpdate) -> int:
        kind = update.WhichOneof("update")
        self.changed_at = time.monotonic()
        if kind == "snapshot":
            self.assignments.clear()
            for assignment in update.snapshot.assignments:
                self._assign(assignment)
            if self.snapshot_at is None:
                self.snapshot_at = time.monotonic()
            return int(update.snapshot.version)
        if kind == "change":
            change = update.change
            if change.kind == pb.Change.REMOVE:
                self.assignments.pop(change.assignment.monitor_id, None)
            else:
                self._assign(change.assignment)
            return int(change.version)
        return int(update.resumed.version)

    def _assign(self, assignment: pb.Assignment) -> None:
        self._generation += 1
        interval = max(1, assignment.interval_seconds)
        self.assignments[assignment.monitor_id] = (assignment.epoch, interval, self._generation)
        due = time.time() + random.uniform(0, interval)
        heapq.heappush(self._due, (due, assignment.monitor_id, self._generation))

    def _result(self, monitor_id: str, epoch: int, scheduled: float, now: float) -> pb.CheckResult:
        return pb.CheckResult(
            result_id=new_result_id(), monitor_id=monitor_id, epoch=epoch, region=self.region,
            scheduled_at=stamp(scheduled), started_at=stamp(now - 0.04), finished_at=stamp(now),
            status=pb.UP, response_time_ms=40.0, status_code=200, dns_ms=1.0, tcp_ms=2.0, ttfb_ms=30.0,
            download_ms=2.0, total_ms=40.0, size_bytes=512, type="HTTP",
        )  # fmt: skip

    async def _produce(self, stop: asyncio.Event) -> None:
        owed = 0.0
        while not stop.is_set():
            await asyncio.sleep(FLUSH_SECONDS)
            now = time.time()
            if self.rate is not None:  # overload runs: a rate, round-robin over the assignments
                owed += self.rate * FLUSH_SECONDS
                if self.spool_cap is not None and len(self.spool) >= self.spool_cap:
                    owed = 0.0
                monitors = list(self.assignments.items())
                while owed >= 1 and monitors:
                    self._cursor = (self._cursor + 1) % len(monitors)
                    monitor_id, (epoch, _, _) = monitors[self._cursor]
                    self.spool.append(self._result(monitor_id, epoch, now, now))
                    owed -= 1
                    self.tally.produced += 1
                continue
            while self._due and self._due[0][0] <= now:
                due, monitor_id, generation = heapq.heappop(self._due)
                held = self.assignments.get(monitor_id)
                if held is None or held[2] != generation:
                    continue  # moved away or re-granted since (a newer entry is in the heap)
                epoch, interval, _ = held
                self.spool.append(self._result(monitor_id, epoch, due, now))
                self.tally.produced += 1
                heapq.heappush(self._due, (due + interval, monitor_id, generation))

    async def _send(self, stub: AgentServiceStub, stop: asyncio.Event) -> None:
        while not stop.is_set():
            call = stub.StreamResults(metadata=self.metadata)
            window = asyncio.Semaphore(WINDOW)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._write(call, window))
                    group.create_task(self._read(call, window))
            except* Exception as failures:  # the stream ended: anything unacknowledged is sent again
                lapsed = False
                for exc in failures.exceptions:
                    what = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                    self.tally.stream_failures[f"results {what}"] += 1
                    lapsed |= what == "FAILED_PRECONDITION"  # the lease lapsed
                if lapsed:
                    await self._register_again(stub, "results refused")
            finally:
                call.cancel()
            for sequence in sorted(self.in_flight, reverse=True):  # unacknowledged: sent again, in order
                self.spool.extendleft(reversed(self.in_flight.pop(sequence)))
            await asyncio.sleep(1)

    async def _write(self, call: grpc.aio.StreamStreamCall, window: asyncio.Semaphore) -> None:
        sequence = 0
        while True:
            if not self.spool:
                await asyncio.sleep(0.05)
                continue
            await window.acquire()
            results = [self.spool.popleft() for _ in range(min(BATCH_SIZE, len(self.spool)))]
            sequence += 1
            self.in_flight[sequence] = results
            await call.write(pb.ResultBatch(agent_id=self.agent_id, sequence=sequence, results=results))
            self.tally.sent += len(results)

    async def _read(self, call: grpc.aio.StreamStreamCall, window: asyncio.Semaphore) -> None:
        while True:
            ack = await call.read()
            if not isinstance(ack, pb.ResultAck):
                raise ConnectionError("the control plane closed the results stream")
            results = self.in_flight.pop(ack.sequence, [])
            window.release()
            self.acks += 1
            rejected = {r.result_id for r in ack.rejected}
            for r in ack.rejected:
                self.tally.rejected[pb.RejectedResult.Reason.Name(r.reason)] += 1
            self.tally.acked += len(results) - len(rejected)
            if self.tally.acked_ids is not None:
                self.tally.acked_ids.extend(r.result_id for r in results if r.result_id not in rejected)


class Fleet:
    """The simulated agents, on an event loop in a thread of their own (the bench's main thread
    samples /proc meanwhile)."""

    def __init__(self, agents: list[SimulatedAgent]) -> None:
        self.agents = agents
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._stop = asyncio.Event()
        self._ready.set()
        self.loop.run_until_complete(self._all())

    async def _all(self) -> None:
        assert self._stop is not None
        await asyncio.gather(*(agent.run(self._stop) for agent in self.agents))

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=30)


def assignment_state(agents: list[SimulatedAgent]) -> tuple[int, int, int, float]:
    """(agents that had a snapshot, monitors held by some agent, assignments summed over agents,
    the monotonic time of the last change any agent heard)."""
    held: set[str] = set()
    total = 0
    for agent in list(agents):
        ids = list(agent.assignments)
        held.update(ids)
        total += len(ids)
    changed_at = max(agent.changed_at for agent in agents)
    return sum(agent.snapshot_at is not None for agent in agents), len(held), total, changed_at


# ---------------------------------------------------------------- set-up


def build_database(env: dict[str, str], monitors: int, regions: int, interval: int) -> dict[str, str]:
    """A fresh database with the organization, one token per region and the monitors; the tokens."""
    psql_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    psql_admin(f'CREATE DATABASE "{DATABASE}"')
    traxo(env, "migrate")
    traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench")
    tokens = {
        region_name(r): traxo(env, "agents", "create-token", "--region", region_name(r))
        .strip()
        .splitlines()[-1]
        for r in range(regions)
    }
    org_id = asyncio.run(create_organization(DSN))
    now = datetime.now(UTC)
    with psycopg.connect(DSN) as conn, conn.cursor() as cur:
        with cur.copy(COPY_MONITORS) as copy:
            for i in range(monitors):
                copy.write_row(
                    (f"mon_scale{i:07d}", org_id, f"scale {i}", "HTTP", "http://127.0.0.1:9/", interval, 10, "GET",
                     json.dumps([region_name(i % regions)]), "{}", True, now, now)
                )  # fmt: skip
        conn.commit()
    return tokens


def bench_env(regions: int) -> dict[str, str]:
    names = ",".join(region_name(r) for r in range(regions))
    return {
        **os.environ,
        "TRAXO_DATABASE_URL": DSN,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_REGIONS": names,
        "TRAXO_DEFAULT_REGIONS": names,
    }


def start_control_plane(
    env: dict[str, str], *options: str, workers: bool = True
) -> tuple[subprocess.Popen[bytes], int, int]:
    """`traxo api` with its gRPC (and its workers unless told not to); (process, HTTP, gRPC)."""
    port, grpc_port = free_port(), free_port()
    api = start_api(env, port, "--grpc-port", str(grpc_port), *options, workers=workers, within=60)
    return api, port, grpc_port


class Sampler:
    """RSS of a process tree every second, in a thread, while a window lasts."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self._started, self.rss_kb()))
            self._stop.wait(1)

    def rss_kb(self) -> int:
        return sum(rss_kb(pid) for pid in process_tree(self.pid))

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self.thread.join()
        return self.samples


def tree_cpu(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--monitors", type=int, default=100_000)
    parser.add_argument("--regions", type=int, default=10, help="agents and monitors spread over these")
    parser.add_argument("--interval", type=int, default=60, help="every monitor's interval, s (15-3600)")
    parser.add_argument("--seconds", type=float, default=60, help="the measured window")
    parser.add_argument("--settle", type=float, default=10, help="seconds between assigned and measuring")
    parser.add_argument("--assign-within", type=float, default=600, help="give up waiting for assignments")
    parser.add_argument(
        "--separate-workers",
        action="store_true",
        help="`traxo api --no-workers` and a `traxo worker` beside it (the chart's workers.separate); both measured",
    )
    args = parser.parse_args()
    if not (1 <= args.regions <= args.agents and 15 <= args.interval <= 3600):
        parser.error("--regions must be 1..--agents and --interval 15-3600")
    env = bench_env(args.regions)
    log(f"building {DATABASE}: {args.monitors:,} monitors in {args.regions} regions")
    tokens = build_database(env, args.monitors, args.regions, args.interval)
    api, _, grpc_port = start_control_plane(env, workers=not args.separate_workers)
    worker = subprocess.Popen([str(BIN / "traxo"), "worker"], env=env) if args.separate_workers else None
    tally = Tally()
    agents = [
        SimulatedAgent(f"127.0.0.1:{grpc_port}", tokens[region_name(i % args.regions)],
                       region_name(i % args.regions), f"scale-agent-{i:03d}", tally)
        for i in range(args.agents)
    ]  # fmt: skip
    fleet: Fleet | None = None
    try:
        cpu_idle = tree_cpu(api.pid)
        started = time.monotonic()
        fleet = Fleet(agents)
        log(f"{args.agents} agents registering against 127.0.0.1:{grpc_port}")
        while True:  # assigned: every monitor held once, and no change heard for QUIET_SECONDS
            snapshots, held, total, changed_at = assignment_state(agents)
            quiet = time.monotonic() - changed_at >= QUIET_SECONDS
            if snapshots == args.agents and held == total == args.monitors and quiet:
                break
            if time.monotonic() - started > args.assign_within:
                raise SystemExit(
                    f"not assigned within {args.assign_within:g} s: {snapshots} snapshots, "
                    f"{held:,} monitors held, {total:,} assignments; RenewLease {_quantiles(RENEW_SECONDS)}; "
                    f"{dict(fleet.agents[0].tally.stream_failures) if fleet.agents else {}}"
                )
            time.sleep(0.2)
        assigned_in = changed_at - started
        assign_cpu = tree_cpu(api.pid) - cpu_idle
        log(f"every monitor held by exactly one agent after {assigned_in:.1f} s ({assign_cpu:.1f} CPU s)")
        time.sleep(args.settle)
        sampler = Sampler(api.pid)
        worker_sampler = Sampler(worker.pid) if worker is not None else None
        worker0 = tree_cpu(worker.pid) if worker is not None else 0.0
        cpu0, pg0, own0, acked0, produced0 = (
            tree_cpu(api.pid),
            postgres_cpu_seconds(),
            own_cpu(),
            tally.acked,
            tally.produced,
        )
        window_started = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - window_started
        cpu1, pg1, own1, acked1, produced1 = (
            tree_cpu(api.pid),
            postgres_cpu_seconds(),
            own_cpu(),
            tally.acked,
            tally.produced,
        )
        samples = sampler.stop()
        worker_used = (tree_cpu(worker.pid) - worker0) if worker is not None else 0.0
        worker_rss = [kb / 1024 for _, kb in worker_sampler.stop()] if worker_sampler is not None else []
        pg_used = sum(value - pg0.get(pid, 0.0) for pid, value in pg1.items())
        rss = [kb / 1024 for _, kb in samples]
        expected = args.monitors / args.interval
        rows = [
            ("agents / monitors / regions", f"{args.agents} / {args.monitors:,} / {args.regions}"),
            ("all assigned (first Register to the last change heard)", f"{assigned_in:.1f} s"),
            ("control plane CPU until settled (the quiet 3 s too)", f"{assign_cpu:.1f} CPU s"),
            (f"control plane CPU, steady ({elapsed:.0f} s window)", f"{100 * (cpu1 - cpu0) / elapsed:.1f}% of a core"),
            ("control plane RSS (mean / max)", f"{sum(rss) / len(rss):.0f} / {max(rss):.0f} MB"),
            *(
                [
                    ("`traxo worker` CPU, steady", f"{100 * worker_used / elapsed:.1f}% of a core"),
                    ("`traxo worker` RSS (mean / max)",
                     f"{sum(worker_rss) / len(worker_rss):.0f} / {max(worker_rss):.0f} MB"),
                ]
                if worker_rss
                else []
            ),
            ("PostgreSQL CPU, steady", f"{100 * pg_used / elapsed:.1f}% of a core"),
            ("this process (the simulated agents)", f"{100 * (own1 - own0) / elapsed:.1f}% of a core"),
            ("results made / acknowledged per s", f"{(produced1 - produced0) / elapsed:,.0f} / "
             f"{(acked1 - acked0) / elapsed:,.0f} (intervals ask {expected:,.0f})"),
            ("unacknowledged in the agents' spools at the end", f"{tally.spooled(agents):,}"),
            ("rejected results (all run)", ", ".join(f"{k} {v}" for k, v in tally.rejected.items()) or "none"),
            ("stream failures (all run)", ", ".join(f"{k} {v}" for k, v in tally.stream_failures.items()) or "none"),
            ("Register calls tried again", ", ".join(f"{k} {v}" for k, v in REGISTER_RETRIES.items()) or "none"),
            ("RenewLease round trip p50 / p99 / max (all run)", _quantiles(RENEW_SECONDS)),
        ]  # fmt: skip
        width = max(len(name) for name, _ in rows)
        print(f"\n| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|---|")
        for name, value in rows:
            print(f"| {name:<{width}} | {value} |")
    finally:
        if fleet is not None:
            fleet.close()
        stop(api)
        if worker is not None:
            stop(worker)


if __name__ == "__main__":
    main()
