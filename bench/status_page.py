"""Issue 14 benchmark: a status page of 50 components with a year of one-minute history, read by wrk.

Builds a fresh PostgreSQL database (traxo_bench_status_page, migrated by `traxo migrate`): one
ENTERPRISE organization, the page's 50 HTTP monitors (plus `--other-monitors` more of the
organization, which only receive the ingest load) in regions bench-0 and bench-1; 30 days of raw
one-minute results of the 50 (bench-0) COPYed into check_results (raw results are kept 30 days);
a year of their hourly and daily check_rollups as the fold writes them (count, up_count, sums and
counts of dns/tcp/tls/ttfb/download/total/size, each measure's histogram of
control_plane/domain/histogram.py's buckets; a day the sum of its hours); a few automatic DOWN
incidents over the last 14 days (one of them open), two incidents declared on the page with
updates and a maintenance window in progress and one to come, through the API.

Then `traxo api --no-workers` (one uvicorn process) and `traxo worker` (the rollup fold and the
incident engine, as in production) serve it, and wrk (`-t2 -c64`, `Accept-Encoding: gzip` as a
browser sends) measures GET /api/status-pages/{slug} and GET /status/{slug}: requests/s, p50,
p99. Then the same while results are ingested at `--rate` per second through the agents' real
gRPC path (StreamResults of two agents, one per region, batches of 250 paced every 0.1 s to the
page's and the other monitors), and the rate acknowledged is reported beside the figures.

With --separate-grpc the agents' gRPC is served by a second `traxo api` process and the measured
one runs with --no-grpc (a deployment splitting agents' ingest from visitors).

Usage: .venv/bin/python bench/status_page.py [--seconds 15] [--rate 5000] [--reuse] [--separate-grpc]
Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
from bench_support import BIN, POSTGRES, free_port, psql_admin, start_api, traxo, wrk
from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.ids import new_result_id  # noqa: E402
from control_plane.domain import histogram  # noqa: E402
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb  # noqa: E402
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub  # noqa: E402

DATABASE = "traxo_bench_status_page"
DSN = f"{POSTGRES}/{DATABASE}"
SLUG = "bench-status"
COMPONENTS = 50
REGIONS = ["bench-0", "bench-1"]
HISTORY_REGION = REGIONS[0]
RAW_DAYS = 30
ROLLUP_DAYS = 365
NULL = "\\N"
MEASURES = ("dns", "tcp", "tls", "ttfb", "download", "total")
STATE_FILE = Path(tempfile.gettempdir()) / f"{DATABASE}.json"


def log(message: str) -> None:
    print(message, flush=True)


def page_monitor(i: int) -> str:
    return f"mon_page{i:04d}"


def other_monitor(i: int) -> str:
    return f"mon_other{i:05d}"


# ---------------------------------------------------------------- generated history


def one_check(rng: random.Random) -> tuple[bool, dict[str, float], int]:
    """A check's outcome: up (99.7%), its phases in ms, its size."""
    up = rng.random() > 0.003
    dns = round(rng.lognormvariate(math.log(3), 0.5), 2)
    tcp = round(rng.lognormvariate(math.log(8), 0.4), 2)
    tls = round(rng.lognormvariate(math.log(15), 0.4), 2)
    ttfb = round(rng.lognormvariate(math.log(80), 0.5), 2)
    download = round(rng.lognormvariate(math.log(4), 0.6), 2)
    total = round(dns + tcp + tls + ttfb + download, 2)
    return up, {"dns": dns, "tcp": tcp, "tls": tls, "ttfb": ttfb, "download": download, "total": total}, 5120


