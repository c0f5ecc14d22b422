"""Issue 3 benchmark: the monitors list, a week's performance and the dashboard stats on ~10M results.

Builds a fresh PostgreSQL database (migrated by `traxo migrate`), one ENTERPRISE organization with
1,000 monitors, 7 days of one-minute results per monitor (COPY), the hourly rollups of those days
and 90 days of daily rollups in the exact format the rollup fold writes, then measures the three
endpoints of `traxo api --no-workers` with wrk and prints EXPLAIN (ANALYZE, BUFFERS) of their queries.

Usage: .venv/bin/python bench/monitors_api.py [--duration 15s] [--connections 8,32] [--keep]
Needs wrk (apt-get install wrk) and PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control_plane.domain import histogram  # noqa: E402
from control_plane.results import PHASES  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
REGIONS = ("us-east-1", "eu-west-1")
SEED = 3
RESULT_COLUMNS = (
    "id, monitor_id, region, status, response_time, status_code, error_kind, error_message, dns_ms, "
    "tcp_ms, tls_ms, ttfb_ms, download_ms, total_ms, size_bytes, checked_at"
)
ROLLUP_COLUMNS = "monitor_id, region, granularity, bucket_start, count, up_count, sums, counts, histograms"
NULL = "\\N"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- generated data


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    index: int
    id: str
    type: str  # HTTP | TCP
    created_at: datetime
    second: int  # each monitor checks at its own second of the minute
    base_ms: float
    size: int
    outages: tuple[tuple[int, int], ...]  # [start, end) minute offsets of DOWN stretches


def _id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}_" + base64.b32encode(rng.randbytes(17)).decode().rstrip("=").lower()


def monitor_specs(count: int, minutes: int, now: datetime) -> list[MonitorSpec]:
    rng = random.Random(SEED)
    specs = []
    for index in range(count):
        outages = []
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            start = rng.randrange(minutes)
            outages.append((start, start + rng.randint(3, 45)))
        if index % 97 == 0:  # about 1% of monitors are down right now
            outages.append((minutes - rng.randint(5, 30), minutes + 1))
        specs.append(
            MonitorSpec(
                index=index,
                id=_id(rng, "mon"),
                type="TCP" if index % 10 == 9 else "HTTP",
                created_at=now - timedelta(days=100, minutes=-index * 7),
                second=rng.randrange(60),
                base_ms=rng.lognormvariate(math.log(80), 0.6),
                size=int(rng.lognormvariate(math.log(30_000), 1.0)),
                outages=tuple(sorted(outages)),
            )
        )
    return specs


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


class _Rollup:
    __slots__ = ("count", "counts", "histograms", "sums", "up_count")

    def __init__(self) -> None:
        self.count = 0
        self.up_count = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.histograms: dict[str, dict[str, int]] = {}

    def add(self, up: bool, measures: dict[str, float], size: int | None) -> None:
        # The same arithmetic as results._RollupDelta.add, so the JSON is what record_results writes.
        self.count += 1
        self.up_count += up
        for name, value in measures.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
            histogram.add(self.histograms.setdefault(name, {}), value)
        if size is not None:
            self.sums["size"] = self.sums.get("size", 0.0) + size
            self.counts["size"] = self.counts.get("size", 0) + 1

    def merge(self, other: _Rollup) -> None:
        self.count += other.count
        self.up_count += other.up_count
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        for name, h in other.histograms.items():
            histogram.merge_into(self.histograms.setdefault(name, {}), h)

    def row(self, monitor_id: str, region: str, granularity: str, start: datetime) -> str:
        return "\t".join(
            (
                monitor_id,
                region,
                granularity,
                _ts(start),
                str(self.count),
                str(self.up_count),
                _copy_text(json.dumps(self.sums)),
                _copy_text(json.dumps(self.counts)),
                _copy_text(json.dumps(self.histograms)),
            )
        )


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\")


def _num(value: float | None) -> str:
    return NULL if value is None else repr(round(value, 3))


def load_monitors(args: tuple[list[MonitorSpec], int, int, datetime, str]) -> tuple[int, int, list[str]]:
    """Generate and COPY one chunk of monitors' results and rollups; returns rows written and last checks."""
    specs, minutes, rollup_days, now, dsn = args
    start = now - timedelta(minutes=minutes)
    results = rollups = 0
    last_checks = []
    with psycopg.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = off")
        for spec in specs:
            rng = random.Random(SEED * 1_000_003 + spec.index)
            hourly: dict[tuple[str, datetime], _Rollup] = {}
            lines = []
            outages = spec.outages
            region_factor = {"us-east-1": 1.0, "eu-west-1": rng.uniform(0.8, 1.8)}
            last = None
            for minute in range(minutes):
                region = REGIONS[minute % 2]
                checked_at = start + timedelta(minutes=minute, seconds=spec.second)
                base = spec.base_ms * region_factor[region]
                in_outage = any(a <= minute < b for a, b in outages)
                dns = rng.lognormvariate(math.log(4), 0.7)
                tcp = base * 0.15 * rng.lognormvariate(0, 0.3)
                tls = ttfb = download = size = status_code = error_kind = message = None
                if spec.type == "HTTP":
                    tls = base * 0.25 * rng.lognormvariate(0, 0.3)
                    ttfb = base * rng.lognormvariate(0, 0.4)
                    download = spec.size / 2_000 * rng.lognormvariate(0, 0.5)
                    size = int(spec.size * rng.uniform(0.97, 1.03))
                    status_code = 200
                up = not in_outage and rng.random() >= 0.002
                if not up:
                    kind = rng.random()
                    if kind < 0.4 and spec.type == "HTTP":
                        status_code, error_kind, message = 503, "http_status", "expected status 200, got 503"
                        size = 512
                    elif kind < 0.7:
                        tcp = tls = ttfb = download = size = status_code = None
                        error_kind, message = "connection", "connection refused"
                    else:
                        tls = ttfb = download = size = status_code = None
                        error_kind, message = "timeout", "no response within 30 s"
                phases = {"dns": dns, "tcp": tcp, "tls": tls, "ttfb": ttfb, "download": download}
                if error_kind == "timeout":
                    total = 30_000.0
                else:
                    total = sum(v for v in phases.values() if v is not None)
                phases = {k: (None if v is None else round(v, 3)) for k, v in phases.items()}
                total = round(total, 3)
                response_time = total
                measures = {k: v for k, v in phases.items() if v is not None}
                measures["total"] = total
                key = (region, checked_at.replace(minute=0, second=0, microsecond=0))
                rollup = hourly.get(key)
                if rollup is None:
                    rollup = hourly[key] = _Rollup()
                rollup.add(up, measures, size)
                lines.append(
                    "\t".join(
                        (
                            _id(rng, "chk"),
                            spec.id,
                            region,
                            "UP" if up else "DOWN",
                            _num(response_time),
                            NULL if status_code is None else str(status_code),
                            error_kind or NULL,
                            message or NULL,
                            _num(phases["dns"]),
                            _num(phases["tcp"]),
                            _num(phases["tls"]),
                            _num(phases["ttfb"]),
                            _num(phases["download"]),
                            _num(total),
                            NULL if size is None else str(size),
                            _ts(checked_at),
                        )
                    )
                )
                last = ("UP" if up else "DOWN", response_time, checked_at)
            assert PHASES == ("dns", "tcp", "tls", "ttfb", "download", "total")
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY check_results ({RESULT_COLUMNS}) FROM STDIN") as copy:
                    copy.write("\n".join(lines) + "\n")
                rollup_lines = [
                    r.row(spec.id, region, "hour", hour) for (region, hour), r in sorted(hourly.items())
                ]
                rollup_lines += _daily_rows(spec.id, hourly, now, rollup_days)
                with cursor.copy(f"COPY check_rollups ({ROLLUP_COLUMNS}) FROM STDIN") as copy:
                    copy.write("\n".join(rollup_lines) + "\n")
            conn.commit()
            results += len(lines)
            rollups += len(rollup_lines)
            assert last is not None
            last_checks.append(f"{spec.id}\t{last[0]}\t{_num(last[1])}\t{_ts(last[2])}")
    return results, rollups, last_checks


