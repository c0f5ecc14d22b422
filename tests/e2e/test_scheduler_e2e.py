"""Issue 9 end to end: a monitor paused, resumed and given a new interval in quick succession through
the API runs once per interval on a real agent, not in two interleaved series."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise

import pytest
import trustme
from aiohttp import web

from control_plane import migrate
from control_plane.db import Database
from control_plane.settings import Plan
from tests.conftest import make_account, make_org
from tests.databases import scratch_database
from tests.e2e.test_agents_e2e import (
    EAST,
    AgentProcess,
    Cluster,
    Target,
    _connected,
    _create_token,
    serve,
)
from tests.processes import free_port
from tests.waiting import eventually

# Once, in the SQLite pass: the subject is the agent's scheduler (a change's way through the
# database to the agent is test_agents_e2e.py's, on both).
pytestmark = [pytest.mark.slow, pytest.mark.one_pass]

FIRST_INTERVAL_S = 15  # the ENTERPRISE minimum: the smallest interval the API accepts
NEW_INTERVAL_S = 16  # a new phase too, so an old entry come back to life runs beside it, not with it
JITTER_S = 1.0  # between a due time and the request reaching the target, on a busy machine


class TimedTarget(Target):
    """Records when each request arrived, not only how many."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []  # time.monotonic()

    def app(self) -> web.Application:
        async def ok(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            self.arrivals.append(time.monotonic())
            return web.Response(text="all systems operational")

        app = web.Application()
        app.router.add_get("/ok/{name}", ok)
        return app


@pytest.fixture(scope="module")
async def cluster(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """`traxo api` and one agent in one region; monitors are made through the API, as a user would."""
    tmp = tmp_path_factory.mktemp("scheduler-e2e")
    with scratch_database(database_url, tmp, "traxo_e2e_scheduler") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        db = Database(url)
        owner = await make_account(db, "ops@scheduler-e2e.example", "Ops")
        await make_org(db, owner, "scheduler-e2e-org", plan=Plan.ENTERPRISE)
        ca_file = tmp / "ca.pem"
        trustme.CA().cert_pem.write_to_path(str(ca_file))  # the agent trusts it; nothing here uses TLS
        target = TimedTarget()
        runner = await serve(target, "http")
        unused = Target()  # a Cluster has an HTTPS target too, which nothing here probes
        built = Cluster(tmp, url, db, owner, ca_file, target, unused, free_port())
        try:
            built.tokens[EAST] = await asyncio.to_thread(_create_token, built.env(), EAST)
            await built.start_api()
            agent = await built.start_agent("east-1", EAST)
            await eventually(lambda: _connected(agent), 20, "east-1 connects")
            yield built
        except BaseException:
            print(built.logs())
            raise
        finally:
            for agent in built.agents.values():
                await agent.stop()
            if built.api is not None:
                await built.api.stop()
            await runner.cleanup()
            await db.dispose()


@pytest.fixture
def on_failure(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        print(cluster.logs())


async def _skipped(agent: AgentProcess) -> float:
    return await agent.metric('traxo_agent_skipped_runs_total{type="HTTP"}')


async def test_a_paused_resumed_and_changed_monitor_runs_once_per_interval(
    cluster: Cluster, on_failure: None
) -> None:
    agent = cluster.agents["east-1"]
    target = cluster.http
    assert isinstance(target, TimedTarget)
    response = await cluster.request(
        "POST",
        "/api/monitors",
        json={
            "name": "Twice",
            "type": "HTTP",
            "url": f"{target.url}/ok/twice",
            "regions": [EAST],
            "interval": FIRST_INTERVAL_S,
        },
    )
    assert response.status_code < 300, response.text
    monitor_id = response.json()["data"]["id"]

    async def ran() -> bool:
        return len(target.arrivals) >= 1

    await eventually(ran, FIRST_INTERVAL_S + 5, "the new monitor's first check")

    # Right after a run the agent's next due time is a whole interval away, so everything below
    # reaches it before then, and the entries it leaves behind are still in its heap. An update
    # first (the agent sees it) means one of those entries carries the generation the re-added
    # monitor gets back, whether the control plane sends resume and interval change as one
    # change or two (it diffs the current row, so that depends on timing).
    version = await agent.metric("traxo_agent_assignment_version")
    await _ok(cluster, "PUT", f"/api/monitors/{monitor_id}", json={"timeout": 10})

    async def seen() -> bool:
        return await agent.metric("traxo_agent_assignment_version") > version

    await eventually(seen, 5, "the agent sees the update")
    skipped_before = await _skipped(agent)

    # The user's sequence, within a fraction of a second. The agent must see the pause on its own:
    # a pause and resume that reach it together are one update, not a removal and a re-add.
    await _ok(cluster, "POST", f"/api/monitors/{monitor_id}/pause")

    async def paused() -> bool:
        return await agent.metric("traxo_agent_assignments") == 0.0

    await eventually(paused, 5, "the agent drops the paused monitor", 0.01)
    await _ok(cluster, "POST", f"/api/monitors/{monitor_id}/resume")
    await _ok(cluster, "PUT", f"/api/monitors/{monitor_id}", json={"interval": NEW_INTERVAL_S})
    changed_at = time.monotonic()

    def since_change() -> list[float]:
        return [t for t in target.arrivals if t > changed_at]

    async def an_interval_after_the_first_run() -> bool:
        arrivals = since_change()
        return len(arrivals) >= 2 and time.monotonic() > arrivals[0] + NEW_INTERVAL_S + JITTER_S

    # One run sets the phase and the next comes an interval later. Two series of that interval
    # would have run three times by then, d and then interval - d apart: one gap half an interval
    # or less, however the two are phased.
    await eventually(
        an_interval_after_the_first_run, 2 * NEW_INTERVAL_S + 5, "two runs after the change", 0.1
    )
    arrivals = since_change()
    gaps = [round(later - earlier, 2) for earlier, later in pairwise(arrivals)]
    assert all(gap >= NEW_INTERVAL_S - JITTER_S for gap in gaps), (
        f"checks {gaps} s apart, every {NEW_INTERVAL_S} s expected"
    )
    # Two series due at the same moment show as skips instead (the second finds the first going).
    assert await _skipped(agent) == skipped_before


async def _ok(cluster: Cluster, method: str, path: str, json: dict[str, object] | None = None) -> None:
    response = await cluster.request(method, path, json=json)
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
