"""Issue 5, benchmark part 2: 50,000 HTTP monitors at a 60 s interval on one agent for 5 minutes.

Real processes throughout: a fresh PostgreSQL database (`traxo migrate`, `traxo users create`, an
ENTERPRISE organization made by the organizations service, `traxo agents create-token`), 50,000
HTTP monitors COPied in *before* `traxo api --no-workers` starts (so the coordinator's liveness pass
assigns them all to the agent once it registers), Debian's nginx on a free loopback port serving a
small static file (bench/agent_throughput.py's), and one `traxo-agent` process with --metrics-port.

Once the agent's assignments gauge reads 50,000, a settle period passes and the measured window
starts. Every few seconds the script scrapes the agent's /metrics and reads VmRSS of the agent and
every descendant (the agent probes Chromium at start). At the end of the window it sends SIGTERM
(the agent stops scheduling, flushes and waits for acks), then compares the agent's checks, sent
and acked counters, and the rows left in its spool file, with the rows in check_results.

    .venv/bin/python bench/agent_soak.py                  # 50,000 monitors, 300 s window
    .venv/bin/python bench/agent_soak.py --monitors 5000 --seconds 60   # a quick try

Targets (issue 5): p99 schedule lag < 250 ms, no skipped runs, agent RSS < 400 MB, every result
acknowledged. Needs nginx (see bench/README.md) and PostgreSQL at 127.0.0.1:5432 (user postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from agent_throughput import free_port, nginx  # noqa: E402

BIN = ROOT / ".venv" / "bin"
SERVER = "postgresql://postgres@127.0.0.1:5432"
DB = "traxo_bench_soak"
REGION = "bench-soak"
TARGETS = {"p99_lag_s": 0.25, "rss_mb": 400.0}
TOTAL_BUDGET_S = 11.5 * 60  # the whole run, set-up and clean-up included, stays under 12 minutes


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- /proc -----------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children, tree, todo = _children_map(), [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of every postgres process on the machine (other benchmarks' backends included)."""
    used = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    used[int(entry)] = cpu_seconds(int(entry))
            except OSError:
                continue
    return used


def time_wait_sockets() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("tw") + 1])
    return 0


# --- the agent's metrics ---------------------------------------------------------------------------


@dataclass
class Scrape:
    at: float
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def buckets(self, name: str) -> list[tuple[float, float]]:
        pairs = [(float(dict(ls)["le"]), v) for (n, ls), v in self.samples.items() if n == f"{name}_bucket"]
        return sorted(pairs)


def scrape(url: str, timeout_s: float = 10) -> Scrape:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(time.monotonic(), samples)


def quantile(buckets: list[tuple[float, float]], q: float) -> tuple[float, float, float]:
    """(lower bound, upper bound, linear estimate) of the q-quantile from cumulative buckets.

    The estimate interpolates inside the bucket as Prometheus' histogram_quantile does; the
    bounds are what the histogram really knows.
    """
    total = buckets[-1][1]
    if total == 0:
        return (0.0, 0.0, 0.0)
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return (lower, upper, lower)
            inside = cumulative - below
            fraction = (rank - below) / inside if inside else 1.0
            return (lower, upper, lower + (upper - lower) * fraction)
        lower, below = upper, cumulative
    return (lower, float("inf"), lower)


def bucket_delta(end: Scrape, start: Scrape, name: str) -> list[tuple[float, float]]:
    before = dict(start.buckets(name))
    return [(le, v - before.get(le, 0.0)) for le, v in end.buckets(name)]


# --- sampling --------------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    agent_rss_kb: int
    tree_rss_kb: int
    tree_size: int
    agent_cpu_s: float
    api_cpu_s: float
    nginx_cpu_s: float
    postgres_cpu_s: dict[int, float]
    load1: float
    time_wait: int  # TCP sockets in TIME_WAIT, machine-wide (/proc/net/sockstat)
    metrics: Scrape | None


