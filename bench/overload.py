"""Issue 16 benchmark: ingest at twice the sustainable rate, then the load dropped.

One fresh PostgreSQL database (traxo_bench_overload: --organizations ENTERPRISE organizations with
an LLM monitor each, --monitors HTTP monitors of the first in one region and its agent token) and
one `traxo api --no-workers`.

AI events (POST /api/ai/ingest/{monitorId}, batches of --batch events, each with its own eventId, to
the organizations' monitors in turn: one organization's 1,000,000 a day would end a 60 s overload
in the plan's 429s):
1. sustainable: --connections clients back to back for --measure seconds; the events answered 200
   per second are the sustainable rate S;
2. overload: requests paced to 2 S events/s for --seconds (open loop: a request is sent on time
   whether or not the earlier ones were answered, up to --max-in-flight at once; one that would
   pass that is counted as not sent); every second the API's RSS and the answers' statuses;
3. recovery: S / 2 for --recovery seconds: how soon the 503s stop, and the latency then.
Every eventId answered 200 is then looked up in ai_events: none may be missing, none stored twice.

Agents' results (gRPC StreamResults, --agents simulated agents of bench/agents_at_scale.py, the
agent's batches of 500 and window of 8): the rate acknowledged while the agents' spools are never
empty is the sustainable rate; then 2x that for --seconds (the server stores a few batches per
stream at once and reads no more meanwhile: the excess must wait in the agents' spools, not in the
server), RSS and spools every second; then no new results, and the time until the spools are
drained. Every result acknowledged is then looked up in check_results.

    .venv/bin/python bench/overload.py                      # 60 s of overload for each
    .venv/bin/python bench/overload.py --seconds 5 --measure 3 --recovery 3 --monitors 200  # smoke

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth). Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import psycopg
from agent_soak import create_organization, process_tree, rss_kb
from agents_at_scale import BATCH_SIZE, WINDOW, Fleet, Sampler, SimulatedAgent, Tally, start_control_plane
from bench_support import COPY_MONITORS, POSTGRES, psql_admin, stop, traxo

DATABASE = "traxo_bench_overload"
DSN = f"{POSTGRES}/{DATABASE}"
REGION = "bench-overload"


def llm_monitor(k: int) -> str:
    """Organization k's LLM monitor (the organizations take turns: ENTERPRISE's 1,000,000 events a
    day, each, would otherwise end a 60 s run at 2x the sustainable rate in 429s)."""
    return f"mon_overloadllm{k:012d}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def more_organizations(count: int) -> list[str]:
    """`count` more ENTERPRISE organizations, each of a user of its own (one organization a user)."""
    from control_plane.core.timefmt import utcnow
    from control_plane.db import Database
    from control_plane.services import accounts, organizations
    from control_plane.settings import Plan, async_database_url

    db = Database(async_database_url(DSN))
    made = []
    try:
        async with db.sessions() as session:
            for k in range(1, count + 1):
                user, _ = await accounts.create_user(
                    session, email=f"bench{k}@example.com", name=f"Bench {k}", now=utcnow()
                )
                org = await organizations.create_organization(
                    session, user_id=user.id, name=f"Bench {k}", slug=f"bench-{k}", plan=Plan.ENTERPRISE,
                    now=utcnow(),
                )  # fmt: skip
                made.append(org.id)
        return made
    finally:
        await db.engine.dispose()


def build_database(env: dict[str, str], monitors: int, organizations: int) -> str:
    """The organizations, an LLM monitor each, `monitors` HTTP monitors of the first in REGION; the
    agent token."""
    psql_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    psql_admin(f'CREATE DATABASE "{DATABASE}"')
    traxo(env, "migrate")
    traxo(env, "users", "create", "--email", "bench@example.com", "--name", "Bench")
    token = traxo(env, "agents", "create-token", "--region", REGION).strip().splitlines()[-1]
    org_id = asyncio.run(create_organization(DSN))
    org_ids = [org_id, *asyncio.run(more_organizations(organizations - 1))]
    now = datetime.now(UTC)
    with psycopg.connect(DSN) as conn, conn.cursor() as cur:
        with cur.copy(COPY_MONITORS) as copy:
            for k, owner in enumerate(org_ids):
                copy.write_row(
                    (llm_monitor(k), owner, "LLM", "LLM", None, 60, 30, "GET", "[]", "{}", True, now, now)
                )
            for i in range(monitors):
                copy.write_row(
                    (f"mon_overload{i:06d}", org_id, f"http {i}", "HTTP", "http://127.0.0.1:9/", 60, 10, "GET",
                     json.dumps([REGION]), "{}", True, now, now)
                )  # fmt: skip
        conn.commit()
    return token


# ---------------------------------------------------------------- AI events over HTTP


@dataclass
class Second:
    """One second of a phase: answers by status, the API's RSS at its end, latencies of 200s."""

    statuses: Counter[int] = field(default_factory=Counter)
    rss_mb: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    not_sent: int = 0


