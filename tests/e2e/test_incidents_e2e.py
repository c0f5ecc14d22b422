"""Incidents end to end: real agents probe a local target that starts and stops failing; the
incidents appear through the API. On PostgreSQL, two `traxo api` replicas ingest the same
monitor's results (one agent on each) and exactly one incident and one event of each kind come
out of it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select

from control_plane import migrate
from control_plane.db import Database
from control_plane.models import IncidentEvent
from control_plane.settings import Plan
from tests.conftest import make_account, make_org
from tests.databases import scratch_database
from tests.e2e.test_agents_e2e import (
    BIN,
    EAST,
    WEST,
    AgentProcess,
    Cluster,
    Process,
    Target,
    _connected,
    _create_token,
)
from tests.processes import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow

INTERVAL_S = 2


class Switch:
    """A target whose paths fail (503) while they are in `failing`."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            if request.path in self.failing:
                return web.Response(status=503, text="down for the test")
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/{name}", handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclasses.dataclass
class Replicas:
    cluster: Cluster  # the first replica (REST, gRPC) and the database
    second: Process | None  # PostgreSQL only: another `traxo api` on the same database
    switch: Switch


@pytest.fixture(scope="module")
async def replicas(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Replicas]:
    tmp = tmp_path_factory.mktemp("incidents-e2e")
    with scratch_database(database_url, tmp, "traxo_incidents_e2e") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        db = Database(url)
        owner = await make_account(db, "ops@incidents.example", "Ops")
        await make_org(db, owner, "incidents-org", plan=Plan.ENTERPRISE)
        switch = Switch()
        await switch.start()
        cluster = Cluster(tmp, url, db, owner, tmp / "no-ca.pem", Target(), Target(), free_port())
        (tmp / "no-ca.pem").write_text("")
        second: Process | None = None
        try:
            for region in (EAST, WEST):
                cluster.tokens[region] = await asyncio.to_thread(_create_token, cluster.env(), region)
            # With their workers: agents' results are judged by each replica's incident-queue job.
            cluster.api = await _start_api("api", cluster)
            west_to = cluster
            if url.startswith("postgresql"):
                west_to = dataclasses.replace(cluster, port=free_port(), grpc_port=free_port(), agents={})
                second = await _start_api("api-2", west_to)
            east = AgentProcess("east-1", EAST, cluster.tokens[EAST], cluster)
            west = AgentProcess("west-1", WEST, cluster.tokens[WEST], west_to)
            for agent in (east, west):
                cluster.agents[agent.agent_name] = agent
                await agent.start()
            for agent in (east, west):
                await eventually(partial(_connected, agent), 30, f"{agent.name} connects")
            yield Replicas(cluster, second, switch)
        except BaseException:
            print(cluster.logs(), second.log_tail() if second else "")
            raise
        finally:
            for agent in cluster.agents.values():
                await agent.stop()
            for process in (cluster.api, second):
                if process is not None:
                    await process.stop()
            await switch.stop()
            await db.dispose()


async def _start_api(name: str, cluster: Cluster) -> Process:
    args = [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(cluster.port)]
    args += ["--grpc-port", str(cluster.grpc_port), "--no-migrate"]
    process = Process(name, args, cluster.env(), cluster.tmp / f"{name}.log")
    await process.start()

    async def ready() -> bool:
        assert process.running, process.log_tail()
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{cluster.base_url}/readyz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, 30, f"{name} answers /readyz")
    return process


async def _incidents(replicas: Replicas, monitor_id: str) -> list[dict[str, Any]]:
    response = await replicas.cluster.request("GET", f"/api/incidents?monitorId={monitor_id}")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def _events(replicas: Replicas, monitor_id: str) -> list[str]:
    async with replicas.cluster.db.session() as session:
        query = select(IncidentEvent.type).where(IncidentEvent.monitor_id == monitor_id)
        return sorted(await session.scalars(query))


async def test_a_target_that_starts_failing_opens_an_incident_and_its_recovery_resolves_it(
    replicas: Replicas,
) -> None:
    path = "/detect"
    monitor = await replicas.cluster.monitor(
        "detect", "", [EAST], url=f"{replicas.switch.url}{path}", interval=INTERVAL_S
    )
    await asyncio.sleep(INTERVAL_S * 2)  # a few good checks first
    assert await _incidents(replicas, monitor) == []

    replicas.switch.failing.add(path)
    failing_since = time.monotonic()

    async def opened() -> list[dict[str, Any]]:
        return [i for i in await _incidents(replicas, monitor) if i["isActive"]]

    [incident] = await eventually(opened, 2 * INTERVAL_S + 2 + 3, "an incident opens")
    detected_in = time.monotonic() - failing_since
    assert detected_in <= 2 * INTERVAL_S + 2, detected_in
    assert incident["cause"] == "expected a 2xx status, got 503"  # the failing check's own words

    replicas.switch.failing.discard(path)

    async def resolved() -> bool:
        return [i["isActive"] for i in await _incidents(replicas, monitor)] == [False]

    await eventually(resolved, 2 * INTERVAL_S + 5, "the incident resolves")
    [done] = await _incidents(replicas, monitor)
    assert done["duration"] is not None and done["duration"] >= INTERVAL_S


@pytest.mark.postgres_only
async def test_two_replicas_ingesting_one_monitor_open_exactly_one_incident(replicas: Replicas) -> None:
    assert replicas.second is not None
    path = "/both"
    # Checked from both regions; east's results reach replica 1 and west's replica 2. Either
    # region failing is enough (quorum 1), so both replicas race to open the incident.
    monitor = await replicas.cluster.monitor(
        "both",
        "",
        [EAST, WEST],
        url=f"{replicas.switch.url}{path}",
        interval=INTERVAL_S,
        config={"regionQuorum": 1, "confirmations": 1},
    )
    await asyncio.sleep(INTERVAL_S * 2)
    for _ in range(3):  # three outages, each seen by both replicas at once
        replicas.switch.failing.add(path)

        async def active() -> bool:
            return any(i["isActive"] for i in await _incidents(replicas, monitor))

        await eventually(active, 15, "an incident opens")
        await asyncio.sleep(INTERVAL_S * 2)  # both regions have failed by now
        replicas.switch.failing.discard(path)

        async def all_resolved() -> bool:
            return not any(i["isActive"] for i in await _incidents(replicas, monitor))

        await eventually(all_resolved, 15, "the incident resolves")
        await asyncio.sleep(INTERVAL_S * 2)
    incidents = await _incidents(replicas, monitor)
    assert len(incidents) == 3, incidents
    assert await _events(replicas, monitor) == ["incident.opened"] * 3 + ["incident.resolved"] * 3