@dataclass
class Sampler:
    agent_pid: int
    api_pid: int
    nginx_pid: int
    metrics_url: str
    period_s: float = 3.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def take(self, attempts: int = 1) -> Sample:
        """One sample; `attempts` > 1 retries the scrape (a busy agent may answer late)."""
        tree = process_tree(self.agent_pid)
        metrics: Scrape | None = None
        for _ in range(attempts):
            try:
                metrics = scrape(self.metrics_url)
                break
            except OSError:
                continue
        sample = Sample(
            at=time.monotonic(),
            agent_rss_kb=rss_kb(self.agent_pid),
            tree_rss_kb=sum(rss_kb(pid) for pid in tree),
            tree_size=len(tree),
            agent_cpu_s=cpu_seconds(self.agent_pid),
            api_cpu_s=cpu_seconds(self.api_pid),
            nginx_cpu_s=sum(cpu_seconds(pid) for pid in process_tree(self.nginx_pid)),
            postgres_cpu_s=postgres_cpu_seconds(),
            load1=os.getloadavg()[0],
            time_wait=time_wait_sockets(),
            metrics=metrics,
        )
        self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.take()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="sampler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


# --- set-up ----------------------------------------------------------------------------------------


def traxo(env: dict[str, str], *arguments: str) -> str:
    return subprocess.run(
        [str(BIN / "traxo"), *arguments], env=env, check=True, capture_output=True, text=True, timeout=120
    ).stdout


def admin(statement: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


async def create_organization(dsn: str) -> str:
    """The benchmark user's organization on ENTERPRISE, made by the service POST /api/organization calls."""
    from sqlalchemy import select

    from control_plane.core.timefmt import utcnow
    from control_plane.db import Database
    from control_plane.models import User
    from control_plane.services import organizations
    from control_plane.settings import Plan, async_database_url

    db = Database(async_database_url(dsn))
    try:
        async with db.sessions() as session:
            user_id = await session.scalar(select(User.id).where(User.email == "bench@example.com"))
            assert user_id is not None, "`traxo users create` made no bench@example.com"
            org = await organizations.create_organization(
                session, user_id=user_id, name="Bench", slug="bench", plan=Plan.ENTERPRISE, now=utcnow()
            )
            return org.id
    finally:
        await db.engine.dispose()


def insert_monitors(dsn: str, org_id: str, count: int, target: str, interval_s: int) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY monitors (id, org_id, name, type, url, interval, timeout, method, regions, config,"
            " is_active, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                copy.write_row(
                    (f"mon_soak{i:06d}", org_id, f"soak {i}", "HTTP", target, interval_s, 10, "GET",
                     json.dumps([REGION]), "{}", True, now, now)
                )  # fmt: skip
        conn.commit()


def wait_ready(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} not ready within {deadline_s:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def spool_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])


