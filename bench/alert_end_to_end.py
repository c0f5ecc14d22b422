"""Issue 12 benchmark 1: from a failure to the webhook, end to end on PostgreSQL, real processes.

`traxo api` (its workers run the incident sweep, the heartbeat sweep and the alerts job) and one
`traxo-agent` probe a local HTTP target; a WEBHOOK channel of the organization points at a local
receiver. For each trial the target starts failing at a random moment of the monitor's 15-second
interval; the time until the receiver gets the monitor's "incident.opened" webhook is measured
(target: 2 x interval + 2 s). Then a HEARTBEAT monitor (every 15 s, grace 5 s) is pinged once and
left silent; the time from when its ping was due (ping + interval) to the webhook is measured
(target: grace + 2 s). Usage:

    .venv/bin/python bench/alert_end_to_end.py [--trials 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.incident_detection import BIN, GRACE_S, INTERVAL_S, REGION, free_port, insert_monitor, traxo  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "traxo_bench_alert_e2e"


def insert_channel(dsn: str, org_id: str, url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alert_channels (id, org_id, name, type, config, is_active, created_at, updated_at)"
            " VALUES ('ac_benche2e', %s, 'bench hook', 'WEBHOOK', %s, true, %s, %s)",
            (org_id, json.dumps({"url": url}), now, now),
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    failing = {"on": False}
    opened: dict[str, float] = {}  # monitor id -> when its "incident.opened" webhook arrived

    async def target(request: web.Request) -> web.Response:
        return web.Response(status=503 if failing["on"] else 200, text="bench")

    async def hook(request: web.Request) -> web.Response:
        event = await request.json()
        monitor = (event.get("data") or {}).get("monitor") or {}
        if event.get("type") == "incident.opened" and monitor.get("id"):
            opened.setdefault(monitor["id"], time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{name}", target)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    local_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", local_port).start()

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    dsn = f"postgresql://postgres@127.0.0.1:5432/{DB}"
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": dsn,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_REGIONS": REGION,
        "TRAXO_ALERTS_ALLOW_PRIVATE_URLS": "true",  # the receiver is on loopback
    }
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
    ok = True
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
            insert_channel(dsn, org_id, f"http://127.0.0.1:{local_port}/hook")

            async def webhook_of(monitor_id: str, since: float, limit: float) -> float:
                while monitor_id not in opened and time.monotonic() - since < limit:
                    await asyncio.sleep(0.05)
                return opened.get(monitor_id, float("inf")) - since

            latencies = []
            for trial in range(args.trials):
                monitor_id = f"mon_benchalert{trial}"
                url = f"http://127.0.0.1:{local_port}/t{trial}"
                insert_monitor(dsn, org_id, monitor_id, "HTTP", url, {})
                failing["on"] = False
                await asyncio.sleep(INTERVAL_S * 2 + random.uniform(0, INTERVAL_S))  # up, at a random phase
                failing["on"] = True
                latencies.append(await webhook_of(monitor_id, time.monotonic(), 120))
                failing["on"] = False
                print(
                    f"HTTP trial {trial + 1}: webhook {latencies[-1]:.1f} s after the target started failing"
                )
            target_http = 2 * INTERVAL_S + 2
            ok = ok and max(latencies) <= target_http
            print(
                f"HTTP, interval {INTERVAL_S} s: webhook within {min(latencies):.1f}-{max(latencies):.1f} s "
                f"(target {target_http} s)"
            )

            late = []
            for trial in range(args.trials):
                monitor_id = f"mon_benchalertbeat{trial}"
                insert_monitor(dsn, org_id, monitor_id, "HEARTBEAT", None, {"gracePeriod": GRACE_S})
                await asyncio.sleep(1)
                token_path = f"hb_bench{monitor_id}{'x' * 24}"
                assert (await client.get(f"/api/heartbeat/{token_path}")).status_code == 200
                due = time.monotonic() + INTERVAL_S  # the next ping was due then; grace runs from it
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                late.append(await webhook_of(monitor_id, due, 120))
                print(f"HEARTBEAT trial {trial + 1}: webhook {late[-1]:.1f} s after the ping was due")
            target_beat = GRACE_S + 2
            ok = ok and max(late) <= target_beat
            print(
                f"HEARTBEAT, every {INTERVAL_S} s, grace {GRACE_S} s: webhook {max(late):.1f} s after the "
                f"ping was due at most (target grace + 2 = {target_beat} s)"
            )
    finally:
        agent.terminate()
        api.terminate()
        agent.wait(timeout=20)
        api.wait(timeout=20)
        await runner.cleanup()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    print("targets met" if ok else "TARGET MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
