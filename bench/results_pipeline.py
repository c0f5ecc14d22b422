"""Issue 5 benchmark, part 3: results per second the control plane commits from agents (PostgreSQL).

Starts `traxo api` on a fresh PostgreSQL database, creates monitors and a token, registers
`--streams` agents over real gRPC (one region each, so every agent holds every monitor), and has
each stream send batches of results as fast as the server acknowledges them (up to 8 in flight,
as the agent does). Counts results acknowledged (= committed) per second, then checks the row
count in the database, and that the rollup fold (a `traxo worker` beside the API, as in
production) has every result in the hourly rollups once its backlog drains. Usage:

    .venv/bin/python bench/results_pipeline.py [--monitors 1000] [--seconds 30] [--streams 4] [--batch 500]
        [--failing 0.1]   # a share of the results DOWN (issue 11: the incident engine's cost)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.ids import new_result_id  # noqa: E402
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb  # noqa: E402
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub  # noqa: E402

BIN = ROOT / ".venv" / "bin"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "traxo_bench_pipeline"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def traxo(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [str(BIN / "traxo"), *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def setup_database(monitors: int, regions: list[str]) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")


def insert_monitors(dsn: str, org_id: str, count: int, regions: list[str]) -> None:
    import json

    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY monitors (id, org_id, name, type, url, interval, timeout, method, regions, config, is_active,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                copy.write_row(
                    (f"mon_bench{i:06d}", org_id, f"m{i}", "HTTP", "http://127.0.0.1:1/", 60, 10, "GET",
                     json.dumps(regions), "{}", True, now, now)
                )  # fmt: skip
        conn.commit()


async def agent_stream(
    target: str, token: str, region: str, seconds: float, batch_size: int, counters: dict[str, int]
) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = AgentServiceStub(channel)
        registered = await stub.Register(
            pb.RegisterRequest(name=f"bench-{region}", region=region, version="bench", capabilities=["http"]),
            metadata=metadata,
        )

        async def renew() -> None:
            # From the registration on, as the agent does: building the batches below takes longer
            # than the missed periods on a slow machine, and a lapsed agent's results are refused.
            while True:
                await stub.RenewLease(pb.RenewLeaseRequest(agent_id=registered.agent_id), metadata=metadata)
                await asyncio.sleep(1)

        renewing = asyncio.create_task(renew())
        # Wait for the snapshot to hold every monitor (the coordinator assigns after registration).
        assignments: list[pb.Assignment] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stream = stub.WatchAssignments(
                pb.WatchAssignmentsRequest(agent_id=registered.agent_id), metadata=metadata
            )
            first = await stream.read()
            stream.cancel()
            assignments = list(first.snapshot.assignments)
            if assignments and len(assignments) >= counters["monitors"]:
                break
            await asyncio.sleep(0.5)
        epochs = [(a.monitor_id, a.epoch) for a in assignments]
        # Built before the clock starts, so the sender costs the measured process as little as it can.
        now = datetime.now(UTC)
        slots = itertools.count()
        prebuilt = [
            [
                pb.CheckResult(
                    result_id=new_result_id(), monitor_id=monitor_id, epoch=epoch, region=region,
                    # Each result its own slot, as a real schedule has: the incident engine counts
                    # every one (a result no newer than its region's newest would be skipped).
                    scheduled_at=stamp(now - timedelta(hours=1) + timedelta(microseconds=next(slots))),
                    started_at=stamp(now - timedelta(milliseconds=100)), finished_at=stamp(now),
                    status=pb.DOWN if down else pb.UP, response_time_ms=random.uniform(20, 200),
                    status_code=503 if down else 200,
                    error_kind="http_status" if down else "", error_message="expected a 2xx status, got 503" if down else "",
                    dns_ms=1.0, tcp_ms=2.0, ttfb_ms=30.0, download_ms=2.0, total_ms=40.0, size_bytes=512,
                    type="HTTP",
                )
                for (monitor_id, epoch), down in (
                    (random.choice(epochs), random.random() < counters["failing"]) for _ in range(batch_size)
                )
            ]
            for _ in range(counters["batches_per_stream"])
        ]  # fmt: skip
        in_flight = asyncio.Semaphore(8)
        counters["ready"] += 1
        while counters["ready"] < counters["streams"]:
            await asyncio.sleep(0.05)
        stop_at = time.monotonic() + seconds

        async def batches():
            for sequence, results in enumerate(prebuilt, start=1):
                if time.monotonic() >= stop_at:
                    break
                await in_flight.acquire()
                counters["sent"] += len(results)
                yield pb.ResultBatch(agent_id=registered.agent_id, sequence=sequence, results=results)

        call = stub.StreamResults(batches(), metadata=metadata)
        async for ack in call:
            counters["acked"] += batch_size - len(ack.rejected)
            counters["rejected"] += len(ack.rejected)
            in_flight.release()
        renewing.cancel()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--failing", type=float, default=0.0, help="share of results that are DOWN (0-1)")
    args = parser.parse_args()

    regions = [f"bench-{i}" for i in range(args.streams)]
    setup_database(args.monitors, regions)
    dsn = f"postgresql://postgres@127.0.0.1:5432/{DB}"
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": dsn,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_REGIONS": ",".join(regions),
    }
    traxo("migrate", env=env)
    key = (
        traxo("users", "create", "--email", "bench@example.com", "--name", "Bench", env=env)
        .strip()
        .splitlines()[-1]
    )
    tokens = {
        r: traxo("agents", "create-token", "--region", r, env=env).strip().splitlines()[-1] for r in regions
    }
    port, grpc_port = free_port(), free_port()
    api = subprocess.Popen(
        [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port),
         "--no-workers", "--no-migrate"], env=env,
    )  # fmt: skip
    # The rollup fold runs beside it, as in production (`traxo worker`); its cost is in the figure.
    worker = subprocess.Popen([str(BIN / "traxo"), "worker"], env=env)
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
        org = httpx.post(
            f"http://127.0.0.1:{port}/api/organization",
            json={"name": "Bench", "slug": "bench"},
            headers={"Authorization": f"Bearer {key}"},
        ).json()["data"]["id"]
        insert_monitors(dsn, org, args.monitors, regions)
        with psycopg.connect(dsn, autocommit=True) as conn:  # tell the coordinator, as the API would
            conn.execute("SELECT pg_notify('traxo_changes', 'monitors:mon_bench000000')")
        counters = {
            "sent": 0, "acked": 0, "rejected": 0, "monitors": args.monitors, "ready": 0,
            "streams": args.streams, "batches_per_stream": int(args.seconds * 30_000 / args.streams / args.batch) + 8,
            "failing": args.failing,
        }  # fmt: skip
        started = time.monotonic()
        backlog_samples: list[int] = []
        incident_samples: list[int] = []

        async def sample_backlog() -> None:
            # Whether the fold keeps up: the queue must stay bounded, not grow with the run.
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                while True:
                    await asyncio.sleep(2)
                    row = await (await conn.execute("SELECT count(*) FROM rollup_backlog")).fetchone()
                    backlog_samples.append(row[0])
                    exists = await (await conn.execute("SELECT to_regclass('incident_backlog')")).fetchone()
                    if exists[0] is not None:  # the incident engine's queue (since issue 11)
                        row = await (await conn.execute("SELECT count(*) FROM incident_backlog")).fetchone()
                        incident_samples.append(row[0])

        sampler = asyncio.create_task(sample_backlog())
        await asyncio.gather(
            *(
                agent_stream(f"127.0.0.1:{grpc_port}", tokens[r], r, args.seconds, args.batch, counters)
                for r in regions
            )
        )
        sampler.cancel()
        elapsed = time.monotonic() - started
        with psycopg.connect(dsn, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM check_results").fetchone()[0]
            queued_at_end = conn.execute("SELECT count(*) FROM rollup_backlog").fetchone()[0]
            drained = time.monotonic()
            while (
                conn.execute("SELECT count(*) FROM rollup_backlog").fetchone()[0]
                and time.monotonic() - drained < 60
            ):
                time.sleep(0.2)
            drain_s = time.monotonic() - drained
            rolled_up = conn.execute(
                "SELECT coalesce(sum(count), 0) FROM check_rollups WHERE granularity = 'hour'"
            ).fetchone()[0]
        print(
            f"streams={args.streams} batch={args.batch} monitors={args.monitors}: "
            f"acked {counters['acked']} results in the {args.seconds:.0f} s send window "
            f"({elapsed:.1f} s with setup) -> {counters['acked'] / args.seconds:,.0f} results/s committed; "
            f"rejected {counters['rejected']}; rows in check_results: {stored}; "
            f"queued for rollups every 2 s: {backlog_samples}, at the end {queued_at_end}, folded {drain_s:.1f} s later; "
            f"results in hourly rollups: {rolled_up}"
            + (f"; queued for the incident engine every 2 s: {incident_samples}" if incident_samples else "")
        )
    finally:
        api.terminate()
        worker.terminate()
        api.wait(timeout=20)
        worker.wait(timeout=20)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
