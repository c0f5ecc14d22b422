"""Issue 13 benchmark: durable single-event AI ingest (POST /api/ai/ingest/{monitorId}) on
PostgreSQL, side by side with a no-op endpoint that validates the same body (bench/ai_noop_app.py).

Creates and migrates a fresh database (traxo_bench_ai_ingest) with an ENTERPRISE organization and
an LLM monitor, starts the real `traxo api` (no workers) and the no-op app, both one uvicorn
process, then runs wrk with bench/ai_ingest.lua at --connections for --seconds on each (after a
short warm-up), and on the same validation as a bare ASGI app (how the ingest itself is served:
the durable write's own cost shows against it). Prints requests/s and p99 for each, the ratios, and checks that the events stored
equal the 200s answered (wrk stops with up to one request per connection in flight: those may be
stored without their answer being counted). Target: ingest >= 60% of the no-op's rate, p99 < 50 ms.

    .venv/bin/python bench/ai_ingest.py [--seconds 20] [--connections 64] [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import httpx
import psycopg
from bench_support import BIN, POSTGRES, ROOT, free_port, psql_admin, start_api, traxo, wait_ready, wrk

DB = "traxo_bench_ai_ingest"
DSN = f"{POSTGRES}/{DB}"
LUA = ROOT / "bench" / "ai_ingest.lua"
MONITOR_ID = "mon_benchllm0000000000000000"


def setup(env: dict[str, str], port: int) -> None:
    psql_admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql_admin(f"CREATE DATABASE {DB}")
    traxo(env, "migrate")
    key = (
        traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench")
        .strip()
        .splitlines()[-1]
    )
    api = start_api(env, port, "--no-grpc")
    try:
        headers = {"Authorization": f"Bearer {key}"}
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/organization",
            json={"name": "Bench", "slug": "bench"},
            headers=headers,
        )
        created.raise_for_status()
    finally:
        api.terminate()
        api.wait()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("UPDATE organizations SET plan = 'ENTERPRISE'")  # 1,000,000 events a day
        org_id = conn.execute("SELECT id FROM organizations").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO monitors (id, org_id, name, type, url, interval, timeout, method, regions, config, "
            "is_active, created_at, updated_at) VALUES (%s, %s, 'Bench LLM', 'LLM', NULL, 60, 30, 'GET', "
            "'[]', '{}', true, now(), now())",
            (MONITOR_ID, org_id),
        )


def stored_events() -> int:
    with psycopg.connect(DSN) as conn:
        return int(conn.execute("SELECT count(*) FROM ai_events").fetchone()[0])  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=3)
    args = parser.parse_args()
    env = {**os.environ, "TRAXO_DATABASE_URL": DSN, "TRAXO_LOG_LEVEL": "warning"}
    api_port, noop_port, bare_port = free_port(), free_port(), free_port()
    setup(env, api_port)
    api = start_api(env, api_port, "--no-grpc")
    noop = subprocess.Popen(
        [str(BIN / "python"), str(ROOT / "bench" / "ai_noop_app.py"), "--port", str(noop_port)]
    )
    bare = subprocess.Popen(
        [str(BIN / "python"), str(ROOT / "bench" / "ai_noop_app.py"), "--port", str(bare_port), "--bare"]
    )
    try:
        wait_ready(f"http://127.0.0.1:{noop_port}/api/ai/ingest/x", "POST")
        wait_ready(f"http://127.0.0.1:{bare_port}/api/ai/ingest/x", "POST")
        targets = {
            "no-op (validate, constant answer)": f"http://127.0.0.1:{noop_port}/api/ai/ingest/{MONITOR_ID}",
            "no-op as bare ASGI (as the ingest is served)": f"http://127.0.0.1:{bare_port}/api/ai/ingest/x",
            "ingest (durable, group commit)": f"http://127.0.0.1:{api_port}/api/ai/ingest/{MONITOR_ID}",
        }
        results: dict[str, dict[str, float]] = {}
        for name, url in targets.items():
            if args.warmup:
                wrk(url, args.warmup, args.connections, "-s", str(LUA))
            time.sleep(1)  # the warm-up's requests in flight finish committing
            before = stored_events()
            results[name] = figures = wrk(url, args.seconds, args.connections, "-s", str(LUA))
            figures["stored_before"] = before
            print(
                f"{name}: {figures['rate']:.0f} requests/s, p50 {figures['p50']:.1f} ms, "
                f"p99 {figures['p99']:.1f} ms ({figures['total'] - figures['non_2xx']} of {figures['total']} "
                "answered 2xx; "
                f"socket errors: {figures['socket_errors']})"
            )
        noop_figures, bare_figures, ingest_figures = results.values()
        ratio = ingest_figures["rate"] / noop_figures["rate"]
        print(
            f"ingest / no-op: {ratio:.0%} (target >= 60%); ingest p99 {ingest_figures['p99']:.1f} ms (target < 50)"
        )
        print(f"ingest / bare no-op: {ingest_figures['rate'] / bare_figures['rate']:.0%}")
        time.sleep(1)  # requests in flight when wrk stopped finish committing
        measured = stored_events() - int(ingest_figures["stored_before"])
        ok = int(ingest_figures["total"] - ingest_figures["non_2xx"])
        print(
            f"stored during the measured run: {measured}, 200s counted by wrk: {ok} "
            f"(at most {args.connections} in flight at the end may be stored without a counted answer)"
        )
        if not ok <= measured <= ok + args.connections:
            raise SystemExit("stored events do not match the 200 answers")
    finally:
        for process in (api, noop, bare):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