def _daily_rows(
    monitor_id: str, hourly: dict[tuple[str, datetime], _Rollup], now: datetime, days: int
) -> list[str]:
    """Days with raw results sum their hours; older days (no raw results kept) repeat a full day's."""
    daily: dict[tuple[str, datetime], _Rollup] = {}
    for (region, hour), rollup in sorted(hourly.items()):
        day = hour.replace(hour=0)
        daily.setdefault((region, day), _Rollup()).merge(rollup)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = min(day for _, day in daily)
    full_days = sorted(day for region, day in daily if region == REGIONS[0] and first < day < today)
    rows = [r.row(monitor_id, region, "day", day) for (region, day), r in sorted(daily.items())]
    for back in range(1, days if full_days else 0):  # --days 1 has no full day to repeat
        day = today - timedelta(days=back)
        if day >= first:
            continue
        source = full_days[back % len(full_days)]
        for region in REGIONS:
            rows.append(daily[(region, source)].row(monitor_id, region, "day", day))
    return rows


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


def psql_admin(statement: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def traxo(env: dict[str, str], *arguments: str) -> str:
    return subprocess.run(
        [str(ROOT / ".venv/bin/traxo"), *arguments], env=env, check=True, capture_output=True, text=True
    ).stdout


def start_api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    api = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/traxo"),
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-migrate",
            "--no-workers",
        ],
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return api
        except OSError:
            time.sleep(0.2)
    api.kill()
    raise SystemExit("the API did not become ready within 30 s")