class AiLoad:
    """Batches of events posted to the ingest, each event with an eventId of its own, to each of
    `urls` in turn."""

    def __init__(self, urls: list[str], batch: int, session: aiohttp.ClientSession) -> None:
        self.urls, self.batch, self.session = urls, batch, session
        self.sequence = 0
        self.acknowledged: list[str] = []  # eventIds of events answered 200
        self.retry_after: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def body(self) -> tuple[bytes, list[str]]:
        self.sequence += 1
        ids = [f"b{self.sequence}-{j}" for j in range(self.batch)]
        events = [
            {"provider": "openai", "model": "gpt-4o", "promptTokens": 120, "completionTokens": 40,
             "latencyMs": 900, "eventId": event_id}
            for event_id in ids
        ]  # fmt: skip
        return json.dumps({"events": events}).encode(), ids

    async def post(self, second: Second) -> None:
        body, ids = self.body()
        url = self.urls[self.sequence % len(self.urls)]
        started = time.monotonic()
        try:
            async with self.session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                second.statuses[response.status] += 1
                if response.status == 200:
                    self.acknowledged.extend(ids)
                    second.latencies_ms.append(1000 * (time.monotonic() - started))
                elif response.status in (429, 503):
                    self.retry_after[response.headers.get("Retry-After", "none")] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors[type(exc).__name__] += 1
            second.statuses[0] += 1

    async def closed_loop(self, connections: int, seconds: float) -> list[Second]:
        seconds_seen: list[Second] = []
        deadline = time.monotonic() + seconds
        started = time.monotonic()

        def current() -> Second:
            index = int(time.monotonic() - started)
            while len(seconds_seen) <= index:
                seconds_seen.append(Second())
            return seconds_seen[index]

        async def client() -> None:
            while time.monotonic() < deadline:
                await self.post(current())

        await asyncio.gather(*(client() for _ in range(connections)))
        return seconds_seen[: int(seconds)]

    async def paced(self, events_per_s: float, seconds: float, max_in_flight: int, pid: int) -> list[Second]:
        """Open loop: a request every batch / rate seconds, answered or not (up to max_in_flight)."""
        interval = self.batch / events_per_s
        seconds_seen: list[Second] = []
        running: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        next_at = started
        while (now := time.monotonic()) < started + seconds:
            index = int(now - started)
            while len(seconds_seen) <= index:
                if seconds_seen:
                    seconds_seen[-1].rss_mb = rss_mb(pid)
                seconds_seen.append(Second())
            if next_at > now:
                await asyncio.sleep(next_at - now)
                continue
            next_at += interval
            if len(running) >= max_in_flight:
                seconds_seen[index].not_sent += 1
                continue
            task = asyncio.create_task(self.post(seconds_seen[index]))
            running.add(task)
            task.add_done_callback(running.discard)
        seconds_seen[-1].rss_mb = rss_mb(pid)
        await asyncio.gather(*running)
        return seconds_seen


def rss_mb(pid: int) -> float:
    return sum(rss_kb(p) for p in process_tree(pid)) / 1024


def events_per_s(seconds: list[Second], batch: int) -> float:
    return sum(s.statuses[200] for s in seconds) * batch / max(1, len(seconds))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else (values[0] if values else 0.0)


