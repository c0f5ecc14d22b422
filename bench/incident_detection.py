"""Issue 11 benchmark 1: detection latency on PostgreSQL, with real processes.

`traxo api` (workers on: the heartbeat sweep runs in it) and one `traxo-agent` probe a local
HTTP target. For each trial the target starts failing at a random moment of the monitor's
15-second interval; the time until GET /api/incidents shows the incident is measured (target:
2 x interval + 2 s). Then a HEARTBEAT monitor (every 15 s, grace 5 s) is pinged once and left
silent; the time from its deadline (ping + interval + grace) to the incident is measured (target:
within 2 s). Usage:

    .venv/bin/python bench/incident_detection.py [--trials 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "traxo_bench_detection"
REGION = "bench-east"
INTERVAL_S = 15
GRACE_S = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def traxo(*args: str, env: dict[str, str]) -> str:
    return (
        subprocess.run([str(BIN / "traxo"), *args], env=env, check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )


def insert_monitor(dsn: str, org_id: str, monitor_id: str, kind: str, url: str | None, config: dict) -> None:
    now = datetime.now(UTC)
    token = f"hb_bench{monitor_id}{'x' * 24}" if kind == "HEARTBEAT" else None
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO monitors (id, org_id, name, type, url, interval, timeout, method, regions, config,"
            " is_active, heartbeat_token, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, 10, 'GET', %s, %s, true, %s, %s, %s)",
            (monitor_id, org_id, monitor_id, kind, url, INTERVAL_S, json.dumps([REGION]), json.dumps(config),
             token, now, now),
        )  # fmt: skip
        conn.execute("SELECT pg_notify('traxo_changes', %s)", (f"monitors:{monitor_id}",))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    failing = {"on": False}

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=503 if failing["on"] else 200, text="bench")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    target_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", target_port).start()

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    dsn = f"postgresql://postgres@127.0.0.1:5432/{DB}"
    env = {**os.environ, "TRAXO_DATABASE_URL": dsn, "TRAXO_LOG_LEVEL": "warning", "TRAXO_REGIONS": REGION}
    traxo("migrate", env=env)
    key = traxo("users", "create", "--email", "bench@example.com", "--name", "Bench", env=env)
    token = traxo("agents", "create-token", "--region", REGION, env=env)
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    api = subprocess.Popen(
        [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port),
         "--no-migrate"], env=env,
    )  # fmt: skip
    spool = Path(f"/tmp/{DB}.spool")
    await asyncio.to_thread(spool.unlink, missing_ok=True)
    agent = subprocess.Popen(
        [str(BIN / "traxo-agent"), "--control-plane", f"127.0.0.1:{grpc_port}", "--region", REGION,
         "--name", "bench-1", "--spool", str(spool), "--metrics-host", "127.0.0.1",
         "--metrics-port", str(metrics_port)],
        env={**os.environ, "TRAXO_AGENT_TOKEN": token},
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=5) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            org = (await client.post("/api/organization", json={"name": "Bench", "slug": "bench"})).json()
            org_id = org["data"]["id"]
            with psycopg.connect(dsn, autocommit=True) as conn:  # its API rate allows polling every 0.1 s
                conn.execute("UPDATE organizations SET plan = 'ENTERPRISE' WHERE id = %s", (org_id,))
                conn.execute("SELECT pg_notify('traxo_changes', 'auth:')")

            async def incident_of(monitor_id: str) -> bool:
                response = await client.get(f"/api/incidents?monitorId={monitor_id}&status=active")
                assert response.status_code == 200, response.text
                return bool(response.json()["data"])

            latencies = []
            for trial in range(args.trials):
                monitor_id = f"mon_benchdetect{trial}"
                insert_monitor(
                    dsn, org_id, monitor_id, "HTTP", f"http://127.0.0.1:{target_port}/t{trial}", {}
                )
                failing["on"] = False
                await asyncio.sleep(INTERVAL_S * 2 + random.uniform(0, INTERVAL_S))  # up, at a random phase
                failing["on"] = True
                started = time.monotonic()
                while not await incident_of(monitor_id):
                    await asyncio.sleep(0.1)
                latencies.append(time.monotonic() - started)
                failing["on"] = False
                print(
                    f"HTTP trial {trial + 1}: incident {latencies[-1]:.1f} s after the target started failing"
                )
            print(
                f"HTTP, interval {INTERVAL_S} s: incident within {min(latencies):.1f}-{max(latencies):.1f} s "
                f"(target {2 * INTERVAL_S + 2} s)"
            )

            late = []
            for trial in range(args.trials):
                monitor_id = f"mon_benchbeat{trial}"
                insert_monitor(dsn, org_id, monitor_id, "HEARTBEAT", None, {"gracePeriod": GRACE_S})
                await asyncio.sleep(1)
                token_path = f"hb_bench{monitor_id}{'x' * 24}"
                assert (await client.get(f"/api/heartbeat/{token_path}")).status_code == 200
                deadline = time.monotonic() + INTERVAL_S + GRACE_S
                while not await incident_of(monitor_id):
                    await asyncio.sleep(0.1)
                late.append(time.monotonic() - deadline)
                print(f"HEARTBEAT trial {trial + 1}: incident {late[-1]:.1f} s after the deadline")
            print(
                f"HEARTBEAT, every {INTERVAL_S} s, grace {GRACE_S} s: incident {max(late):.1f} s after the deadline at most (target 2 s)"
            )
    finally:
        agent.terminate()
        api.terminate()
        agent.wait(timeout=20)
        api.wait(timeout=20)
        await runner.cleanup()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
