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
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "traxo_bench_ai_ingest"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DB}"
LUA = ROOT / "bench" / "ai_ingest.lua"
MONITOR_ID = "mon_benchllm0000000000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def traxo(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [str(BIN / "traxo"), *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def setup(env: dict[str, str], port: int) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    traxo("migrate", env=env)
    key = (
        traxo("users", "create", "--email", "bench@example.com", "--name", "Bench", env=env)
        .strip()
        .splitlines()[-1]
    )
    api = subprocess.Popen(
        [
            str(BIN / "traxo"),
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-workers",
            "--no-migrate",
            "--no-grpc",
        ],
        env=env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
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


def wait_ready(url: str, method: str = "GET") -> None:
    for _ in range(300):
        try:
            if httpx.request(method, url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


def wrk(url: str, seconds: float, connections: int) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(LUA), url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": rate,
        "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "p50_ms": to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "ok": total - (int(non_2xx.group(1)) if non_2xx else 0),
        "total": total,
        "socket_errors": errors.group(1) if errors else "none",  # type: ignore[dict-item]
    }


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


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
    api = subprocess.Popen(
        [
            str(BIN / "traxo"),
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
            "--no-workers",
            "--no-migrate",
            "--no-grpc",
        ],
        env=env,
    )
    noop = subprocess.Popen(
        [str(BIN / "python"), str(ROOT / "bench" / "ai_noop_app.py"), "--port", str(noop_port)]
    )
    bare = subprocess.Popen(
        [str(BIN / "python"), str(ROOT / "bench" / "ai_noop_app.py"), "--port", str(bare_port), "--bare"]
    )
    try:
        wait_ready(f"http://127.0.0.1:{api_port}/readyz")
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
                wrk(url, args.warmup, args.connections)
            time.sleep(1)  # the warm-up's requests in flight finish committing
            before = stored_events()
            results[name] = figures = wrk(url, args.seconds, args.connections)
            figures["stored_before"] = before
            print(
                f"{name}: {figures['rate']:.0f} requests/s, p50 {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms ({int(figures['ok'])} of {int(figures['total'])} answered 2xx; "
                f"socket errors: {figures['socket_errors']})"
            )
        noop_figures, bare_figures, ingest_figures = results.values()
        ratio = ingest_figures["rate"] / noop_figures["rate"]
        print(
            f"ingest / no-op: {ratio:.0%} (target >= 60%); ingest p99 {ingest_figures['p99_ms']:.1f} ms (target < 50)"
        )
        print(f"ingest / bare no-op: {ingest_figures['rate'] / bare_figures['rate']:.0%}")
        time.sleep(1)  # requests in flight when wrk stopped finish committing
        measured = stored_events() - int(ingest_figures["stored_before"])
        ok = int(ingest_figures["ok"])
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
