"""Agents end to end with real processes: `traxo api` (REST + gRPC) and `traxo-agent`s in two regions,
probing local HTTP and HTTPS targets (trustme certificates) that the tests make slow, failing or
unreachable. Runs on the suite's database kind (SQLite file or PostgreSQL), in a database of its own.
"""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiohttp import web
from sqlalchemy import func, select

from control_plane import migrate
from control_plane.db import Database
from control_plane.models import Agent, AssignmentGrant, CheckResult
from control_plane.settings import Plan
from tests.conftest import Account, make_account, make_org
from tests.databases import scratch_database
from tests.factories import insert_monitor
from tests.processes import BIN, command_env, free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow

EAST, WEST = "e2e-east", "e2e-west"
LEASE_S = 1.0  # short leases so that a killed agent's monitors move within seconds
OUTAGE_S = 30.0


# -- local peers ---------------------------------------------------------------------------------


class Target:
    """HTTP(S) server the agents probe; counts requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.url = ""

    def app(self) -> web.Application:
        async def ok(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            return web.Response(text="all systems operational")

        async def slow(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            await asyncio.sleep(5)
            return web.Response(text="too late")

        async def failing(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            return web.Response(status=500, text="broken")

        app = web.Application()
        app.router.add_get("/ok/{name}", ok)
        app.router.add_get("/slow/{name}", slow)
        app.router.add_get("/fail/{name}", failing)
        return app


async def serve(target: Target, scheme: str, tls: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(target.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.url = f"{scheme}://{'localhost' if tls else '127.0.0.1'}:{port}"
    return runner


# -- processes -----------------------------------------------------------------------------------


class Process:
    """A `traxo` or `traxo-agent` subprocess whose output goes to a log file (never a full pipe)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.args, self.env, self.log_path = name, args, env, log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def signal(self, sig: int, within: float = 15) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self) -> None:
        if self.running:
            try:
                await self.signal(signal.SIGTERM)
            except TimeoutError:
                await self.signal(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


class AgentProcess(Process):
    metrics_host = "127.0.0.1"  # where its /metrics answers (a network namespace's address, say)

    def __init__(self, name: str, region: str, token: str, cluster: Cluster) -> None:
        self.metrics_port = free_port()
        self.region = region
        self.agent_name = name
        args = [
            str(BIN / "traxo-agent"),
            "--control-plane", f"127.0.0.1:{cluster.grpc_port}",
            "--region", region,
            "--name", name,
            "--spool", str(cluster.tmp / f"{name}.spool"),
            "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            "--reconnect-min", "0.2",
            "--reconnect-max", "1",
            "--shutdown-deadline", "3",
        ]  # fmt: skip
        env = {**command_env(None), "TRAXO_AGENT_TOKEN": token, "SSL_CERT_FILE": str(cluster.ca_file)}
        super().__init__(name, args, env, cluster.tmp / f"{name}.log")

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://{self.metrics_host}:{self.metrics_port}/metrics", timeout=2)
        values = {}
        for line in response.text.splitlines():
            match = re.match(r"^(traxo_agent_\w+)(\{[^}]*\})? (\S+)$", line)
            if match:
                values[match[1] + (match[2] or "")] = float(match[3])
        return values

    async def metric(self, name: str) -> float:
        try:
            return (await self.metrics()).get(name, 0.0)
        except httpx.HTTPError:
            return -1.0


@dataclass
class Cluster:
    tmp: Path
    database_url: str
    db: Database
    owner: Account
    ca_file: Path
    http: Target
    https: Target
    refused_port: int
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    api: Process | None = None
    agents: dict[str, AgentProcess] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return command_env(
            self.database_url,
            TRAXO_AGENT_LEASE_SECONDS=str(LEASE_S),
            # Monitors here are inserted straight into the database (2 s intervals are below every
            # plan's minimum), which no change notification announces: sweep for them often.
            TRAXO_AGENT_FULL_PASS_SECONDS="1",
            TRAXO_REGIONS=EAST,
            TRAXO_DEFAULT_REGIONS=EAST,
            TRAXO_LOG_LEVEL="info",
        )

    async def start_api(self) -> None:
        args = [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--grpc-port", str(self.grpc_port), "--no-workers", "--no-migrate"]
        self.api = Process("api", args, self.env(), self.tmp / "api.log")
        await self.api.start()

        async def ready() -> bool:
            assert self.api is not None and self.api.running, self.api.log_tail() if self.api else ""
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.base_url}/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, 30, "the API answers /readyz")

    async def start_agent(self, name: str, region: str) -> AgentProcess:
        agent = AgentProcess(name, region, self.tokens[region], self)
        self.agents[name] = agent
        await agent.start()
        return agent

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.owner.headers) as client:
            return await client.request(method, path, timeout=10, **kwargs)

    def logs(self) -> str:
        processes = [self.api, *self.agents.values()]
        return "\n".join(p.log_tail() for p in processes if p is not None)

    # -- database views ------------------------------------------------------------------------
    async def monitor(self, name: str, path: str, regions: list[str], **fields: Any) -> str:
        fields.setdefault("url", f"{self.http.url}{path}")
        fields.setdefault("interval", 2)
        fields.setdefault("timeout", 1)
        monitor = await insert_monitor(self.db, self.owner.org_id or "", name=name, regions=regions, **fields)
        return monitor.id

    async def results(self, monitor_id: str) -> list[CheckResult]:
        async with self.db.session() as session:
            return list(
                await session.scalars(select(CheckResult).where(CheckResult.monitor_id == monitor_id))
            )

    async def result_counts(self, monitor_ids: list[str]) -> dict[str, int]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(CheckResult.monitor_id, func.count())
                .where(CheckResult.monitor_id.in_(monitor_ids))
                .group_by(CheckResult.monitor_id)
            )
            counted = dict(rows.all())
        return {m: int(counted.get(m, 0)) for m in monitor_ids}

    async def holders(self, monitor_ids: list[str], region: str) -> dict[str, tuple[str, int]]:
        """monitor id -> (agent name, epoch) of its live grant in region."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(AssignmentGrant.monitor_id, AssignmentGrant.member_key, AssignmentGrant.epoch).where(
                    AssignmentGrant.monitor_id.in_(monitor_ids),
                    AssignmentGrant.region == region,
                    AssignmentGrant.revoked_at.is_(None),
                )
            )
            return {m: (key.partition("/")[2], epoch) for m, key, epoch in rows.all()}

    async def agent_names(self) -> dict[str, str]:
        """registration id -> agent name."""
        async with self.db.session() as session:
            return dict((await session.execute(select(Agent.id, Agent.name))).all())

    async def pause(self, monitor_ids: list[str]) -> None:
        """Through the API, as a user would: the change reaches the agents at once."""
        for monitor_id in monitor_ids:
            response = await self.request("POST", f"/api/monitors/{monitor_id}/pause")
            assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def e2e_database_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the suite's kind for these processes alone."""
    with scratch_database(database_url, tmp_path_factory.mktemp("e2e"), "traxo_e2e") as url:
        yield url