# --- the run ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--monitors", type=int, default=50_000)
    parser.add_argument("--interval", type=int, default=60, help="monitor interval, seconds")
    parser.add_argument("--seconds", type=float, default=300, help="measured window")
    parser.add_argument("--settle", type=float, default=10, help="seconds between full assignment and window")
    parser.add_argument("--sample-every", type=float, default=3.0, help="RSS and /metrics sampling period")
    parser.add_argument("--drain", type=float, default=60, help="agent's --shutdown-deadline on SIGTERM")
    parser.add_argument("--keep-logs", action="store_true", help="copy the agent's and API's logs to /tmp")
    parser.add_argument(
        "--agent-command",
        default=str(BIN / "traxo-agent"),
        help="how to start the agent (split like a shell line), e.g. a wrapper that instruments it",
    )
    parser.add_argument(
        "--py-spy",
        type=float,
        default=0,
        metavar="SECONDS",
        help="py-spy record the agent and the API for SECONDS from 60 s into the window (collapsed stacks in /tmp)",
    )
    args = parser.parse_args()
    if args.seconds + args.settle + args.drain > TOTAL_BUDGET_S - 180:
        parser.error("window + settle + drain leave no room for set-up within the 12-minute budget")
    started = time.monotonic()

    def remaining() -> float:
        return TOTAL_BUDGET_S - (time.monotonic() - started)

    dsn = f"{SERVER}/{DB}"
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": dsn,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_REGIONS": REGION,
    }
    with tempfile.TemporaryDirectory(prefix="traxo-soak-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers, as `nobody` under root, walk into it
        (root / "nginx").mkdir()
        admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin(f"CREATE DATABASE {DB}")
        api = agent = None
        try:
            with nginx(root / "nginx") as target:
                nginx_pid = int((root / "nginx" / "nginx.pid").read_text())
                log(f"nginx at {target}; {os.cpu_count()} CPUs; load average {os.getloadavg()}")
                traxo(env, "migrate")
                traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench")
                org_id = asyncio.run(create_organization(dsn))
                token = traxo(env, "agents", "create-token", "--region", REGION).strip().splitlines()[-1]
                t = time.monotonic()
                insert_monitors(dsn, org_id, args.monitors, target, args.interval)
                log(f"{args.monitors} monitors COPied in {time.monotonic() - t:.1f} s")

                port, grpc_port, metrics_port = free_port(), free_port(), free_port()
                api_log = (root / "api.log").open("wb")
                api = subprocess.Popen(
                    [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(port),
                     "--grpc-port", str(grpc_port), "--no-workers", "--no-migrate"],
                    env=env, stdout=api_log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                wait_ready(f"http://127.0.0.1:{port}/readyz", api, 60)
                spool = root / "agent" / "spool.sqlite3"
                agent_log = (root / "agent.log").open("wb")
                agent = subprocess.Popen(
                    [*shlex.split(args.agent_command), "--control-plane", f"127.0.0.1:{grpc_port}",
                     "--region", REGION, "--name", "soak-agent", "--metrics-host", "127.0.0.1",
                     "--metrics-port", str(metrics_port), "--spool", str(spool),
                     "--shutdown-deadline", str(args.drain)],
                    env={**os.environ, "TRAXO_AGENT_TOKEN": token}, stdout=agent_log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
                wait_ready(metrics_url, agent, 60)
                sampler = Sampler(agent.pid, api.pid, nginx_pid, metrics_url, args.sample_every)
                sampler.start()

                t = time.monotonic()
                assign_deadline = min(240.0, remaining() - args.seconds - args.settle - args.drain - 60)
                while True:
                    if agent.poll() is not None:
                        sys.exit(
                            f"the agent exited with {agent.returncode}:\n{(root / 'agent.log').read_text()[-3000:]}"
                        )
                    current = scrape(metrics_url).value("traxo_agent_assignments")
                    if current >= args.monitors:
                        break
                    if time.monotonic() - t > assign_deadline:
                        sys.exit(
                            f"only {current:.0f} of {args.monitors} monitors assigned after {assign_deadline:.0f} s"
                        )
                    time.sleep(0.5)
                log(f"agent holds {args.monitors} assignments {time.monotonic() - t:.1f} s after it started")
                time.sleep(args.settle)

                first = sampler.take(attempts=5)
                log(f"window starts: {args.seconds:.0f} s; load average {os.getloadavg()}")
                window_end = time.monotonic() + args.seconds
                profilers: list[subprocess.Popen[bytes]] = []
                while time.monotonic() < window_end:
                    if (
                        args.py_spy
                        and not profilers
                        and time.monotonic() - first.at >= min(60, args.seconds / 3)
                    ):
                        profilers = [
                            subprocess.Popen(
                                [
                                    str(BIN / "py-spy"),
                                    "record",
                                    "--pid",
                                    str(pid),
                                    "--duration",
                                    str(int(args.py_spy)),
                                    "--rate",
                                    "50",
                                    "--nonblocking",
                                    "--format",
                                    "raw",
                                    "-o",
                                    f"/tmp/traxo-soak-{name}.pyspy.txt",
                                ],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                            for name, pid in (("agent", agent.pid), ("api", api.pid))
                        ]
                    time.sleep(
                        min(10.0 if args.py_spy and not profilers else 30.0, window_end - time.monotonic())
                    )
                    if agent.poll() is not None:
                        sys.exit(
                            f"the agent exited during the window:\n{(root / 'agent.log').read_text()[-3000:]}"
                        )
                    latest = sampler.samples[-1]
                    if latest.metrics is not None:
                        log(
                            f"  t+{latest.at - first.at:5.0f}s  checks {latest.metrics.value('traxo_agent_checks_total'):9.0f}"
                            f"  acked {latest.metrics.value('traxo_agent_results_acked_total'):9.0f}"
                            f"  spool {latest.metrics.value('traxo_agent_spool_results'):7.0f}"
                            f"  rss {latest.tree_rss_kb / 1024:6.1f} MiB  load {latest.load1:.2f}"
                            f"  time-wait {latest.time_wait}"
                        )
                last = sampler.take(attempts=5)
                for profiler in profilers:
                    profiler.wait(timeout=args.py_spy + 30)
                log("window over: SIGTERM to the agent; waiting for it to flush and exit")

                # Stop the load, let the agent drain and exit; poll its counters until it is gone.
                sampler.stop()
                agent.send_signal(signal.SIGTERM)
                final = last.metrics
                drain_started = time.monotonic()
                while agent.poll() is None and time.monotonic() - drain_started < args.drain + 30:
                    try:
                        final = scrape(metrics_url, timeout_s=2)
                    except OSError:
                        pass
                    time.sleep(0.02)  # the last acks land a few ms before the metrics endpoint closes
                drain_s = time.monotonic() - drain_started
                if agent.poll() is None:
                    log("the agent did not exit in time; killing it")
                    agent.kill()
                agent.wait()
                left_in_spool = spool_rows(spool)
                with psycopg.connect(dsn) as conn:
                    stored = count(conn, "SELECT count(*) FROM check_results")
                    by_status: dict[str, int] = dict(
                        conn.execute("SELECT status, count(*) FROM check_results GROUP BY 1").fetchall()
                    )
                    monitors_checked = count(conn, "SELECT count(DISTINCT monitor_id) FROM check_results")
                report(args, sampler, first, last, final, agent.returncode, drain_s, left_in_spool, stored,
                       by_status, monitors_checked, root)  # fmt: skip
        finally:
            if args.keep_logs:
                for name in ("agent.log", "api.log"):
                    if (root / name).exists():
                        (Path("/tmp") / f"traxo-soak-{name}").write_bytes((root / name).read_bytes())
            for process in (agent, api):
                if process is not None:
                    stop(process)
            admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    log(f"done in {time.monotonic() - started:.0f} s; database {DB} dropped")


def report(
    args: argparse.Namespace,
    sampler: Sampler,
    first: Sample,
    last: Sample,
    final: Scrape | None,
    exit_code: int | None,
    drain_s: float,
    left_in_spool: int,
    stored: int,
    by_status: dict[str, int],
    monitors_checked: int,
    root: Path,
) -> None:
    assert first.metrics is not None and last.metrics is not None and final is not None
    lag = "traxo_agent_schedule_lag_seconds"
    window = bucket_delta(last.metrics, first.metrics, lag)
    whole = final.buckets(lag)
    window_count = window[-1][1]
    elapsed = last.at - first.at
    checks = last.metrics.value("traxo_agent_checks_total") - first.metrics.value("traxo_agent_checks_total")
    print()
    print(f"== {args.monitors} HTTP monitors every {args.interval} s, window {elapsed:.0f} s ==")
    print(
        f"checks in the window: {checks:.0f} ({checks / elapsed:.0f}/s; schedule asks "
        f"{args.monitors / args.interval:.0f}/s); lag observations {window_count:.0f}"
    )
    bounds = ", ".join(f"{le:g}" for le, _ in window if le != float("inf"))
    print(f"schedule-lag buckets (s): {bounds}, +Inf")
    for name, buckets in (("window", window), ("whole run", whole)):
        for q in (0.5, 0.9, 0.99, 0.999):
            low, high, estimate = quantile(buckets, q)
            print(
                f"  {name:9s} p{q * 100:g}: in ({low:g}, {high:g}] s, interpolated {estimate * 1000:.0f} ms"
            )
        under = dict(buckets).get(TARGETS["p99_lag_s"], 0.0) / buckets[-1][1] if buckets[-1][1] else 0.0
        print(f"  {name:9s} share of checks started within 250 ms: {under * 100:.3f}%")
    print("  lag per minute of the window (p99 bucket, share > 250 ms):")
    minute_start = first
    for sample in sampler.samples:
        if sample.metrics is None or sample.at < first.at:
            continue
        if sample.at - minute_start.at >= 59 or sample is last:
            assert minute_start.metrics is not None
            part = bucket_delta(sample.metrics, minute_start.metrics, lag)
            if part[-1][1]:
                low, high, _ = quantile(part, 0.99)
                late = 1 - dict(part)[0.25] / part[-1][1]
                print(
                    f"    t+{minute_start.at - first.at:4.0f}..{sample.at - first.at:4.0f}s: "
                    f"{part[-1][1]:7.0f} checks, p99 in ({low:g}, {high:g}] s, {late * 100:.2f}% > 250 ms"
                )
            minute_start = sample
    skipped = final.value("traxo_agent_skipped_runs_total")
    print(f"skipped runs (whole run): {skipped:.0f}")
    statuses = {status: final.value("traxo_agent_checks_total", status=status) for status in ("UP", "DOWN")}
    print(f"checks by status (whole run): {statuses}; check_results by status: {by_status}")
    duration = bucket_delta(last.metrics, first.metrics, "traxo_agent_check_duration_seconds")
    print(
        "check duration in the window: p50 in ({:g}, {:g}], p99 in ({:g}, {:g}] s".format(
            *quantile(duration, 0.5)[:2], *quantile(duration, 0.99)[:2]
        )
    )

    in_window = [s for s in sampler.samples if s.at >= first.at]
    peak = max(sampler.samples, key=lambda s: s.tree_rss_kb)
    print(
        f"RSS, agent + descendants, every {args.sample_every:g} s over the whole run ({len(sampler.samples)} samples): "
        f"max {peak.tree_rss_kb / 1024:.1f} MiB ({peak.tree_size} processes), "
        f"max in window {max(s.tree_rss_kb for s in in_window) / 1024:.1f} MiB, "
        f"agent alone max {max(s.agent_rss_kb for s in sampler.samples) / 1024:.1f} MiB, "
        f"at window start/end {first.tree_rss_kb / 1024:.1f}/{last.tree_rss_kb / 1024:.1f} MiB"
    )
    print(
        "  RSS over time (MiB): "
        + " ".join(
            f"{s.tree_rss_kb / 1024:.0f}" for s in sampler.samples[:: max(1, len(sampler.samples) // 40)]
        )
    )
    cpu = {
        "agent": (last.agent_cpu_s - first.agent_cpu_s) / elapsed,
        "traxo api": (last.api_cpu_s - first.api_cpu_s) / elapsed,
        "nginx": (last.nginx_cpu_s - first.nginx_cpu_s) / elapsed,
        # Per process, so that backends that exited during the window do not count negative.
        "all postgres": sum(v - first.postgres_cpu_s.get(pid, 0.0) for pid, v in last.postgres_cpu_s.items())
        / elapsed,
    }
    print("CPU in the window (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    loads = [s.load1 for s in in_window]
    print(
        f"load average (1 min) in the window: min {min(loads):.2f}, mean {sum(loads) / len(loads):.2f}, max {max(loads):.2f}"
    )
    print(f"TCP sockets in TIME_WAIT in the window: max {max(s.time_wait for s in in_window)}")
    spool_peak = max(
        (s.metrics.value("traxo_agent_spool_results") for s in in_window if s.metrics), default=0
    )
    print(f"spool size in the window: peak {spool_peak:.0f} results")

    sent, acked = (
        final.value("traxo_agent_results_sent_total"),
        final.value("traxo_agent_results_acked_total"),
    )
    rejected = final.value("traxo_agent_results_rejected_total")
    dropped = final.value("traxo_agent_results_dropped_total")
    produced = final.value("traxo_agent_checks_total")
    print(
        f"after SIGTERM (exit {exit_code}, {drain_s:.1f} s): checks run {produced:.0f}, sent {sent:.0f}, "
        f"acked {acked:.0f}, rejected {rejected:.0f}, dropped {dropped:.0f}, left in spool file {left_in_spool}; "
        f"rows in check_results {stored} ({monitors_checked} monitors)"
    )
    # Every result goes through the spool and leaves it only when acknowledged (or dropped by its
    # bounds, counted): an empty spool file with nothing dropped or rejected means all were acked,
    # even if the last scrape before exit missed the final acks.
    all_acked = produced == stored and left_in_spool == 0 and rejected == 0 and dropped == 0
    if acked != produced:
        print(f"  (the last scrape before exit saw {produced - acked:.0f} acks fewer than checks run)")
    p99_high = quantile(window, 0.99)[1]
    print(
        "targets: p99 lag < 250 ms {}; skipped 0 {}; RSS < 400 MB {}; every result acknowledged {}".format(
            "met" if p99_high <= TARGETS["p99_lag_s"] else "MISSED",
            "met" if skipped == 0 else "MISSED",
            "met" if peak.tree_rss_kb * 1024 < TARGETS["rss_mb"] * 1e6 else "MISSED",
            "met" if all_acked else "MISSED",
        )
    )
    for line in (root / "agent.log").read_text().splitlines():
        if "acknowledged" in line or "stopped;" in line:
            print("agent log: " + line)
    tail = [
        line for line in (root / "agent.log").read_text().splitlines() if "WARNING" in line or "ERROR" in line
    ]
    if tail:
        print(f"agent log warnings/errors ({len(tail)}), last 10:")
        for line in tail[-10:]:
            print("  " + line[:300])


if __name__ == "__main__":
    main()