def copy_raw(monitor_ids: list[str], end: float, seed: int) -> int:
    """COPY RAW_DAYS of one-minute results of these monitors (region HISTORY_REGION)."""
    rng = random.Random(seed)
    minutes = RAW_DAYS * 1440
    start = int(end // 60) * 60 - minutes * 60
    written = 0
    columns = (
        "id, monitor_id, region, status, response_time, status_code, error_kind, error_message, dns_ms,"
        " tcp_ms, tls_ms, ttfb_ms, download_ms, total_ms, size_bytes, checked_at, scheduled_at"
    )
    with psycopg.connect(DSN) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY check_results ({columns}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for n, monitor_id in enumerate(monitor_ids):
                for minute in range(minutes):
                    at = start + minute * 60
                    up, m, size = one_check(rng)
                    scheduled = datetime.fromtimestamp(at, UTC).isoformat()
                    checked = datetime.fromtimestamp(at + m["total"] / 1000, UTC).isoformat()
                    buffer.write(
                        f"res_b{seed:02d}{n:03d}{minute:06d}\t{monitor_id}\t{HISTORY_REGION}\t"
                        f"{'UP' if up else 'DOWN'}\t{m['total']}\t{200 if up else 503}\t"
                        f"{NULL if up else 'http_status'}\t{NULL if up else 'expected a 2xx status, got 503'}\t"
                        f"{m['dns']}\t{m['tcp']}\t{m['tls']}\t{m['ttfb']}\t{m['download']}\t{m['total']}\t"
                        f"{size}\t{checked}\t{scheduled}\n"
                    )
                    written += 1
                    if buffer.tell() > 1 << 20:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
            copy.write(buffer.getvalue())
        conn.commit()
    return written


def hour_templates(
    count: int, seed: int
) -> list[tuple[int, dict[str, float], dict[str, int], dict[str, Any]]]:
    """Hours of 60 checks summed as the fold sums them: (up_count, sums, counts, histograms)."""
    rng = random.Random(seed)
    templates = []
    for _ in range(count):
        up_count = 0
        sums = {name: 0.0 for name in (*MEASURES, "size")}
        histograms: dict[str, dict[str, int]] = {name: {} for name in MEASURES}
        for _ in range(60):
            up, measures, size = one_check(rng)
            up_count += up
            for name, value in measures.items():
                sums[name] += value
                histogram.add(histograms[name], value)
            sums["size"] += size
        counts = {name: 60 for name in sums}
        templates.append((up_count, sums, counts, histograms))
    return templates


def copy_rollups(monitor_ids: list[str], end: float, seed: int) -> int:
    """A year of hourly rollups of these monitors and the days summed from them."""
    rng = random.Random(seed)
    templates = hour_templates(200, seed)
    first_day = int(end // 86400) * 86400 - (ROLLUP_DAYS - 1) * 86400
    last_hour = int(end // 3600) * 3600
    rows = 0
    with psycopg.connect(DSN) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY check_rollups (monitor_id, region, granularity, bucket_start, count, up_count, sums, counts,"
            " histograms) FROM STDIN"
        ) as copy:
            for monitor_id in monitor_ids:
                for day in range(ROLLUP_DAYS):
                    day_start = first_day + day * 86400
                    day_up, day_count = 0, 0
                    day_sums: dict[str, float] = {}
                    day_counts: dict[str, int] = {}
                    day_histograms: dict[str, dict[str, int]] = {name: {} for name in MEASURES}
                    for hour in range(24):
                        hour_start = day_start + hour * 3600
                        if hour_start > last_hour:
                            break
                        up, sums, counts, histograms = templates[rng.randrange(len(templates))]
                        copy.write_row(
                            (monitor_id, HISTORY_REGION, "hour", datetime.fromtimestamp(hour_start, UTC), 60, up,
                             json.dumps(sums), json.dumps(counts), json.dumps(histograms))
                        )  # fmt: skip
                        rows += 1
                        day_up += up
                        day_count += 60
                        for name, value in sums.items():
                            day_sums[name] = day_sums.get(name, 0.0) + value
                            day_counts[name] = day_counts.get(name, 0) + counts[name]
                        for name, buckets in histograms.items():
                            histogram.merge_into(day_histograms[name], buckets)
                    copy.write_row(
                        (monitor_id, HISTORY_REGION, "day", datetime.fromtimestamp(day_start, UTC), day_count,
                         day_up, json.dumps(day_sums), json.dumps(day_counts), json.dumps(day_histograms))
                    )  # fmt: skip
                    rows += 1
        conn.commit()
    return rows


def load_history(end: float, workers: int) -> None:
    started = time.monotonic()
    ids = [page_monitor(i) for i in range(COMPONENTS)]
    shares = [ids[w::workers] for w in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        raw = sum(pool.map(copy_raw, shares, [end] * workers, range(workers)))
        log(f"{raw:,} raw results COPYed in {time.monotonic() - started:.0f} s")
        rollups = sum(pool.map(copy_rollups, shares, [end] * workers, range(workers)))
    log(
        f"{rollups:,} hourly and daily rollup rows COPYed; history loaded in {time.monotonic() - started:.0f} s"
    )
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE check_results")
        conn.execute("VACUUM ANALYZE check_rollups")


# ---------------------------------------------------------------- database set-up


async def create_organization() -> str:
    from sqlalchemy import select

    from control_plane.core.timefmt import utcnow
    from control_plane.db import Database
    from control_plane.models import User
    from control_plane.services import organizations
    from control_plane.settings import Plan, async_database_url

    db = Database(async_database_url(DSN))
    try:
        async with db.sessions() as session:
            user_id = await session.scalar(select(User.id).where(User.email == "bench@example.com"))
            org = await organizations.create_organization(
                session, user_id=user_id, name="Bench", slug="bench", plan=Plan.ENTERPRISE, now=utcnow()
            )
            return org.id
    finally:
        await db.engine.dispose()


def insert_monitors(org_id: str, others: int) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(DSN) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY monitors (id, org_id, name, type, url, interval, timeout, method, regions, config, is_active,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            names = [(page_monitor(i), f"Service {i + 1}") for i in range(COMPONENTS)]
            names += [(other_monitor(i), f"Other {i + 1}") for i in range(others)]
            for monitor_id, name in names:
                copy.write_row(
                    (monitor_id, org_id, name, "HTTP", "http://127.0.0.1:1/", 60, 10, "GET", json.dumps(REGIONS),
                     "{}", True, now, now)
                )  # fmt: skip
        conn.commit()


async def insert_automatic_incidents(org_id: str, now: datetime) -> None:
    """A few DOWN incidents of the page's monitors over the last 14 days, the last one still open."""
    from control_plane.db import Database
    from control_plane.models.incidents import Incident
    from control_plane.settings import async_database_url

    db = Database(async_database_url(DSN))
    try:
        async with db.sessions() as session:
            for n, (monitor, days_ago, minutes) in enumerate(
                [(3, 12, 25), (7, 9, 8), (7, 5, 40), (21, 2, 14)]
            ):
                started = now - timedelta(days=days_ago, hours=n)
                session.add(
                    Incident(
                        id=f"inc_bench{n}", org_id=org_id, monitor_id=page_monitor(monitor), started_at=started,
                        resolved_at=started + timedelta(minutes=minutes), cause="expected a 2xx status, got 503",
                        regions=[HISTORY_REGION], status="resolved", updated_at=started,
                    )
                )  # fmt: skip
            session.add(
                Incident(
                    id="inc_bench_open", org_id=org_id, monitor_id=page_monitor(42),
                    started_at=now - timedelta(minutes=20), cause="connection refused", regions=REGIONS,
                    status="investigating", updated_at=now,
                )
            )  # fmt: skip
            await session.commit()
    finally:
        await db.engine.dispose()


def create_page_content(base: str, key: str, now: datetime) -> None:
    """The page, two declared incidents with updates, maintenance now and to come: through the API."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(path, json=body)
            assert response.status_code in (200, 201), (path, response.text)
            data: dict[str, Any] = response.json()["data"]
            return data

        monitors = [
            {"monitorId": page_monitor(i), "displayName": f"Service {i + 1}", "order": i,
             "group": None if i < 10 else f"Region {(i - 10) // 10 + 1}"}
            for i in range(COMPONENTS)
        ]  # fmt: skip
        page = post("/api/status-pages", {"name": "Bench Status", "slug": SLUG, "monitors": monitors})
        components = [c["id"] for c in page["components"]]
        incidents = f"/api/status-pages/{SLUG}/incidents"
        open_one = post(
            incidents,
            {"title": "Elevated API latency", "impact": "minor", "message": "We are looking into slow responses",
             "componentIds": components[:3]},
        )  # fmt: skip
        post(
            f"{incidents}/{open_one['id']}/updates",
            {"status": "identified", "message": "A slow database replica"},
        )
        past = post(
            incidents,
            {"title": "Login failures", "impact": "major", "message": "Some sign-ins fail",
             "componentIds": components[10:12]},
        )  # fmt: skip
        post(f"{incidents}/{past['id']}/updates", {"status": "resolved", "message": "Fixed by a rollback"})
        stamp = "%Y-%m-%dT%H:%M:%S.000Z"
        post(
            "/api/maintenance",
            {"title": "Database upgrade", "description": "Upgrading PostgreSQL", "monitorId": page_monitor(5),
             "startsAt": (now - timedelta(minutes=30)).strftime(stamp),
             "endsAt": (now + timedelta(hours=3)).strftime(stamp)},
        )  # fmt: skip
        post(
            "/api/maintenance",
            {"title": "Network work", "startsAt": (now + timedelta(days=2)).strftime(stamp),
             "endsAt": (now + timedelta(days=2, hours=2)).strftime(stamp)},
        )  # fmt: skip


# ---------------------------------------------------------------- processes


def _grpc(port: int | None) -> list[str]:
    return ["--no-grpc"] if port is None else ["--grpc-port", str(port)]


# ---------------------------------------------------------------- ingest at a rate


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


async def paced_agent(
    target: str, token: str, region: str, rate: float, stop: threading.Event, counters: dict[str, int]
) -> None:
    """One agent: registers, waits for its assignments, then sends batches of 250 results every
    250 / rate seconds (up to 8 in flight, as the agent does) until `stop`."""
    metadata = (("authorization", f"Bearer {token}"),)
    batch_size = 250
    async with grpc.aio.insecure_channel(target) as channel:
        stub = AgentServiceStub(channel)
        registered = await stub.Register(
            pb.RegisterRequest(name=f"bench-{region}", region=region, version="bench", capabilities=["http"]),
            metadata=metadata,
        )
        assignments: list[pb.Assignment] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stream = stub.WatchAssignments(
                pb.WatchAssignmentsRequest(agent_id=registered.agent_id), metadata=metadata
            )
            first = await stream.read()
            stream.cancel()
            assignments = list(first.snapshot.assignments)
            if len(assignments) >= counters["monitors"]:
                break
            await asyncio.sleep(0.5)
        epochs = [(a.monitor_id, a.epoch) for a in assignments]
        slots = itertools.count()
        start = datetime.now(UTC) - timedelta(hours=1)
        in_flight = asyncio.Semaphore(8)
        interval = batch_size / rate
        counters["ready"] += 1

        async def renew() -> None:
            while not stop.is_set():
                await stub.RenewLease(pb.RenewLeaseRequest(agent_id=registered.agent_id), metadata=metadata)
                await asyncio.sleep(1)

        renewing = asyncio.create_task(renew())

        def batch(sequence: int) -> pb.ResultBatch:
            now = datetime.now(UTC)
            results = [
                pb.CheckResult(
                    result_id=new_result_id(), monitor_id=monitor_id, epoch=epoch, region=region,
                    scheduled_at=stamp(start + timedelta(microseconds=next(slots))),
                    started_at=stamp(now - timedelta(milliseconds=100)), finished_at=stamp(now),
                    status=pb.UP, response_time_ms=random.uniform(20, 200), status_code=200,
                    dns_ms=1.0, tcp_ms=2.0, ttfb_ms=30.0, download_ms=2.0, total_ms=40.0, size_bytes=512,
                    type="HTTP",
                )
                for monitor_id, epoch in (random.choice(epochs) for _ in range(batch_size))
            ]  # fmt: skip
            return pb.ResultBatch(agent_id=registered.agent_id, sequence=sequence, results=results)

        async def batches():  # type: ignore[no-untyped-def]
            next_at = time.monotonic()
            for sequence in itertools.count(1):
                if stop.is_set():
                    break
                pause = next_at - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                next_at += interval
                await in_flight.acquire()
                yield batch(sequence)

        call = stub.StreamResults(batches(), metadata=metadata)
        async for ack in call:
            counters["acked"] += batch_size - len(ack.rejected)
            counters["rejected"] += len(ack.rejected)
            in_flight.release()
        renewing.cancel()


class Ingest:
    """Agents sending results at `rate` in a thread of their own, counting what is acknowledged."""

    def __init__(self, target: str, tokens: dict[str, str], rate: float, monitors: int) -> None:
        self.stop = threading.Event()
        self.counters = {"acked": 0, "rejected": 0, "ready": 0, "monitors": monitors}
        per_agent = rate / len(tokens)

        async def run() -> None:
            await asyncio.gather(
                *(paced_agent(target, token, region, per_agent, self.stop, self.counters)
                  for region, token in tokens.items())
            )  # fmt: skip

        self.thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 90
        while self.counters["ready"] < len(tokens):
            if time.monotonic() > deadline:
                raise SystemExit("the agents never got their assignments")
            time.sleep(0.2)

    def acked(self) -> int:
        return self.counters["acked"]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


# ---------------------------------------------------------------- measurement


_GZIP = ("-H", "Accept-Encoding: gzip")  # as a browser sends
_TIMEOUT = ("--timeout", "30s")  # a slow answer counted in the latencies, not left out as a timeout


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(base: str, seconds: float, connections: int, label: str, also: list[str]) -> None:
    paths = [("JSON", f"/api/status-pages/{SLUG}"), ("HTML", f"/status/{SLUG}"), *((p, p) for p in also)]
    for name, path in paths:
        wrk(base + path, 2, connections, *_GZIP)  # warm-up
        before = load_average()
        figures = wrk(base + path, seconds, connections, *_GZIP, *_TIMEOUT)
        log(
            f"{label:<28} {name}  {figures['rate']:8,.0f} req/s   p50 {figures['p50']:6.1f} ms   "
            f"p99 {figures['p99']:6.1f} ms   max {figures['max']:7.1f} ms   non-2xx {figures['non_2xx']}, socket errors {figures['socket_errors']}"
            f"   (load average {before} before, {load_average()} after)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=5000, help="results/s ingested during the second part")
    parser.add_argument("--other-monitors", type=int, default=450)
    parser.add_argument("--workers", type=int, default=2, help="processes generating the history")
    parser.add_argument("--reuse", action="store_true", help="measure the database a previous run loaded")
    parser.add_argument(
        "--also", action="append", default=[], metavar="PATH",
        help="measure this path too, the same way (e.g. /healthz: what the machine's load alone costs)",
    )  # fmt: skip
    parser.add_argument(
        "--separate-grpc", action="store_true",
        help="the agents' gRPC in a second `traxo api` process; the measured one with --no-grpc",
    )  # fmt: skip
    args = parser.parse_args()
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": DSN,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_RATE_LIMIT_MULTIPLIER": "100000",
        "TRAXO_REGIONS": ",".join(REGIONS),
        "TRAXO_DEFAULT_REGIONS": ",".join(REGIONS),
    }
    if not args.reuse:
        psql_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        psql_admin(f'CREATE DATABASE "{DATABASE}"')
        traxo(env, "migrate")
        key = (
            traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench")
            .strip()
            .splitlines()[-1]
        )
        tokens = {
            r: traxo(env, "agents", "create-token", "--region", r).strip().splitlines()[-1] for r in REGIONS
        }
        org_id = asyncio.run(create_organization())
        insert_monitors(org_id, args.other_monitors)
        load_history(datetime.now(UTC).timestamp(), args.workers)
        asyncio.run(insert_automatic_incidents(org_id, datetime.now(UTC)))
        STATE_FILE.write_text(json.dumps({"key": key, "tokens": tokens, "content": False}))
    state = json.loads(STATE_FILE.read_text())
    port, grpc_port = free_port(), free_port()
    api = start_api(env, port, *_grpc(None if args.separate_grpc else grpc_port))
    agents_api = start_api(env, free_port(), *_grpc(grpc_port)) if args.separate_grpc else None
    worker = subprocess.Popen([str(BIN / "traxo"), "worker"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        if not state["content"]:
            create_page_content(base, state["key"], datetime.now(UTC))
            state["content"] = True
            STATE_FILE.write_text(json.dumps(state))
        with psycopg.connect(DSN, autocommit=True) as conn:  # tell the coordinator, as the API would
            conn.execute(f"SELECT pg_notify('traxo_changes', 'monitors:{page_monitor(0)}')")
        view = httpx.get(f"{base}/api/status-pages/{SLUG}", timeout=30).json()["data"]
        html = httpx.get(f"{base}/status/{SLUG}", timeout=30)
        log(
            f"page: {len(view['components'])} components, overall {view['overallStatus']!r}, "
            f"{len(view['activeIncidents'])} active incidents, "
            f"{len(view['maintenance'])} maintenance windows; HTML {len(html.content):,} bytes"
        )
        measure(base, args.seconds, args.connections, "idle", args.also)
        ingest = Ingest(
            f"127.0.0.1:{grpc_port}", state["tokens"], args.rate, COMPONENTS + args.other_monitors
        )
        try:
            time.sleep(3)  # the ingest at its pace before measuring
            started, acked = time.monotonic(), ingest.acked()
            measure(base, args.seconds, args.connections, f"ingesting {args.rate:,.0f} results/s", args.also)
            rate = (ingest.acked() - acked) / (time.monotonic() - started)
        finally:
            ingest.close()
        log(f"results acknowledged while measuring: {rate:,.0f}/s (rejected {ingest.counters['rejected']})")
    finally:
        api.terminate()
        worker.terminate()
        if agents_api is not None:
            agents_api.terminate()
            agents_api.wait(timeout=30)
        api.wait(timeout=30)
        worker.wait(timeout=30)


if __name__ == "__main__":
    main()
