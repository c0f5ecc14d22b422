"""The agent's faults with real processes: `traxo api` and `traxo-agent`s, SIGKILLed, cut off in a
network namespace, or out of disk, each proving what reaches the database (counted by result id).

The control plane is the agents' end-to-end cluster (tests/e2e/test_agents_e2e.py), with its one-second
leases; each test has a region of its own. Gated monitors (see GatedTarget) let a test stop an agent's
results at will, so that what it ran, spooled, dropped and delivered can be compared exactly.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from sqlalchemy import func, select

from control_plane import migrate
from control_plane.agents import tokens
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Agent, AssignmentGrant, CheckResult
from control_plane.settings import Plan
from tests.conftest import make_account, make_org
from tests.e2e.test_agents_e2e import LEASE_S, AgentProcess, Cluster, Target, serve
from tests.reliability.agent_fault_support import (
    NetnsLink,
    SpoolFile,
    TcpForwarder,
    checkpoint,
    fill_disk,
    netns_link,
    read_spool,
    small_disk,
)
from tests.waiting import eventually

# The agent's side of each fault (its spool, its network, its disk) is the same whichever database
# the control plane has: these run once, in the SQLite pass (test_faults_control_plane's run on both).
pytestmark = [pytest.mark.slow, pytest.mark.one_pass]

KILL, NET, DISK = "fault-kill", "fault-net", "fault-disk"
SPOOL_MAX_MB = 0.01  # ~10 KB: some sixty results fill the spool of the SIGKILL test


# -- the cluster's parts, on top of the agents' end-to-end helpers --------------------------------


class GatedTarget(Target):
    """The e2e target, plus /gated/<name>: answered only while the gate is open. Closing it holds
    every check of a gated monitor (their timeout is long), so an agent stops producing results
    and its counts can be compared exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.answered: Counter[str] = Counter()

    def app(self) -> web.Application:
        async def gated(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            await self.gate.wait()
            self.answered[request.path] += 1
            return web.Response(text="all systems operational")

        app = super().app()
        app.router.add_get("/gated/{name}", gated)
        return app


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    """`args` with `flag`'s value replaced (or the flag added)."""
    if flag in args:
        index = args.index(flag)
        return [*args[: index + 1], value, *args[index + 2 :]]
    return [*args, flag, value]


class FaultAgent(AgentProcess):
    """An e2e AgentProcess whose command line a test adjusts, and which may run in a network namespace
    (its metrics then listen on the namespace's address)."""

    def __init__(
        self,
        name: str,
        region: str,
        token: str,
        cluster: Cluster,
        flags: dict[str, str] | None = None,
        netns: NetnsLink | None = None,
    ) -> None:
        super().__init__(name, region, token, cluster)
        for flag, value in (flags or {}).items():
            self.args = with_flag(self.args, flag, value)
        if netns is not None:
            self.metrics_host = netns.inside
            self.args = with_flag(self.args, "--metrics-host", netns.inside)
            self.args = ["ip", "netns", "exec", netns.name, *self.args]  # ip execs the agent: same pid

    @property
    def spool_path(self) -> Path:
        return Path(self.args[self.args.index("--spool") + 1])

    async def total(self, prefix: str) -> float:
        return _total(await self.metrics(), prefix)


def _total(metrics: dict[str, float], name: str) -> float:
    """The sum of a metric's series (e.g. traxo_agent_checks_total over type and status)."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


@pytest.fixture(scope="module")
def faults_database_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.databases import scratch_database

    with scratch_database(database_url, tmp_path_factory.mktemp("faults"), "traxo_faults_agent") as url:
        yield url


@pytest.fixture(scope="module")
async def cluster(
    faults_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("agent-faults")
    await asyncio.to_thread(migrate.upgrade, faults_database_url)
    db = Database(faults_database_url)
    owner = await make_account(db, "ops@faults.example", "Ops")
    await make_org(db, owner, "faults-org", plan=Plan.ENTERPRISE)
    ca_file = tmp / "ca.pem"  # the agents' SSL_CERT_FILE (these tests probe no HTTPS)
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    target = GatedTarget()
    runner = await serve(target, "http")
    built = Cluster(tmp, faults_database_url, db, owner, ca_file, target, target, 0)
    try:
        async with db.session() as session:
            for region in (KILL, NET, DISK):
                _, built.tokens[region] = await tokens.create_token(session, region=region, now=utcnow())
        await built.start_api()
        yield built
    finally:
        for agent in built.agents.values():
            await agent.stop()
        if built.api is not None:
            await built.api.stop()
        target.gate.set()
        await runner.cleanup()
        await db.dispose()


@pytest.fixture
def gate(cluster: Cluster) -> Iterator[asyncio.Event]:
    """The gated monitors' gate, open again after the test (so no check stays held)."""
    assert isinstance(cluster.http, GatedTarget)
    yield cluster.http.gate
    cluster.http.gate.set()


@pytest.fixture
def on_failure(cluster: Cluster) -> Iterator[None]:
    """The processes' logs, in the test's captured output: pytest shows it when the test fails."""
    yield
    print(cluster.logs())


async def start_agent(cluster: Cluster, agent: FaultAgent) -> FaultAgent:
    cluster.agents[agent.agent_name] = agent
    await agent.start()
    await eventually(partial(_connected, agent), 20, f"{agent.name} connects")
    return agent


async def gated_monitors(cluster: Cluster, region: str, count: int, interval: int = 1) -> list[str]:
    """Monitors of `region` on the gated target; a held check waits up to a minute for its answer."""
    return [
        await cluster.monitor(
            f"{region}-{i}", f"/gated/{region}-{i}", [region], interval=interval, timeout=60
        )
        for i in range(count)
    ]


async def stored_ids(cluster: Cluster, monitor_ids: list[str]) -> list[str]:
    async with cluster.db.session() as session:
        return list(
            await session.scalars(select(CheckResult.id).where(CheckResult.monitor_id.in_(monitor_ids)))
        )


async def answered_and_processed(cluster: Cluster, agent: FaultAgent, paths: list[str]) -> bool:
    """With the gate closed: every answered check of the agent is a finished check, flushed to its spool
    (checks = acked + rejected + dropped + spooled) - nothing is in motion any more."""
    assert isinstance(cluster.http, GatedTarget)
    metrics = await agent.metrics()
    checks = _total(metrics, "traxo_agent_checks_total")
    accounted = (
        _total(metrics, "traxo_agent_results_acked_total")
        + _total(metrics, "traxo_agent_results_rejected_total")
        + _total(metrics, "traxo_agent_results_dropped_total")
        + metrics.get("traxo_agent_spool_results", 0.0)
    )
    return checks == sum(cluster.http.answered[p] for p in paths) and checks == accounted


async def test_an_agent_killed_with_a_full_spool_replays_it_on_restart(
    cluster: Cluster, gate: asyncio.Event, on_failure: None
) -> None:
    agent = await start_agent(
        cluster,
        FaultAgent("kill-1", KILL, cluster.tokens[KILL], cluster, {"--spool-max-mb": str(SPOOL_MAX_MB)}),
    )
    monitor_ids = await gated_monitors(cluster, KILL, 12)
    paths = [f"/gated/{KILL}-{i}" for i in range(12)]
    await eventually(lambda: _all_have_results(cluster, monitor_ids), 20, "every monitor reports", 0.2)

    # Hold the checks and let everything land: what the database has now is what was acknowledged.
    gate.clear()
    await eventually(partial(answered_and_processed, cluster, agent, paths), 15, "the agent is idle", 0.2)
    await eventually(partial(_spool_is, agent, 0), 10, "its spool is empty")
    before = set(await stored_ids(cluster, monitor_ids))
    assert cluster.api is not None
    await cluster.api.signal(signal.SIGKILL)
    await eventually(partial(_connected, agent, 0.0), 10, "the agent notices")

    # The control plane stays away while the spool fills past its bound.
    gate.set()
    await eventually(partial(_dropped, agent, "spool_full", 30), 60, "the bound pushes results out", 0.2)
    gate.clear()
    await eventually(partial(answered_and_processed, cluster, agent, paths), 15, "the agent is idle", 0.2)
    metrics = await agent.metrics()
    assert await agent.signal(signal.SIGKILL) == -signal.SIGKILL

    spool = read_spool(agent.spool_path)
    dropped = metrics['traxo_agent_results_dropped_total{reason="spool_full"}']
    checks = _total(metrics, "traxo_agent_checks_total")
    assert len(spool.results) == metrics["traxo_agent_spool_results"] > 0
    assert spool.payload_bytes <= SPOOL_MAX_MB * 1024 * 1024
    # Every check went into the spool; each left it acknowledged, dropped by the bound, or is still there.
    assert spool.ever_inserted == checks == len(before) + dropped + len(spool.results), (
        spool.ever_inserted,
        checks,
        len(before),
        dropped,
        len(spool.results),
    )

    print(
        f"spooled {spool.ever_inserted}: {len(before)} acked, {dropped:g} dropped, {len(spool.results)} kept"
    )
    await cluster.start_api()
    await start_agent(cluster, agent)  # same name and spool; the gate holds its new checks
    await eventually(partial(_spool_is, agent, 0), 20, "the restarted agent replays its spool")
    stored = await stored_ids(cluster, monitor_ids)
    assert len(stored) == len(set(stored)) == len(before) + len(spool.results)  # each once, none more
    assert set(stored) == before | set(spool.result_ids)
    await cluster.pause(monitor_ids)


async def test_an_agent_cut_off_loses_its_monitors_and_its_late_results_are_fenced(
    cluster: Cluster, on_failure: None
) -> None:
    with netns_link() as link:
        forwarder = TcpForwarder(link.outside, cluster.grpc_port)
        await forwarder.start()
        try:
            await _cut_off_and_back(cluster, link, forwarder)
        finally:
            await forwarder.stop()


async def _cut_off_and_back(cluster: Cluster, link: NetnsLink, forwarder: TcpForwarder) -> None:
    token = cluster.tokens[NET]
    staying = await start_agent(cluster, FaultAgent("net-stays", NET, token, cluster))
    cut = await start_agent(
        cluster,
        FaultAgent("net-cut", NET, token, cluster, {"--control-plane": forwarder.address}, netns=link),
    )
    # The monitors' checks from the namespace fail (it has no route to the target): a DOWN result is a
    # result all the same, and only results matter here.
    monitor_ids = [await cluster.monitor(f"net-{i}", f"/ok/net-{i}", [NET], interval=1) for i in range(10)]

    async def shared() -> dict[str, tuple[str, int]]:
        held = await cluster.holders(monitor_ids, NET)
        return held if len(held) == 10 and {a for a, _ in held.values()} == {"net-stays", "net-cut"} else {}

    before = await eventually(shared, 20, "both agents hold a share", 0.2)
    cut_off = {m for m, (agent, _) in before.items() if agent == "net-cut"}
    await eventually(partial(_ran_all, cluster, cut, cut_off), 15, "net-cut runs its share", 0.2)

    link.cut()
    cut_at = time.monotonic()

    async def moved() -> dict[str, tuple[str, int]]:
        held = await cluster.holders(monitor_ids, NET)
        return held if len(held) == 10 and {a for a, _ in held.values()} == {"net-stays"} else {}

    after = await eventually(moved, 3 * LEASE_S + 10, "net-cut's monitors move to net-stays", 0.1)
    took = time.monotonic() - cut_at
    print(f"monitors moved {took:.1f} s after the cut")
    assert took < 3 * LEASE_S + 10
    for monitor_id in cut_off:
        assert after[monitor_id][1] > before[monitor_id][1]  # a new epoch: the old grant is revoked

    async def late_to_fence() -> tuple[SpoolFile, set[str], set[str]] | None:
        """What the cut-off agent holds unsent, once some of it was scheduled after the move."""
        late = read_spool(cut.spool_path)
        admitted, fenced = await _by_ingest_rule(cluster, late)
        return (late, admitted, fenced) if fenced else None

    judged = await eventually(late_to_fence, 15, "net-cut runs checks after the move", 0.2)
    assert judged is not None
    late, admitted, fenced = judged
    link.restore()
    await eventually(partial(_connected, cut), 30, "net-cut reconnects", 0.2)
    await eventually(partial(_spool_is, cut, 0), 20, "net-cut delivers or is refused everything", 0.2)
    print(f"late results: {len(admitted)} admitted, {len(fenced)} fenced")
    assert admitted, "some ran before the move: late, yet under a grant it still held"
    stored = set(await stored_ids(cluster, sorted({r.result.monitor_id for r in late.results})))
    assert stored & set(late.result_ids) == admitted, {"admitted": len(admitted), "fenced": len(fenced)}
    assert await cut.metric('traxo_agent_results_rejected_total{reason="fenced"}') >= len(fenced)

    back = await eventually(shared, 20, "net-cut takes a share again", 0.2)
    assert {m for m, (agent, _) in back.items() if agent == "net-cut"}
    await cluster.pause(monitor_ids)
    for agent in (cut, staying):
        await agent.stop()
        del cluster.agents[agent.agent_name]


async def _by_ingest_rule(cluster: Cluster, late: SpoolFile) -> tuple[set[str], set[str]]:
    """control_plane/agents/ingest.py's fencing, applied to net-cut's unsent results: (to be stored,
    to be fenced). Stored when the grant of the result's epoch is net-cut's and either still current or
    revoked after the result's scheduled time. (A grant's revocation is final: so is the verdict.)"""
    async with cluster.db.session() as session:
        member_key = await session.scalar(select(Agent.member_key).where(Agent.name == "net-cut"))
        grants = {
            (g.monitor_id, g.epoch): g
            for g in await session.scalars(select(AssignmentGrant).where(AssignmentGrant.region == NET))
        }
    admitted: set[str] = set()
    fenced: set[str] = set()
    for spooled in late.results:
        result = spooled.result
        grant = grants.get((result.monitor_id, result.epoch))
        scheduled = datetime.fromtimestamp(result.scheduled_at.seconds + result.scheduled_at.nanos / 1e9, UTC)
        ours = grant is not None and grant.member_key == member_key
        in_time = grant is not None and (grant.revoked_at is None or scheduled < grant.revoked_at)
        (admitted if ours and in_time else fenced).add(result.result_id)
    return admitted, fenced


async def test_a_full_disk_drops_the_oldest_results_and_sends_the_rest(
    cluster: Cluster, gate: asyncio.Event, on_failure: None
) -> None:
    with small_disk(cluster.tmp / "small-disk", 3 * 1024 * 1024) as disk:
        agent = FaultAgent(
            "disk-1", DISK, cluster.tokens[DISK], cluster, {"--spool": str(disk / "disk-1.spool")}
        )
        try:
            await _fill_and_recover(cluster, gate, disk, agent)
            # Its assignments file on the full disk too: not saved, said once, and a clean stop.
            assert await agent.signal(signal.SIGTERM) == 0, agent.log_tail()
            assert "Traceback" not in agent.log_path.read_text(errors="replace"), agent.log_tail(80)
        finally:
            await agent.stop()  # before the unmount: the agent holds its spool open
            cluster.agents.pop(agent.agent_name, None)


async def _fill_and_recover(cluster: Cluster, gate: asyncio.Event, disk: Path, agent: FaultAgent) -> None:
    await start_agent(cluster, agent)
    monitor_ids = await gated_monitors(cluster, DISK, 16)
    paths = [f"/gated/{DISK}-{i}" for i in range(16)]
    await eventually(lambda: _all_have_results(cluster, monitor_ids), 20, "every monitor reports", 0.2)
    assert cluster.api is not None
    await cluster.api.signal(signal.SIGKILL)
    await eventually(partial(_connected, agent, 0.0), 10, "the agent notices")

    # The WAL's frames are space the spool gets back at its first checkpoint, up to half its reserve:
    # moved into the file first, they leave the spool only the room below to fill.
    await eventually(lambda: checkpoint(agent.spool_path), 10, "the spool's WAL is checkpointed")
    fill_disk(disk, leave_bytes=40_000)  # another program takes the disk
    await eventually(partial(_dropped, agent, "disk_full", 1), 60, "the full disk drops results", 0.2)
    assert await agent.metric("traxo_agent_spool_disk_full") == 1.0
    checks, dropped = await agent.total("traxo_agent_checks_total"), await _dropped_now(agent, "disk_full")

    async def keeps_going() -> bool:
        return (
            await agent.total("traxo_agent_checks_total") >= checks + 30
            and await _dropped_now(agent, "disk_full") > dropped
        )

    await eventually(keeps_going, 30, "the agent keeps checking, the oldest making room", 0.2)
    assert agent.running

    gate.clear()
    await eventually(partial(answered_and_processed, cluster, agent, paths), 15, "the agent is idle", 0.2)
    kept = await agent.metric("traxo_agent_spool_results")
    assert kept > 40, "the disk's room holds results, not a handful"
    await cluster.start_api()
    await eventually(partial(_connected, agent), 20, "the agent reconnects")
    await eventually(partial(_spool_is, agent, 0), 20, "it sends what it kept, on the full disk still", 0.2)
    assert await agent.metric("traxo_agent_spool_disk_full") == 0.0

    metrics = await agent.metrics()
    acked = metrics["traxo_agent_results_acked_total"]
    dropped_total = metrics['traxo_agent_results_dropped_total{reason="disk_full"}']
    checks_total = _total(metrics, "traxo_agent_checks_total")
    print(
        f"checks {checks_total:g}: {acked:g} delivered, {dropped_total:g} dropped (disk full), {kept:g} kept"
    )
    assert acked + dropped_total == checks_total  # every check delivered or counted as dropped
    assert len(set(await stored_ids(cluster, monitor_ids))) == acked
    log = agent.log_path.read_text()
    warnings = [line for line in log.splitlines() if "disk is full" in line]
    assert warnings and all("WARNING" in line for line in warnings), warnings
    assert len(warnings) <= 2, "a warning a minute, not one per result"
    assert "Traceback" not in log
    await cluster.pause(monitor_ids)


# -- conditions ------------------------------------------------------------------------------------


async def _connected(agent: FaultAgent, value: float = 1.0) -> bool:
    return await agent.metric("traxo_agent_connected") == value


async def _spool_is(agent: FaultAgent, count: float) -> bool:
    return await agent.metric("traxo_agent_spool_results") == count


async def _dropped_now(agent: FaultAgent, reason: str) -> float:
    return await agent.metric(f'traxo_agent_results_dropped_total{{reason="{reason}"}}')


async def _dropped(agent: FaultAgent, reason: str, at_least: float) -> bool:
    return await _dropped_now(agent, reason) >= at_least


async def _all_have_results(cluster: Cluster, monitor_ids: list[str]) -> bool:
    return all(count > 0 for count in (await cluster.result_counts(monitor_ids)).values())


async def _ran_all(cluster: Cluster, agent: FaultAgent, monitor_ids: set[str]) -> bool:
    """Each of these monitors has a stored result from this agent."""
    async with cluster.db.session() as session:
        agent_id = await session.scalar(select(Agent.id).where(Agent.name == agent.agent_name))
        rows = await session.execute(
            select(CheckResult.monitor_id, func.count())
            .where(CheckResult.monitor_id.in_(monitor_ids), CheckResult.agent_id == agent_id)
            .group_by(CheckResult.monitor_id)
        )
        return len(rows.all()) == len(monitor_ids)