def print_seconds(label: str, seconds: list[Second], batch: int) -> None:
    print(
        f"\n{label}\n| s | RSS MB | events 200/s | requests 200 | 503 | 429 | other | not sent | p99 ms (200s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, s in enumerate(seconds):
        other = sum(v for k, v in s.statuses.items() if k not in (200, 429, 503))
        print(
            f"| {n} | {s.rss_mb:.0f} | {s.statuses[200] * batch:,} | {s.statuses[200]} | {s.statuses[503]} | "
            f"{s.statuses[429]} | {other} | {s.not_sent} | {p99(s.latencies_ms):.0f} |"
        )


def stored_event_ids(organizations: int) -> Counter[str]:
    with psycopg.connect(DSN) as conn:
        monitors = [llm_monitor(k) for k in range(organizations)]
        rows = conn.execute("SELECT client_event_id FROM ai_events WHERE monitor_id = ANY(%s)", (monitors,))
        return Counter(row[0] for row in rows)


async def ai_phases(base: str, pid: int, args: argparse.Namespace) -> None:
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=args.max_in_flight + args.connections)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        urls = [f"{base}/api/ai/ingest/{llm_monitor(k)}" for k in range(args.organizations)]
        load = AiLoad(urls, args.batch, session)
        await load.closed_loop(args.connections, 2)  # warm-up
        measured = await load.closed_loop(args.connections, args.measure)
        sustainable = events_per_s(measured, args.batch)
        log(f"AI ingest sustainable: {sustainable:,.0f} events/s ({args.connections} clients back to back)")
        overload = await load.paced(2 * sustainable, args.seconds, args.max_in_flight, pid)
        print_seconds(f"AI ingest at 2 x {sustainable:,.0f} = {2 * sustainable:,.0f} events/s offered", overload,
                      args.batch)  # fmt: skip
        recovery = await load.paced(sustainable / 2, args.recovery, args.max_in_flight, pid)
        print_seconds(f"recovery at {sustainable / 2:,.0f} events/s", recovery, args.batch)
    statuses = Counter[int]()
    for s in overload:
        statuses.update(s.statuses)
    first_clean = next((n for n, s in enumerate(recovery) if not s.statuses[503] and not s.not_sent), None)
    time.sleep(1)  # nothing in flight remains; the last groups are committed
    stored = stored_event_ids(args.organizations)
    acknowledged = Counter(load.acknowledged)
    missing = [event_id for event_id in acknowledged if event_id not in stored]
    twice = [event_id for event_id, n in stored.items() if n > 1]
    rss = [s.rss_mb for s in overload]
    print(
        f"\nAI ingest overload: {statuses[200]:,} requests 200, {statuses[503]:,} 503, {statuses[429]:,} 429, "
        f"{statuses[0]:,} failed on the client ({dict(load.errors) or 'none'}), "
        f"{sum(s.not_sent for s in overload):,} not sent (client at --max-in-flight); Retry-After seen: "
        f"{dict(load.retry_after) or 'none'}"
    )
    print(
        f"RSS over the overload: first {rss[0]:.0f} MB, max {max(rss):.0f} MB, last {rss[-1]:.0f} MB; "
        f"recovery: first second without a 503 = {first_clean}, p99 then "
        f"{p99([ms for s in recovery for ms in s.latencies_ms]):.0f} ms"
    )
    print(
        f"acknowledged events: {len(acknowledged):,}; missing from ai_events: {len(missing)}; stored twice: "
        f"{len(twice)}; stored in all: {sum(stored.values()):,} (more than acknowledged only for answers lost)"
    )
    if missing or twice:
        raise SystemExit(f"acknowledged events lost or duplicated: {missing[:5]} {twice[:5]}")


# ---------------------------------------------------------------- agents' results over gRPC