def stop_api(api: subprocess.Popen[bytes]) -> None:
    api.terminate()
    try:
        api.wait(10)
    except subprocess.TimeoutExpired:
        api.kill()
        api.wait()


def api_request(port: int, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _constraint_ddl(conn: psycopg.Connection, table: str) -> tuple[list[str], list[str]]:
    """The statements that drop and re-create a table's indexes and constraints (for a bulk load)."""
    drops, creates = [], []
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
        "WHERE conrelid = %s::regclass ORDER BY contype DESC",  # p before f: the key first
        (table,),
    ).fetchall()
    for name, definition, _kind in constraints:
        drops.append(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        creates.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    drops.reverse()
    named = {name for name, _, _ in constraints}
    for name, definition in conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
    ).fetchall():
        if name not in named:
            drops.append(f"DROP INDEX {name}")
            creates.append(definition)
    # Other tables' foreign keys to this one depend on its key: off first, back on last.
    for other, name, definition in conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE confrelid = %s::regclass AND conrelid <> confrelid",
        (table,),
    ).fetchall():
        drops.insert(0, f"ALTER TABLE {other} DROP CONSTRAINT {name}")
        creates.append(f"ALTER TABLE {other} ADD CONSTRAINT {name} {definition}")
    return drops, creates


def load(dsn: str, org_id: str, monitors: int, minutes: int, rollup_days: int, now: datetime) -> dict:
    specs = monitor_specs(monitors, minutes, now)
    started = time.monotonic()
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy(
            "COPY monitors (id, org_id, name, type, url, interval, timeout, method, expected_status, "
            "regions, config, is_active, created_at, updated_at) FROM STDIN"
        ) as copy:
            for spec in specs:
                url = (
                    f"https://service-{spec.index}.example.com/health"
                    if spec.type == "HTTP"
                    else f"tcp://db-{spec.index}.example.com:5432"
                )
                copy.write_row(
                    (
                        spec.id,
                        org_id,
                        f"Service {spec.index}",
                        spec.type,
                        url,
                        60,
                        30,
                        "GET",
                        200 if spec.type == "HTTP" else None,
                        json.dumps(list(REGIONS)),
                        "{}",
                        True,
                        spec.created_at,
                        spec.created_at,
                    )
                )
        with conn.cursor().copy(
            "COPY incidents (id, org_id, monitor_id, started_at, resolved_at, cause) FROM STDIN"
        ) as copy:
            rng = random.Random(SEED + 1)
            start = now - timedelta(minutes=minutes)
            for spec in specs:
                for a, b in spec.outages:
                    resolved = start + timedelta(minutes=b) if b <= minutes else None
                    if resolved is not None and resolved > now:
                        resolved = None
                    copy.write_row(
                        (
                            _id(rng, "inc"),
                            org_id,
                            spec.id,
                            start + timedelta(minutes=a),
                            resolved,
                            "Connection refused",
                        )
                    )
        drops, creates = _constraint_ddl(conn, "check_results")
        for statement in drops:
            conn.execute(statement)
        conn.commit()
    log(f"{monitors} monitors written; generating and copying results in 2 processes")
    chunks = [specs[i : i + 25] for i in range(0, len(specs), 25)]
    results = rollups = 0
    last_checks: list[str] = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        for n, (r, u, lc) in enumerate(
            pool.map(load_monitors, [(chunk, minutes, rollup_days, now, dsn) for chunk in chunks]), 1
        ):
            results, rollups = results + r, rollups + u
            last_checks += lc
            if n % 8 == 0:
                log(f"  {results:,} results, {rollups:,} rollups ({time.monotonic() - started:.0f} s)")
    copied = time.monotonic() - started
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TEMP TABLE last_checks "
            "(id text, status text, response_time float8, checked_at timestamptz)"
        )
        with conn.cursor().copy("COPY last_checks FROM STDIN") as copy:
            copy.write("\n".join(last_checks) + "\n")
        conn.execute(
            "UPDATE monitors m SET last_check_status = l.status, last_check_response_time = l.response_time, "
            "last_checked_at = l.checked_at FROM last_checks l WHERE m.id = l.id"
        )
        conn.execute("SET maintenance_work_mem = '1GB'")
        for statement in creates:
            log(f"  {statement[:110]}")
            conn.execute(statement)
        conn.commit()
    indexed = time.monotonic() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return {
        "results": results,
        "rollups": rollups,
        "copy_seconds": copied,
        "index_seconds": indexed - copied,
        "vacuum_seconds": time.monotonic() - started - indexed,
        "total_seconds": time.monotonic() - started,
        "ids": [spec.id for spec in specs],
    }