@pytest.fixture(scope="module")
async def cluster(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("agents-e2e")
    await asyncio.to_thread(migrate.upgrade, e2e_database_url)
    db = Database(e2e_database_url)
    owner = await make_account(db, "ops@e2e.example", "Ops")
    await make_org(db, owner, "e2e-org", plan=Plan.ENTERPRISE)

    ca = trustme.CA()
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    http, https = Target(), Target()
    runners = [await serve(http, "http"), await serve(https, "https", server_tls)]
    refused = free_port()  # nothing listens there

    built = Cluster(tmp, e2e_database_url, db, owner, ca_file, http, https, refused)
    try:
        for region in (EAST, WEST):
            output = await asyncio.to_thread(_create_token, built.env(), region)
            built.tokens[region] = output
        await built.start_api()
        for name, region in (("east-1", EAST), ("west-1", WEST)):
            await built.start_agent(name, region)
        for agent in built.agents.values():
            await eventually(
                partial(_connected, agent),
                20,
                f"{agent.name} connects",
            )
        yield built
    except BaseException:
        print(built.logs())
        raise
    finally:
        for agent in built.agents.values():
            await agent.stop()
        if built.api is not None:
            await built.api.stop()
        for runner in runners:
            await runner.cleanup()
        await db.dispose()


def _create_token(env: dict[str, str], region: str) -> str:
    import subprocess

    result = subprocess.run(
        [str(BIN / "traxo"), "agents", "create-token", "--region", region],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


async def _connected(agent: AgentProcess) -> bool:
    return await agent.metric("traxo_agent_connected") == 1.0


@pytest.fixture
def on_failure(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        print(cluster.logs())


# -- the tests -----------------------------------------------------------------------------------


async def test_checks_arrive_from_the_right_regions(cluster: Cluster, on_failure: None) -> None:
    monitors = {
        "both": await cluster.monitor("both", "/ok/both", [EAST, WEST]),
        "https": await cluster.monitor("https", "", [WEST], url=f"{cluster.https.url}/ok/tls"),
        "slow": await cluster.monitor("slow", "/slow/s", [EAST]),
        "failing": await cluster.monitor("failing", "/fail/f", [WEST]),
        "unreachable": await cluster.monitor(
            "unreachable", "", [EAST], url=f"http://127.0.0.1:{cluster.refused_port}/"
        ),
        "tcp": await cluster.monitor(
            "tcp", "", [WEST], type="TCP", url=f"tcp://127.0.0.1:{cluster.http.url.rsplit(':', 1)[1]}"
        ),
    }
    expected_regions = {
        "both": {EAST, WEST}, "https": {WEST}, "slow": {EAST},
        "failing": {WEST}, "unreachable": {EAST}, "tcp": {WEST},
    }  # fmt: skip

    async def all_reported() -> dict[str, list[CheckResult]]:
        found = {name: await cluster.results(monitor_id) for name, monitor_id in monitors.items()}
        done = all({r.region for r in found[name]} == regions for name, regions in expected_regions.items())
        return found if done else {}

    found = await eventually(all_reported, 20, "every monitor has results from each of its regions", 0.2)

    names = await cluster.agent_names()
    for name, results in found.items():
        assert {r.region for r in results} == expected_regions[name], name
        for result in results:  # each from an agent of that region
            assert names[result.agent_id or ""] == ("east-1" if result.region == EAST else "west-1")
            assert result.scheduled_at is not None
    assert all(r.status == "UP" and r.status_code == 200 for r in found["both"])
    tls = found["https"][0]
    assert tls.status == "UP" and tls.tls_ms is not None and tls.tls_ms > 0, tls.error_message
    slow = found["slow"][0]
    assert slow.status == "DOWN" and slow.error_kind == "timeout", slow.error_message
    failing = found["failing"][0]
    assert failing.status == "DOWN" and failing.error_kind == "http_status" and failing.status_code == 500
    unreachable = found["unreachable"][0]
    assert unreachable.status == "DOWN" and unreachable.error_kind == "connection", unreachable.error_message
    assert found["tcp"][0].status == "UP"
    # The API says why a check is DOWN, as the agent reported it.
    listed = (await cluster.request("GET", f"/api/monitors/{monitors['unreachable']}/checks")).json()["data"]
    assert listed[0]["status"] == "DOWN" and listed[0]["errorKind"] == "connection", listed[0]
    assert listed[0]["error"] and "refused" in listed[0]["error"].lower(), listed[0]
    detail = (await cluster.request("GET", f"/api/monitors/{monitors['failing']}")).json()["data"]
    assert detail["checks"][0]["errorKind"] == "http_status" and detail["checks"][0]["statusCode"] == 500
    await cluster.pause(list(monitors.values()))


async def test_monitor_changes_through_the_api_reach_the_agent_within_a_second(
    cluster: Cluster, on_failure: None
) -> None:
    agent = cluster.agents["west-1"]  # alone in its region: every west monitor is its
    await eventually(lambda: _no_assignments(agent), 10, "west-1 dropped the paused monitors")
    body = {
        "name": "Latency",
        "type": "HTTP",
        "url": f"{cluster.http.url}/ok/api",
        "regions": [WEST],
        "interval": 15,
    }

    async def timed(
        action: Awaitable[httpx.Response], changed: Callable[[dict[str, float]], bool]
    ) -> tuple[float, httpx.Response]:
        response = await action
        assert response.status_code < 300, response.text
        answered = time.monotonic()

        async def seen() -> bool:
            return changed(await agent.metrics())

        await eventually(seen, 5, "the agent sees the change", interval=0.01)
        return time.monotonic() - answered, response

    def gauge(metrics: dict[str, float], name: str) -> float:
        return metrics.get(f"traxo_agent_{name}", 0.0)

    before = await agent.metrics()
    latencies = {}
    latencies["create"], response = await timed(
        cluster.request("POST", "/api/monitors", json=body), lambda m: gauge(m, "assignments") == 1
    )
    monitor_id = response.json()["data"]["id"]
    version = gauge(await agent.metrics(), "assignment_version")
    assert version > gauge(before, "assignment_version")
    latencies["update"], _ = await timed(
        cluster.request("PUT", f"/api/monitors/{monitor_id}", json={"url": f"{cluster.http.url}/ok/api-v2"}),
        lambda m: gauge(m, "assignment_version") > version,
    )
    latencies["pause"], _ = await timed(
        cluster.request("POST", f"/api/monitors/{monitor_id}/pause"), lambda m: gauge(m, "assignments") == 0
    )
    latencies["resume"], _ = await timed(
        cluster.request("POST", f"/api/monitors/{monitor_id}/resume"), lambda m: gauge(m, "assignments") == 1
    )
    latencies["delete"], _ = await timed(
        cluster.request("DELETE", f"/api/monitors/{monitor_id}"), lambda m: gauge(m, "assignments") == 0
    )
    print("change latencies (s):", {k: round(v, 3) for k, v in latencies.items()})
    assert max(latencies.values()) < 1.0, latencies


async def _no_assignments(agent: AgentProcess) -> bool:
    return await agent.metric("traxo_agent_assignments") == 0.0


async def test_a_joining_agent_takes_a_share_and_its_death_gives_it_back(
    cluster: Cluster, on_failure: None
) -> None:
    names = [f"share-{i}" for i in range(10)]
    monitor_ids = [await cluster.monitor(name, f"/ok/{name}", [EAST]) for name in names]

    async def all_on(*agents: str) -> dict[str, tuple[str, int]]:
        held = await cluster.holders(monitor_ids, EAST)
        return held if len(held) == len(monitor_ids) and {a for a, _ in held.values()} == set(agents) else {}

    alone = await eventually(lambda: all_on("east-1"), 10, "east-1 holds every east monitor")

    joined_at = datetime.now(UTC)
    joiner = await cluster.start_agent("east-2", EAST)
    shared = await eventually(lambda: all_on("east-1", "east-2"), 15, "east-2 takes a share")
    moved = {m for m, (agent, _) in shared.items() if agent == "east-2"}
    for monitor_id, (agent, epoch) in shared.items():  # only what east-2 won moved, under new epochs
        assert (
            (agent, epoch) == alone[monitor_id] if monitor_id not in moved else epoch > alone[monitor_id][1]
        )

    async def results_from_joiner() -> bool:
        registrations = await cluster.agent_names()
        for monitor_id in moved:
            recent = [r for r in await cluster.results(monitor_id) if r.checked_at > joined_at]
            if not any(registrations.get(r.agent_id or "") == "east-2" for r in recent):
                return False
        return True

    await eventually(results_from_joiner, 15, "east-2 runs the monitors it won", 0.2)

    killed_at = time.monotonic()
    assert await joiner.signal(signal.SIGKILL) == -signal.SIGKILL
    back = await eventually(lambda: all_on("east-1"), 3 * LEASE_S + 5, "east-2's monitors move back", 0.1)
    print(f"monitors moved {time.monotonic() - killed_at:.1f} s after SIGKILL")
    for monitor_id, (_, epoch) in back.items():
        if monitor_id in moved:
            assert epoch > shared[monitor_id][1]
        else:
            assert epoch == shared[monitor_id][1]  # east-1's own never moved

    since = datetime.now(UTC)

    async def east_1_runs_them() -> bool:
        registrations = await cluster.agent_names()
        for monitor_id in moved:
            recent = [r for r in await cluster.results(monitor_id) if r.checked_at > since]
            if not any(registrations.get(r.agent_id or "") == "east-1" for r in recent):
                return False
        return True

    await eventually(east_1_runs_them, 10, "east-1 runs east-2's monitors", 0.2)
    await cluster.pause(monitor_ids)
    del cluster.agents["east-2"]


async def test_a_control_plane_outage_and_an_agent_restart_lose_and_duplicate_nothing(
    cluster: Cluster, on_failure: None
) -> None:
    paths = {f"/ok/outage-{region}-{i}": region for region in (EAST, WEST) for i in range(2)}
    paths["/ok/outage-both"] = "both"
    monitor_ids = {
        path: await cluster.monitor(path, path, [EAST, WEST] if region == "both" else [region])
        for path, region in paths.items()
    }
    ids = list(monitor_ids.values())

    async def all_checked() -> bool:
        return all(count > 0 for count in (await cluster.result_counts(ids)).values())

    await eventually(all_checked, 15, "every outage monitor has a result", 0.2)
    assert cluster.api is not None
    east, west = cluster.agents["east-1"], cluster.agents["west-1"]
    east_rejected_before = await _rejected(east)  # east-1 has run the module's earlier tests

    # The control plane dies without a goodbye.
    down_at = datetime.now(UTC)
    stopped = time.monotonic()
    await cluster.api.signal(signal.SIGKILL)
    await eventually(lambda: _disconnected(west), 10, "west-1 notices")

    # Meanwhile west-1 restarts with the same spool and name: what it could not deliver survives.
    await asyncio.sleep(4)  # a few checks' worth of results pile up in its spool
    spooled = await west.metric("traxo_agent_spool_results")
    assert spooled > 0
    assert await west.signal(signal.SIGTERM) == 0, west.log_tail()
    await west.start()
    await eventually(lambda: _spool_at_least(west, spooled), 10, "the restarted west-1 finds its spool")

    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    up_at = datetime.now(UTC)
    await cluster.start_api()
    for agent in (cluster.agents["east-1"], west):
        await eventually(partial(_connected, agent), 15, f"{agent.name} reconnects")
        await eventually(partial(_spool_drained, agent), 15, f"{agent.name} replays its spool")
    await asyncio.sleep(3)  # a round of checks after the reconnect
    # Both replayed everything they had run while the control plane was away: none fenced.
    rejected_before_pause = {agent.name: await _rejected(agent) for agent in (east, west)}
    assert _minus(rejected_before_pause["east-1"], east_rejected_before) == {}, rejected_before_pause
    assert rejected_before_pause["west-1"] == {}, rejected_before_pause

    # Stop the schedule, let the last results land, then count.
    await cluster.pause(ids)
    for agent in (east, west):
        await eventually(partial(_no_assignments, agent), 10, f"{agent.name} stops")
        await eventually(partial(_spool_drained, agent), 10, f"{agent.name} flushes")
    await asyncio.sleep(0.5)

    counts = await cluster.result_counts(ids)
    hits = {path: cluster.http.hits[path] for path in paths}
    stored = {path: counts[monitor_ids[path]] for path in paths}
    # A check whose slot came after the pause was committed, but before the agent heard of it, hit
    # the target and was refused as fenced (no results after a pause). Those, and nothing else,
    # may be missing: every other request the target saw is stored exactly once.
    fenced_after_pause = 0.0
    for agent in (east, west):
        reasons = _minus(await _rejected(agent), rejected_before_pause[agent.name])
        assert set(reasons) <= {'traxo_agent_results_rejected_total{reason="fenced"}'}, reasons
        fenced_after_pause += sum(reasons.values())
    missing = {path: hits[path] - stored[path] for path in paths}
    assert all(0 <= missing[path] <= (2 if region == "both" else 1) for path, region in paths.items()), (
        f"stored results {stored} != requests the target saw {hits}"
    )
    assert sum(missing.values()) == fenced_after_pause, (stored, hits, fenced_after_pause)
    elapsed = (datetime.now(UTC) - down_at).total_seconds()
    for path, region in paths.items():  # about one check per interval per region, outage included
        regions = 2 if region == "both" else 1
        during = [
            r
            for r in await cluster.results(monitor_ids[path])
            if r.scheduled_at and down_at < r.scheduled_at < up_at
        ]
        assert len(during) >= regions * (OUTAGE_S / 2 - 3), (path, len(during))
        assert stored[path] >= regions * (elapsed / 2 - 4), (path, stored[path], elapsed)


async def _rejected(agent: AgentProcess) -> dict[str, float]:
    """The agent's counts of results the control plane refused, by reason (none yet: {})."""
    metrics = await agent.metrics()
    return {k: v for k, v in metrics.items() if k.startswith("traxo_agent_results_rejected_total") and v}


def _minus(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in now.items() if v - before.get(k, 0.0)}


async def _disconnected(agent: AgentProcess) -> bool:
    return await agent.metric("traxo_agent_connected") == 0.0


async def _spool_at_least(agent: AgentProcess, count: float) -> bool:
    return await agent.metric("traxo_agent_spool_results") >= count


async def _spool_drained(agent: AgentProcess) -> bool:
    return await agent.metric("traxo_agent_spool_results") == 0.0


async def test_every_active_check_type_runs_through_a_real_agent(cluster: Cluster, on_failure: None) -> None:
    """PING, DNS, SSL and BROWSER through the real agent and control plane, screenshot included."""
    from tests.checks.dns_server import LoopbackDnsServer, build_zone
    from tests.tools import require_program

    dns_server = LoopbackDnsServer(build_zone())
    await dns_server.start()
    https_host_port = cluster.https.url.removeprefix("https://")
    try:
        monitors = {
            "ping": await cluster.monitor(
                "ping", "", [EAST], type="PING", url="127.0.0.1", config={"count": 2}
            ),
            "dns": await cluster.monitor(
                "dns",
                "",
                [EAST],
                type="DNS",
                url="example.test",
                config={"resolver": dns_server.address, "expectedValues": ["192.0.2.10"]},
            ),
            "ssl": await cluster.monitor(
                "ssl",
                "",
                [EAST],
                type="SSL",
                url=https_host_port,
                config={"caBundle": cluster.ca_file.read_text()},
            ),
        }
        expected_details = {"ping": "packet_loss_percent", "dns": "answers", "ssl": "days_until_expiry"}
        if require_program("chromium"):  # skips (or fails in CI) without Chromium
            for name, step_text in (
                ("browser-ok", "all systems operational"),
                ("browser-fail", "no such text"),
            ):
                monitors[name] = await cluster.monitor(
                    name,
                    f"/ok/{name}",
                    [EAST],
                    type="BROWSER",
                    timeout=15,
                    interval=30,
                    config={"steps": [{"action": "expect_text", "text": step_text, "timeout": 2}]},
                )

        async def all_reported() -> dict[str, list[CheckResult]]:
            found = {name: await cluster.results(monitor_id) for name, monitor_id in monitors.items()}
            return found if all(found.values()) else {}

        found = await eventually(all_reported, 45, "every check type reports a result", 0.2)
        for name, key in expected_details.items():
            result = found[name][0]
            assert result.status == "UP", (name, result.error_kind, result.error_message)
            assert result.details and key in result.details, (name, result.details)
        if "browser-ok" in found:
            assert found["browser-ok"][0].status == "UP", found["browser-ok"][0].error_message
            failed = found["browser-fail"][0]
            assert failed.status == "DOWN" and failed.error_kind == "browser_step"
            shot = await cluster.request(
                "GET", f"/api/monitors/{monitors['browser-fail']}/checks/{failed.id}/screenshot"
            )
            assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")
    finally:
        await cluster.pause(list(monitors.values()))
        await dns_server.stop()