def results_phases(grpc_target: str, token: str, pid: int, args: argparse.Namespace) -> None:
    tally = Tally(acked_ids=[])
    agents = [SimulatedAgent(grpc_target, token, REGION, f"overload-{i}", tally) for i in range(args.agents)]
    for agent in agents:
        agent.rate = 0.0
    fleet = Fleet(agents)
    try:
        deadline = time.monotonic() + 60
        while sum(len(agent.assignments) for agent in agents) < args.monitors:
            if time.monotonic() > deadline:
                raise SystemExit("the simulated agents never got their assignments")
            time.sleep(0.2)
        # Sustainable: the spools never empty (far more offered than stored), acks counted.
        for agent in agents:
            agent.rate, agent.spool_cap = 50_000 / args.agents, 4 * BATCH_SIZE * WINDOW
        time.sleep(2)
        acked, started = tally.acked, time.monotonic()
        time.sleep(args.measure)
        sustainable = (tally.acked - acked) / (time.monotonic() - started)
        for agent in agents:
            agent.rate, agent.spool_cap = 0.0, None
        drained = wait_drained(agents, tally, 120)
        log(
            f"results sustainable: {sustainable:,.0f}/s acknowledged with full spools (drained in {drained:.1f} s)"
        )
        for agent in agents:
            agent.rate = 2 * sustainable / args.agents
        print(f"\nresults at 2 x {sustainable:,.0f} = {2 * sustainable:,.0f}/s offered")
        print("| s | RSS MB | acked/s | in the agents' spools |\n|---|---|---|---|")
        sampler = Sampler(pid)
        rss: list[float] = []
        last = tally.acked
        for n in range(int(args.seconds)):
            time.sleep(1)
            rss.append(sampler.rss_kb() / 1024)
            print(f"| {n} | {rss[-1]:.0f} | {tally.acked - last:,} | {tally.spooled(agents):,} |")
            last = tally.acked
        sampler.stop()
        for agent in agents:
            agent.rate = 0.0
        backlog = tally.spooled(agents)
        drained = wait_drained(agents, tally, 600)
        print(
            f"\nresults overload: RSS first {rss[0]:.0f} MB, max {max(rss):.0f} MB, last {rss[-1]:.0f} MB; "
            f"{backlog:,} waiting in the agents' spools when the load dropped, drained in {drained:.1f} s; "
            f"rejected {dict(tally.rejected) or 'none'}; stream failures {dict(tally.stream_failures) or 'none'}"
        )
    finally:
        fleet.close()
    assert tally.acked_ids is not None
    with psycopg.connect(DSN) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM check_results")}
    missing = [result_id for result_id in tally.acked_ids if result_id not in stored]
    print(f"acknowledged results: {len(tally.acked_ids):,}; missing from check_results: {len(missing)}")
    if missing:
        raise SystemExit(f"acknowledged results lost: {missing[:5]}")


def wait_drained(agents: list[SimulatedAgent], tally: Tally, within: float) -> float:
    started = time.monotonic()
    while tally.spooled(agents):
        if time.monotonic() - started > within:
            raise SystemExit(f"the spools did not drain within {within:g} s ({tally.spooled(agents):,} left)")
        time.sleep(0.1)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="the overload's length, each kind")
    parser.add_argument("--measure", type=float, default=10, help="seconds measuring the sustainable rate")
    parser.add_argument("--recovery", type=float, default=10, help="seconds at half the rate afterwards")
    parser.add_argument("--kind", choices=["ai", "results", "both"], default="both")
    parser.add_argument("--batch", type=int, default=50, help="AI events per request")
    parser.add_argument("--connections", type=int, default=32, help="clients measuring the AI rate")
    parser.add_argument(
        "--organizations",
        type=int,
        default=8,
        help="organizations whose LLM monitors take the AI events in turn",
    )
    parser.add_argument("--max-in-flight", type=int, default=512, help="AI requests open at once, at most")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--monitors", type=int, default=2000, help="HTTP monitors the agents send results of")
    parser.add_argument("--api-option", action="append", default=[], help="more `traxo api` options")
    args = parser.parse_args()
    env = {
        **os.environ,
        "TRAXO_DATABASE_URL": DSN,
        "TRAXO_LOG_LEVEL": "warning",
        "TRAXO_REGIONS": REGION,
        "TRAXO_DEFAULT_REGIONS": REGION,
    }
    log(f"building {DATABASE}")
    token = build_database(env, args.monitors, args.organizations)
    api, port, grpc_port = start_control_plane(env, *args.api_option, workers=False)
    try:
        if args.kind in ("ai", "both"):
            asyncio.run(ai_phases(f"http://127.0.0.1:{port}", api.pid, args))
        if args.kind in ("results", "both"):
            results_phases(f"127.0.0.1:{grpc_port}", token, api.pid, args)
    finally:
        stop(api)


if __name__ == "__main__":
    main()