def sizes(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = [
            (
                "database",
                conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0],
            )
        ]
        for table in ("check_results", "check_rollups", "monitors", "incidents"):
            rows.append(
                (
                    table,
                    conn.execute(
                        "SELECT pg_size_pretty(pg_table_size(%s::regclass)) || ' + ' || "
                        "pg_size_pretty(pg_indexes_size(%s::regclass)) || ' indexes'",
                        (table, table),
                    ).fetchone()[0],
                )
            )
    return rows


# ---------------------------------------------------------------- measurement

PERFORMANCE_LUA = """
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(os.time() * 7 + (seed or 0)) end
function request()
  return wrk.format("GET", "/api/monitors/" .. ids[math.random(#ids)] .. "/performance?hours=168")
end
"""


def wrk(port: int, key: str, path: str, connections: int, duration: str, script: str | None) -> dict:
    command = [
        "wrk",
        f"-t{min(2, connections)}",  # wrk needs a connection per thread
        f"-c{connections}",
        f"-d{duration}",
        "--latency",
        "-H",
        f"Authorization: Bearer {key}",
    ]
    if script:
        command += ["-s", script]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], check=True, capture_output=True, text=True
    ).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for label in ("50%", "90%", "99%"):
        figures[label] = re.search(rf"{label}\s+([\d.]+\w+)", output).group(1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: .*", output)
    figures["non2xx"] = int(bad.group(1)) if bad else 0
    figures["socket_errors"] = errors.group(0) if errors else ""
    return figures


def explain(dsn: str, org_id: str, monitor_id: str, now: datetime) -> None:
    """The services' queries, written out as the ORM sends them (monitors.list, history.*)."""
    since_hour = (now - timedelta(hours=168)).replace(minute=0, second=0, microsecond=0)
    since_day = (now - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = since_hour.replace(hour=0)
    if first_day < since_hour:
        first_day += timedelta(days=1)
    queries = {
        "list_monitors": (
            "SELECT id, name, url, type, interval, is_active, method, timeout, CAST(regions AS TEXT), "
            "created_at, last_check_status, last_check_response_time, last_checked_at, heartbeat_token "
            "FROM monitors WHERE org_id = %(org)s ORDER BY created_at DESC, id",
            {},
        ),
        # One statement (history._performance_rows): hourly rollups, p95 histograms, queued results.
        "performance (168 h): hourly series + p95 histograms + queued results": (
            "SELECT kind, at, count, sums, counts, histograms FROM ("
            "SELECT 0 AS kind, bucket_start AS at, count, CAST(sums AS TEXT) AS sums,"
            " CAST(counts AS TEXT) AS counts, NULL::text AS histograms, region FROM check_rollups "
            "WHERE monitor_id = %(monitor)s AND granularity = 'hour' AND bucket_start >= %(since_hour)s "
            "UNION ALL SELECT 1, bucket_start, count, NULL, NULL, CAST(histograms AS TEXT), region "
            "FROM check_rollups WHERE monitor_id = %(monitor)s AND ("
            "(granularity = 'hour' AND bucket_start >= %(since_hour)s AND bucket_start < %(first_day)s) "
            "OR (granularity = 'day' AND bucket_start >= %(first_day)s)) "
            "UNION ALL SELECT 2, checked_at, 1, NULL, NULL, NULL, region FROM rollup_backlog "
            "WHERE monitor_id = %(monitor)s AND checked_at >= %(since_hour)s"
            ") AS rows ORDER BY kind, at, region",
            {},
        ),
        "dashboard: monitor counts": (
            "SELECT count(*), count(*) FILTER (WHERE is_active AND last_check_status = 'DOWN') "
            "FROM monitors WHERE org_id = %(org)s",
            {},
        ),
        # dashboard._up_counts: daily rollups plus queued results, summed per monitor.
        "dashboard: uptime of the closed days (cached for a minute)": (
            "SELECT monitor_id, sum(up), sum(total) FROM ("
            "SELECT r.monitor_id, r.up_count AS up, r.count AS total FROM check_rollups r "
            "JOIN monitors m ON m.id = r.monitor_id WHERE m.org_id = %(org)s AND r.granularity = 'day' "
            "AND r.bucket_start >= %(since_day)s AND r.bucket_start < %(midnight)s "
            "UNION ALL SELECT b.monitor_id, CASE WHEN b.up THEN 1 ELSE 0 END, 1 FROM rollup_backlog b "
            "JOIN monitors m ON m.id = b.monitor_id WHERE m.org_id = %(org)s "
            "AND b.checked_at >= %(since_day)s AND b.checked_at < %(midnight)s"
            ") AS counted GROUP BY monitor_id",
            {},
        ),
        "dashboard: uptime today (every request)": (
            "SELECT monitor_id, sum(up), sum(total) FROM ("
            "SELECT r.monitor_id, r.up_count AS up, r.count AS total FROM check_rollups r "
            "JOIN monitors m ON m.id = r.monitor_id WHERE m.org_id = %(org)s AND r.granularity = 'day' "
            "AND r.bucket_start >= %(midnight)s "
            "UNION ALL SELECT b.monitor_id, CASE WHEN b.up THEN 1 ELSE 0 END, 1 FROM rollup_backlog b "
            "JOIN monitors m ON m.id = b.monitor_id WHERE m.org_id = %(org)s AND b.checked_at >= %(midnight)s"
            ") AS counted GROUP BY monitor_id",
            {},
        ),
        "dashboard: incidents today": (
            "SELECT count(*) FROM incidents WHERE org_id = %(org)s AND started_at >= %(midnight)s",
            {},
        ),
    }
    params = {
        "org": org_id,
        "monitor": monitor_id,
        "since_hour": since_hour,
        "since_day": since_day,
        "first_day": first_day,
        "midnight": now.replace(hour=0, minute=0, second=0, microsecond=0),
    }
    with psycopg.connect(dsn) as conn:
        for label, (sql, _) in queries.items():
            print(f"\n-- EXPLAIN (ANALYZE, BUFFERS) {label}")
            for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall():
                print("   " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7, help="days of one-minute raw results")
    parser.add_argument("--rollup-days", type=int, default=90, help="days of daily rollups")
    parser.add_argument("--duration", default="15s", help="wrk duration per endpoint and concurrency")
    parser.add_argument("--connections", default="8,32")
    parser.add_argument("--database", default="traxo_bench_monitors")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--keep", action="store_true", help="keep the database (default: drop it at the end)")
    parser.add_argument("--reuse", action="store_true", help="measure an already loaded --keep database")
    args = parser.parse_args()

    dsn = f"{SERVER}/{args.database}"
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": dsn,
        "TRAXO_LOG_LEVEL": "warning",
        # The budget is scaled so wrk measures the limiter's cost without being stopped by it.
        "TRAXO_RATE_LIMIT_MULTIPLIER": "100000",
    }
    state_file = Path(tempfile.gettempdir()) / f"{args.database}.json"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    if not args.reuse:
        psql_admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        psql_admin(f'CREATE DATABASE "{args.database}"')
        traxo(env, "migrate")
        key = (
            traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench")
            .strip()
            .splitlines()[-1]
        )
        org_id = asyncio.run(create_organization(dsn))
        log(f"database {args.database} migrated; organization {org_id} on ENTERPRISE")
        loaded = load(dsn, org_id, args.monitors, args.days * 1440, args.rollup_days, now)
        state_file.write_text(
            json.dumps({"key": key, "org_id": org_id, "ids": loaded["ids"], "now": now.isoformat()})
        )
        print(
            f"\nLoaded {loaded['results']:,} results and {loaded['rollups']:,} rollups in "
            f"{loaded['total_seconds']:.0f} s (generate + COPY {loaded['copy_seconds']:.0f} s, "
            f"indexes and constraints {loaded['index_seconds']:.0f} s, "
            f"VACUUM ANALYZE {loaded['vacuum_seconds']:.0f} s)"
        )
    state = json.loads(state_file.read_text())
    key, org_id, ids = state["key"], state["org_id"], state["ids"]
    for name, size in sizes(dsn):
        print(f"  size {name}: {size}")

    ids_file = Path(tempfile.gettempdir()) / f"{args.database}.ids"
    ids_file.write_text("\n".join(ids) + "\n")
    script = Path(tempfile.gettempdir()) / f"{args.database}.lua"
    script.write_text(PERFORMANCE_LUA)
    env_wrk = {**os.environ, "BENCH_IDS": str(ids_file)}
    os.environ.update(env_wrk)
    api = start_api(env, args.port)
    try:
        listed = api_request(args.port, key, "GET", "/api/monitors")["data"]
        assert len(listed) == args.monitors and listed[0]["lastCheck"] is not None, "unexpected /api/monitors"
        perf = api_request(args.port, key, "GET", f"/api/monitors/{ids[0]}/performance?hours=168")["data"]
        stats = api_request(args.port, key, "GET", "/api/dashboard/stats")["data"]
        print(
            f"  sample: performance sampleCount={perf['sampleCount']} points={len(perf['timeSeries'])} "
            f"p95.total={perf['p95']['total']}; stats={stats}"
        )
        endpoints = [
            ("GET /api/monitors", "/api/monitors", None),
            ("GET /api/monitors/{id}/performance?hours=168", "/", str(script)),
            ("GET /api/dashboard/stats", "/api/dashboard/stats", None),
        ]
        print("\n| endpoint | connections | requests/s | p50 | p90 | p99 |\n|---|---|---|---|---|---|")
        for label, path, lua in endpoints:
            wrk(args.port, key, path, 8, "3s", lua)  # warm-up
            for connections in (int(c) for c in args.connections.split(",")):
                f = wrk(args.port, key, path, connections, args.duration, lua)
                extra = (
                    f" (non-2xx {f['non2xx']}) {f['socket_errors']}"
                    if f["non2xx"] or f["socket_errors"]
                    else ""
                )
                print(
                    f"| `{label}` | {connections} | {f['rps']:,.0f} | {f['50%']} | {f['90%']} "
                    f"| {f['99%']} |{extra}",
                    flush=True,
                )
    finally:
        stop_api(api)
    explain(dsn, org_id, ids[len(ids) // 2], datetime.now(UTC))
    if not args.keep:
        psql_admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        for leftover in (state_file, ids_file, script):
            leftover.unlink(missing_ok=True)
        print(f"\ndatabase {args.database} dropped")


if __name__ == "__main__":
    main()
