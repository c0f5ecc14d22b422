"""Issue 11 benchmark 3: 1,000 monitors going down at once, on PostgreSQL.

A fresh database with `--monitors` HTTP monitors in `--regions` regions (quorum: a majority). Each
region's agent delivers its failing results as agents do: batches of up to 500 through the
results path (`record_results`, which evaluates each batch after it commits), the regions'
streams concurrently, two failures per monitor and region (the default confirmations). Measures
the time from the first batch to the last incident, and checks that every monitor has exactly
one open incident and one "incident.opened" event. Usage:

    .venv/bin/python bench/incidents_at_once.py [--monitors 1000] [--regions 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control_plane import migrate  # noqa: E402
from control_plane.core.ids import new_id  # noqa: E402
from control_plane.db import Database  # noqa: E402
from control_plane.models import Monitor, Organization  # noqa: E402
from control_plane.results import ResultIn, record_results  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "traxo_bench_incidents"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=2)
    args = parser.parse_args()
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"postgresql://postgres@127.0.0.1:5432/{DB}"
    migrate.upgrade(url)
    db = Database(url)
    await db.start()
    regions = [f"bench-{i}" for i in range(args.regions)]
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with db.session() as session:
            org = Organization(id=new_id("org"), name="Bench", slug="bench", plan="ENTERPRISE")
            session.add(org)
            await session.flush()
            ids = [new_id("mon") for _ in range(args.monitors)]
            session.add_all(
                Monitor(
                    id=i, org_id=org.id, name=f"m{n}", type="HTTP", url="http://127.0.0.1:1/", interval=60,
                    timeout=10, method="GET", regions=regions, config={}, is_active=True,
                    created_at=now - timedelta(hours=1), updated_at=now - timedelta(hours=1),
                )
                for n, i in enumerate(ids)
            )  # fmt: skip
            await session.commit()

        def failing(monitor_id: str, region: str, k: int) -> ResultIn:
            at = now + timedelta(seconds=60 * k)
            return ResultIn(
                id=new_id("chk"), monitor_id=monitor_id, region=region, status="DOWN", checked_at=at,
                scheduled_at=at, response_time=10.0, status_code=503, error_kind="http_status",
                error_message="expected a 2xx status, got 503",
            )  # fmt: skip

        async def region_stream(region: str) -> None:
            for k in range(2):  # two checks' worth, in the order an agent would send them
                results = [failing(m, region, k) for m in ids]
                for start in range(0, len(results), 500):
                    async with db.session() as session:
                        await record_results(session, results[start : start + 500])

        started = time.monotonic()
        await asyncio.gather(*(region_stream(r) for r in regions))
        elapsed = time.monotonic() - started
        with psycopg.connect(url) as conn:
            incidents, monitors_with, opened_events, distinct_opened = conn.execute(
                "SELECT (SELECT count(*) FROM incidents), (SELECT count(DISTINCT monitor_id) FROM incidents),"
                " (SELECT count(*) FROM incident_events WHERE type = 'incident.opened'),"
                " (SELECT count(DISTINCT incident_id) FROM incident_events WHERE type = 'incident.opened')"
            ).fetchone()
        total = args.monitors * args.regions * 2
        print(
            f"{args.monitors} monitors x {args.regions} regions going down ({total} failing results in "
            f"batches of 500, regions concurrently): {incidents} incidents for {monitors_with} monitors, "
            f"{opened_events} opened events ({distinct_opened} distinct) in {elapsed:.2f} s "
            f"(target: {args.monitors} and {args.monitors}, none twice, within 10 s)"
        )
        assert incidents == monitors_with == opened_events == distinct_opened == args.monitors
    finally:
        await db.dispose()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
