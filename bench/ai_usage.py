"""Issue 13 benchmark: GET /api/monitors/:id/ai-usage?period=30d over 5 million AI events.

Builds a fresh PostgreSQL database (traxo_bench_ai_usage, migrated by `traxo migrate`), one
ENTERPRISE organization with one LLM monitor, and 5,000,000 events spread over the last 30 days
(several models, one unpriced, ~2% errors, a quarter with RAG fields) COPYed into ai_events, with
their hourly rollups computed from the same generated events in the format the ingest writes
(sums and a latency histogram per hour, provider and model). Then times, through the real HTTP
API of `traxo api --no-workers`, ai-usage for each period and ai-events page 1: median and p99
of `--requests` sequential requests each, after a warm-up. Target: ai-usage?period=30d < 100 ms.

Usage: .venv/bin/python bench/ai_usage.py [--events 5000000] [--requests 50] [--reuse]
Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from bench_support import POSTGRES, free_port, psql_admin, start_api, traxo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control_plane.domain import histogram  # noqa: E402

DATABASE = "traxo_bench_ai_usage"
MONITOR_ID = "mon_bench_llm"
DAYS = 30
# model: (provider, share of events, USD per input token, per output token (None: unpriced),
#         median latency ms)
MODELS: dict[str, tuple[str, float, float | None, float | None, float]] = {
    "gpt-4o": ("openai", 0.30, 2.5e-6, 10e-6, 900.0),
    "gpt-4o-mini": ("openai", 0.30, 0.15e-6, 0.6e-6, 350.0),
    "claude-sonnet-4-20250514": ("anthropic", 0.15, 3e-6, 15e-6, 1100.0),
    "claude-3-5-haiku-latest": ("anthropic", 0.10, 0.8e-6, 4e-6, 450.0),
    "gemini-2.0-flash": ("google", 0.10, 0.1e-6, 0.4e-6, 300.0),
    "in-house-llama": ("self-hosted", 0.05, None, None, 700.0),
}
ERROR_SHARE = 0.02
NULL = "\\N"  # COPY text format's null
RAG_SHARE = 0.25

EVENT_COLUMNS = (
    "id, org_id, monitor_id, provider, model, input_tokens, output_tokens, total_tokens, cost_usd,"
    " price_version, latency_ms, status_code, status, error, rag_docs_retrieved, rag_avg_relevance,"
    " rag_retrieval_ms, rag_context_tokens, source, created_at"
)
ROLLUP_SUMS = (
    "events", "errors", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "unpriced_events",
    "latency_sum_ms", "rag_events", "rag_docs_events", "rag_docs_sum", "rag_relevance_events",
    "rag_relevance_sum", "rag_retrieval_events", "rag_retrieval_ms_sum", "rag_context_events",
    "rag_context_tokens_sum",
)  # fmt: skip


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- generated data


def generate_chunk(org_id: str, first: int, count: int, total: int, end: float, seed: int) -> dict[Any, Any]:
    """Generate events first..first+count (evenly over the 30 days before `end`, with jitter), COPY
    them, and return their rollups: {(hour epoch, provider, model): [sums..., histogram]}."""
    rng = random.Random(seed)
    span = DAYS * 86400.0
    start = end - span
    names = list(MODELS)
    weights = [MODELS[m][1] for m in names]
    cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
    rollups: dict[Any, list[Any]] = {}
    bucket_of = histogram.bucket_of
    buffer = io.StringIO()
    dsn = f"{POSTGRES}/{DATABASE}"
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ai_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
            for i in range(first, first + count):
                at = min(start + (i + rng.random()) * span / total, end - 0.001)
                pick = rng.random()
                model = names[next(k for k, c in enumerate(cumulative) if pick <= c or k == len(names) - 1)]
                provider, _, price_in, price_out, median = MODELS[model]
                tokens_in = rng.randint(50, 3000)
                tokens_out = rng.randint(10, 800)
                latency = round(median * rng.lognormvariate(0, 0.45), 1)
                cost = None if price_in is None else tokens_in * price_in + tokens_out * (price_out or 0)
                failed = rng.random() < ERROR_SHARE
                rag = rng.random() < RAG_SHARE
                docs = rng.randint(1, 10) if rag else None
                relevance = round(rng.uniform(0.4, 1.0), 3) if rag else None
                retrieval = round(rng.lognormvariate(math.log(120), 0.4), 1) if rag else None
                context = rng.randint(200, 4000) if rag else None
                moment = datetime.fromtimestamp(at, UTC)
                buffer.write(
                    f"evt_b{i:010d}\t{org_id}\t{MONITOR_ID}\t{provider}\t{model}\t{tokens_in}\t{tokens_out}\t"
                    f"{tokens_in + tokens_out}\t{NULL if cost is None else repr(cost)}\t"
                    f"{NULL if cost is None else 'bench'}\t{latency}\t{429 if failed else 200}\t"
                    f"{'error' if failed else 'success'}\t{'Rate limit exceeded' if failed else NULL}\t"
                    f"{NULL if docs is None else docs}\t{NULL if relevance is None else relevance}\t"
                    f"{NULL if retrieval is None else retrieval}\t{NULL if context is None else context}\t"
                    f"api\t{moment.isoformat()}\n"
                )
                if buffer.tell() > 1 << 20:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
                key = (int(at // 3600) * 3600, provider, model)
                sums = rollups.get(key)
                if sums is None:
                    sums = rollups[key] = [0] * len(ROLLUP_SUMS) + [{}]
                sums[0] += 1
                sums[1] += failed
                sums[2] += tokens_in
                sums[3] += tokens_out
                sums[4] += tokens_in + tokens_out
                if cost is None:
                    sums[6] += 1
                else:
                    sums[5] += cost
                sums[7] += latency
                if rag:
                    sums[8] += 1
                    sums[9] += 1
                    sums[10] += docs
                    sums[11] += 1
                    sums[12] += relevance
                    sums[13] += 1
                    sums[14] += retrieval
                    sums[15] += 1
                    sums[16] += context
                hist = sums[-1]
                bucket = str(bucket_of(latency))
                hist[bucket] = hist.get(bucket, 0) + 1
            copy.write(buffer.getvalue())
        conn.commit()
    return rollups


def load(org_id: str, events: int, end: datetime, workers: int) -> tuple[int, float]:
    started = time.monotonic()
    per = math.ceil(events / workers)
    rollups: dict[Any, list[Any]] = {}
    with ProcessPoolExecutor(workers) as pool:
        chunks = [
            pool.submit(
                generate_chunk, org_id, w * per, min(per, events - w * per), events, end.timestamp(), w
            )
            for w in range(workers)
        ]
        for chunk in chunks:
            for key, sums in chunk.result().items():
                mine = rollups.get(key)
                if mine is None:
                    rollups[key] = sums
                    continue
                for k in range(len(ROLLUP_SUMS)):
                    mine[k] += sums[k]
                histogram.merge_into(mine[-1], sums[-1])
    log(f"{events:,} events generated and COPYed in {time.monotonic() - started:.0f} s")
    with psycopg.connect(f"{POSTGRES}/{DATABASE}") as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY ai_usage_rollups (monitor_id, hour, provider, model, org_id, cached_tokens, reasoning_tokens,"
            f" {', '.join(ROLLUP_SUMS)}, latency_histogram) FROM STDIN"
        ) as copy:
            for (hour, provider, model), sums in rollups.items():
                copy.write_row(
                    (MONITOR_ID, datetime.fromtimestamp(hour, UTC), provider, model, org_id, 0, 0,
                     *sums[:-1], json.dumps(sums[-1]))
                )  # fmt: skip
        conn.commit()
    with psycopg.connect(f"{POSTGRES}/{DATABASE}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ai_events")
        conn.execute("VACUUM ANALYZE ai_usage_rollups")
    return len(rollups), time.monotonic() - started


# ---------------------------------------------------------------- database set-up


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
            org = await organizations.create_organization(
                session, user_id=user_id, name="Bench", slug="bench", plan=Plan.ENTERPRISE, now=utcnow()
            )
            return org.id
    finally:
        await db.engine.dispose()


def insert_monitor(dsn: str, org_id: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO monitors (id, org_id, name, type, url, interval, timeout, method, regions, config,"
            " is_active, created_at, updated_at) VALUES (%s, %s, 'Chat assistant', 'LLM', NULL, 300, 30,"
            " 'GET', '[]', '{}', true, %s, %s)",
            (MONITOR_ID, org_id, now, now),
        )


# ---------------------------------------------------------------- measurement


def timed(client: httpx.Client, url: str, requests: int) -> tuple[list[float], Any]:
    for _ in range(5):  # warm-up: connections, caches, plans
        response = client.get(url)
        assert response.status_code == 200, response.text
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return samples, response.json()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return f"median {statistics.median(ordered):6.1f} ms   p99 {p99:6.1f} ms   (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="processes generating events")
    parser.add_argument("--reuse", action="store_true", help="measure the database a previous run loaded")
    args = parser.parse_args()
    dsn = f"{POSTGRES}/{DATABASE}"
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": dsn,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_RATE_LIMIT_MULTIPLIER": "100000",
    }
    state_file = Path(tempfile.gettempdir()) / f"{DATABASE}.json"
    if args.reuse:
        key = json.loads(state_file.read_text())["key"]
    else:
        psql_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        psql_admin(f'CREATE DATABASE "{DATABASE}"')
        traxo(env, "migrate")
        key = traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench").strip()
        key = key.splitlines()[-1]
        org_id = asyncio.run(create_organization(dsn))
        insert_monitor(dsn, org_id)
        end = datetime.now(UTC)
        rollups, seconds = load(org_id, args.events, end, args.workers)
        log(f"loaded {args.events:,} events and {rollups:,} rollup rows in {seconds:.0f} s")
        state_file.write_text(json.dumps({"key": key}))
    port = free_port()
    api = start_api(env, port)
    try:
        base = f"http://127.0.0.1:{port}/api/monitors/{MONITOR_ID}"
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            for period in ("30d", "7d", "24h"):
                samples, body = timed(client, f"{base}/ai-usage?period={period}", args.requests)
                data = body["data"]
                log(
                    f"ai-usage?period={period:<4} {summary(samples)}   totalEvents {data['totalEvents']:,}, "
                    f"p95Latency {data['p95Latency']} ms, errorRate {data['errorRate']}%, "
                    f"{len(data['hourlyUsage'])} hours, {len(data['topModels'])} models"
                )
            samples, body = timed(client, f"{base}/ai-events?page=1&limit=20", args.requests)
            log(f"ai-events page 1   {summary(samples)}   total {body['pagination']['total']:,}")
    finally:
        api.terminate()
        api.wait(timeout=30)


if __name__ == "__main__":
    main()
