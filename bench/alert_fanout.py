"""Issue 12 benchmark 2: 1,000 monitors going down together deliver 1,000 webhooks, on PostgreSQL.

A fresh database with `--monitors` HTTP monitors (one region) and one WEBHOOK channel pointing at
a local receiver. Failing results arrive as an agent sends them (batches of 500 through
`record_results`, which evaluates each batch after it commits: incidents and their events), while
the alerts job's loop (`AlertsLoop`: fan-out and delivery, round after round) runs every
`alert_delivery_seconds` as a replica runs it. Measures the time from the first failing batch to
the last webhook received, and counts webhook-ids: each delivered once (target: 1,000 within 10 s,
none twice). The second run has the receiver fail the first attempt of every webhook (503): each
id is then seen twice and delivered once, after its backoff. Usage:

    .venv/bin/python bench/alert_fanout.py [--monitors 1000] [--mode both|ok|fail-first]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control_plane import migrate  # noqa: E402
from control_plane.alerts.job import AlertsLoop  # noqa: E402
from control_plane.core.ids import new_id  # noqa: E402
from control_plane.db import Database  # noqa: E402
from control_plane.models import Monitor, Organization  # noqa: E402
from control_plane.models.alerts import AlertChannel  # noqa: E402
from control_plane.results import ResultIn, record_results  # noqa: E402
from control_plane.settings import Settings  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "traxo_bench_alert_fanout"
REGION = "bench-1"
TARGET_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Counts webhook-ids; with `fail_first`, answers 503 to the first request of each id."""

    def __init__(self, fail_first: bool) -> None:
        self.fail_first = fail_first
        self.seen: collections.Counter[str] = collections.Counter()
        self.accepted: collections.Counter[str] = collections.Counter()
        self.last_accepted = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        self.seen[webhook_id] += 1
        if self.fail_first and self.seen[webhook_id] == 1:
            return web.Response(status=503, text="failing the first attempt")
        self.accepted[webhook_id] += 1
        self.last_accepted = time.monotonic()
        return web.Response(text="ok")


async def run(monitors: int, fail_first: bool) -> bool:
    receiver = Receiver(fail_first)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"postgresql://postgres@127.0.0.1:5432/{DB}"
    migrate.upgrade(url)
    settings = Settings(database_url=url, alerts_allow_private_urls=True)
    db = Database(url)
    await db.start()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with db.session() as session:
            org = Organization(id=new_id("org"), name="Bench", slug="bench", plan="ENTERPRISE")
            session.add(org)
            await session.flush()
            session.add(
                AlertChannel(
                    id=new_id("ac"), org_id=org.id, name="bench hook", type="WEBHOOK",
                    config={"url": f"http://127.0.0.1:{port}/hook"}, is_active=True,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            ids = [new_id("mon") for _ in range(monitors)]
            session.add_all(
                Monitor(
                    id=i, org_id=org.id, name=f"m{n}", type="HTTP", url="http://127.0.0.1:1/", interval=60,
                    timeout=10, method="GET", regions=[REGION], config={}, is_active=True,
                    created_at=now - timedelta(hours=1), updated_at=now - timedelta(hours=1),
                )
                for n, i in enumerate(ids)
            )  # fmt: skip
            await session.commit()

        def failing(monitor_id: str, k: int) -> ResultIn:
            at = now + timedelta(seconds=60 * k)
            return ResultIn(
                id=new_id("chk"), monitor_id=monitor_id, region=REGION, status="DOWN", checked_at=at,
                scheduled_at=at, response_time=10.0, status_code=503, error_kind="http_status",
                error_message="expected a 2xx status, got 503",
            )  # fmt: skip

        # What a replica's alerts job runs: passes every second, and at once when the engine
        # announces new events (its change topic).
        job = asyncio.create_task(AlertsLoop(db, settings, lambda: datetime.now(UTC)).run())
        started = time.monotonic()
        for k in range(2):  # two checks' worth (the default confirmations)
            results = [failing(m, k) for m in ids]
            for start in range(0, len(results), 500):
                async with db.session() as session:
                    await record_results(session, results[start : start + 500])
        deadline = started + 60
        while len(receiver.accepted) < monitors and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = receiver.last_accepted - started if receiver.accepted else float("inf")
        await asyncio.sleep(2)  # anything sent twice would arrive by now
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        with psycopg.connect(url) as conn:
            counts = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status <> 'delivered')"
                " FROM alert_deliveries"
            ).fetchone()
        assert counts is not None
        delivered, pending = counts
        twice = sum(1 for count in receiver.accepted.values() if count > 1)
        seen = collections.Counter(receiver.seen.values())
        print(
            f"{monitors} monitors down together{', receiver failing each first attempt' if fail_first else ''}: "
            f"{len(receiver.accepted)} webhooks accepted ({twice} accepted twice; requests per id {dict(seen)}), "
            f"{delivered} deliveries delivered, {pending} not, last one {elapsed:.2f} s after the first failing "
            f"batch (target: {monitors} within {TARGET_S:.0f} s, none twice)"
        )
        ok = len(receiver.accepted) == monitors == delivered and twice == 0 and pending == 0
        if fail_first:
            ok = ok and set(receiver.seen.values()) == {2}
        return ok and elapsed <= TARGET_S
    finally:
        await db.dispose()
        await runner.cleanup()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--mode", choices=("both", "ok", "fail-first"), default="both")
    args = parser.parse_args()
    modes = {"both": (False, True), "ok": (False,), "fail-first": (True,)}[args.mode]
    results = [await run(args.monitors, fail_first) for fail_first in modes]
    print("targets met" if all(results) else "TARGET MISSED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    asyncio.run(main())
