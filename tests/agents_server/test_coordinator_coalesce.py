"""What a region's full pass costs (issue 16): every monitor of the region hashed against every live
agent. A burst of registrations makes one or two passes, not one each (200 agents joining a region
of 100,000 monitors made 200 passes of ~18 s each), with the owners rendezvous hashing gives over
all of them; a pass reads only its own region's monitors, and hashes them off the event loop."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import grpc
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agents import assigner, registry
from control_plane.agents import coordinator as coordinator_module
from control_plane.agents.assigner import Liveness, reassign, rendezvous_weight
from control_plane.agents.coordinator import AgentCoordinator
from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.agents.registry import member_key
from control_plane.db import Database
from control_plane.models import AgentToken, Monitor
from control_plane.settings import Settings
from tests.agents_server.server_tools import (
    ALL_CAPABILITIES,
    REGION,
    AgentClient,
    active_grants,
    create_token,
    insert_monitors,
)
from tests.conftest import World
from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

AGENTS = 12
OTHER = "eu-west-1"


class HeldPasses:
    """The real `reassign`, counting the full passes of REGION; while `gate` is clear they wait
    for it (inside the coordinator's region lock, as a long pass over a large region would)."""

    def __init__(self) -> None:
        self.full = 0
        self.running = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.changed = asyncio.Event()

    async def __call__(
        self,
        session: AsyncSession,
        region: str,
        liveness: Liveness,
        *,
        monitor_ids: Collection[str] | None = None,
    ) -> list[str]:
        if region != REGION or monitor_ids is not None:
            return await reassign(session, region, liveness, monitor_ids=monitor_ids)
        self.full += 1
        self.running += 1
        self.changed.set()
        try:
            await self.gate.wait()
            return await reassign(session, region, liveness)
        finally:
            self.running -= 1
            self.changed.set()


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> HeldPasses:
    counted = HeldPasses()
    monkeypatch.setattr(coordinator_module, "reassign", counted)
    return counted


@pytest.fixture
async def client(database: Database, settings: Settings, passes: HeldPasses) -> AsyncIterator[AgentClient]:
    # A long lease: the liveness loop makes its first pass at start and no other during the test.
    quiet = settings.model_copy(update={"agent_lease_seconds": 600})
    endpoint = await AgentsEndpoint.start(database, quiet, ("127.0.0.1", 0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{endpoint.port}") as channel:
            yield AgentClient(AgentServiceStub(channel), endpoint.coordinator)
    finally:
        await endpoint.stop()


def owner(monitor_id: str, keys: Collection[str]) -> str:
    """Rendezvous hashing's choice, computed here from its definition."""
    return max(keys, key=lambda key: (rendezvous_weight(monitor_id, key), key))


async def test_a_burst_of_registrations_makes_one_or_two_passes_with_every_agents_share(
    client: AgentClient, database: Database, settings: Settings, world: World, passes: HeldPasses
) -> None:
    monitor_ids = await insert_monitors(database, world.org_a, 300)
    token_id, raw = await create_token(database, settings)
    await eventually(lambda: passes.full >= 1 and passes.running == 0, 10, "the liveness loop's first pass")
    passes.full = 0
    passes.gate.clear()  # the first registration's pass runs long, as over 100,000 monitors

    names = [f"agent-{n}" for n in range(AGENTS)]
    answers = await asyncio.gather(
        *(
            client.stub.Register(
                pb.RegisterRequest(
                    name=name, region=REGION, version="0.1.0", capabilities=list(ALL_CAPABILITIES)
                ),
                metadata=client.metadata(raw),
                timeout=10,
            )
            for name in names
        )
    )
    assert len({answer.agent_id for answer in answers}) == AGENTS  # every one answered at once
    await eventually(lambda: passes.running == 1, 10, "the first pass started", wake=passes.changed)
    passes.gate.set()

    keys = {member_key(token_id, name) for name in names}
    expected = {monitor_id: owner(monitor_id, keys) for monitor_id in monitor_ids}

    async def assigned() -> bool:
        grants = await active_grants(database)
        return {monitor_id: key for monitor_id, (key, _) in grants.items()} == expected

    assert client.coordinator is not None
    await client.coordinator.settle()
    assert await assigned(), "every monitor with its rendezvous owner among all the agents"
    assert 1 <= passes.full <= 2, f"{passes.full} full passes for {AGENTS} registrations"
    assert Counter(expected.values()).keys() == keys  # 300 monitors over 12 agents: each has some


# -- the join window --------------------------------------------------------------------------


@asynccontextmanager
async def windowed(
    database: Database, settings: Settings, window: float, passes: HeldPasses
) -> AsyncIterator[AgentClient]:
    """An endpoint whose registrations wait `window` seconds of no further joins before their pass
    (settled once the liveness loop's first pass is over)."""
    quiet = settings.model_copy(update={"agent_lease_seconds": 600, "agent_join_window_seconds": window})
    endpoint = await AgentsEndpoint.start(database, quiet, ("127.0.0.1", 0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{endpoint.port}") as channel:
            await eventually(lambda: passes.full >= 1 and passes.running == 0, 10, "the first liveness pass")
            passes.full = 0
            yield AgentClient(AgentServiceStub(channel), endpoint.coordinator)
    finally:
        await endpoint.stop()


async def register_now(client: AgentClient, raw: str, name: str) -> None:
    """Register, without waiting for the rebalance it asks for."""
    await client.stub.Register(
        pb.RegisterRequest(name=name, region=REGION, version="0.1.0", capabilities=list(ALL_CAPABILITIES)),
        metadata=client.metadata(raw),
        timeout=10,
    )


async def test_agents_joining_a_few_at_a_time_within_the_window_make_one_pass(
    database: Database, settings: Settings, world: World, passes: HeldPasses
) -> None:
    # A rollout starts a region's agents a few at a time: without the window, the first would hold
    # every monitor for a moment and each later one take its share in a pass of its own.
    monitor_ids = await insert_monitors(database, world.org_a, 200)
    token_id, raw = await create_token(database, settings)
    names = [f"agent-{n}" for n in range(6)]
    async with windowed(database, settings, 2.0, passes) as client:
        started = asyncio.get_running_loop().time()
        for name in names:
            await register_now(client, raw, name)
            await asyncio.sleep(0.1)
        assert passes.full == 0, "no pass while agents are still joining"
        await eventually(lambda: passes.full == 1 and passes.running == 0, 15, "the window's pass")
        assert asyncio.get_running_loop().time() - started >= 2.0
        keys = {member_key(token_id, name) for name in names}
        grants = await active_grants(database)
        assert {m: key for m, (key, _) in grants.items()} == {m: owner(m, keys) for m in monitor_ids}
        assert {epoch for _, epoch in grants.values()} == {1}, "each monitor granted once, not moved"
        await asyncio.sleep(0.5)
        assert passes.full == 1


async def test_the_liveness_pass_leaves_a_joining_region_to_its_window(
    database: Database, settings: Settings, world: World, passes: HeldPasses
) -> None:
    await insert_monitors(database, world.org_a, 20)
    _, raw = await create_token(database, settings)
    async with windowed(database, settings, 5.0, passes) as client:
        coordinator = client.coordinator
        assert coordinator is not None
        await register_now(client, raw, "agent-1")
        # The membership changed since the last full pass, but the registration's pass is waiting
        # for more agents: the liveness pass would balance the region for the first one alone.
        await coordinator.check_liveness()
        assert passes.full == 0
        await coordinator.settle()
        assert passes.full == 1
        await coordinator.check_liveness()  # that pass was the registered membership's
        assert passes.full == 1


async def test_joins_that_never_pause_still_get_a_pass_after_five_windows(
    database: Database, settings: Settings, world: World, passes: HeldPasses
) -> None:
    await insert_monitors(database, world.org_a, 20)
    _, raw = await create_token(database, settings)
    async with windowed(database, settings, 0.3, passes) as client:
        coordinator = client.coordinator
        assert coordinator is not None
        await register_now(client, raw, "agent-1")
        started = asyncio.get_running_loop().time()
        # Joins every 50 ms, as the registrations of a large fleet ask (the calls themselves would
        # make the gaps a loaded machine's, not the test's).
        while passes.full == 0 and asyncio.get_running_loop().time() - started < 10:
            coordinator.reassign_soon(REGION)
            await asyncio.sleep(0.05)
        waited = asyncio.get_running_loop().time() - started
        assert passes.full >= 1, "agents joined for 10 s and no pass ran"
        assert 1.5 <= waited < 5, f"the first pass after {waited:.1f} s of joins every 50 ms"


# -- what a pass reads -------------------------------------------------------------------------


async def register(db: Database, coordinator: AgentCoordinator, token_id: str, name: str) -> str:
    """Registers an agent as the Register call does, without its rebalance; its member key."""
    async with db.session() as session:
        token = await session.get(AgentToken, token_id)
        assert token is not None
        registered = await registry.register(
            session, token, name=name, version="0.1.0", capabilities=["http"], now=coordinator.clock.wall()
        )
        return registered.registration.member_key


@pytest.fixture
async def coordinator(database: Database, settings: Settings) -> AsyncIterator[AgentCoordinator]:
    made = AgentCoordinator(database, settings)
    try:
        yield made
    finally:
        await made.stop()


PASS_LINE = re.compile(r"region (\S+): (full|monitors') pass read (\d+) monitors")


def passes_read(records: list[logging.LogRecord]) -> list[tuple[str, str, int]]:
    """(region, kind, monitors read) of each pass logged."""
    found = []
    for record in records:
        if matched := PASS_LINE.match(record.getMessage()):
            found.append((matched[1], matched[2], int(matched[3])))
    return found


async def test_a_pass_reads_only_the_monitors_of_its_region(
    database: Database,
    settings: Settings,
    world: World,
    coordinator: AgentCoordinator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token_id, _ = await create_token(database, settings)
    agent = await register(database, coordinator, token_id, "agent-1")
    here = await insert_monitors(database, world.org_a, 20)
    both = await insert_monitors(database, world.org_a, 5, regions=[OTHER, REGION])
    await insert_monitors(database, world.org_a, 50, regions=[OTHER])
    await insert_monitors(database, world.org_a, 7, regions=[f"{REGION}0"])  # "us-east-10": a longer name
    caplog.set_level(logging.DEBUG, logger="control_plane.agents.assigner")

    await coordinator.reassign_region(REGION)
    await coordinator.reassign_region(OTHER)  # no agent there: its monitors stay unassigned

    assert passes_read(caplog.records) == [(REGION, "full", 25), (OTHER, "full", 55)]
    grants = await active_grants(database)
    assert grants.keys() == {*here, *both} and {key for key, _ in grants.values()} == {agent}
    assert await active_grants(database, OTHER) == {}

    # A monitor that leaves the region loses its grant there (it is no longer read at all).
    leaving = here[0]
    async with database.session() as session:
        await session.execute(update(Monitor).where(Monitor.id == leaving).values(regions=[OTHER]))
        await session.commit()
    caplog.clear()
    await coordinator.reassign_monitors({leaving})
    assert (REGION, "monitors'", 0) in passes_read(caplog.records)
    assert leaving not in await active_grants(database)
    await coordinator.reassign_region(REGION)
    assert passes_read(caplog.records)[-1] == (REGION, "full", 24)


async def test_the_liveness_pass_does_not_repeat_a_registrations_full_pass(
    database: Database, settings: Settings, world: World, coordinator: AgentCoordinator, passes: HeldPasses
) -> None:
    token_id, _ = await create_token(database, settings)
    await insert_monitors(database, world.org_a, 10)
    await register(database, coordinator, token_id, "agent-1")
    coordinator.reassign_soon(REGION)
    await coordinator.settle()
    assert passes.full == 1
    await coordinator.check_liveness()  # the same membership: nothing to do
    assert passes.full == 1
    await register(database, coordinator, token_id, "agent-2")
    await coordinator.check_liveness()  # an agent joined without a registration's pass
    assert passes.full == 2


async def test_a_pass_hashes_its_monitors_off_the_event_loops_thread(
    database: Database,
    settings: Settings,
    world: World,
    coordinator: AgentCoordinator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 20 s of hashing for 100,000 monitors and 200 agents: on the loop, no lease renewal or API
    # request would be answered meanwhile.
    threads: set[int] = set()

    def weigh(monitor_id: str, member_key: str) -> int:
        threads.add(threading.get_ident())
        return rendezvous_weight(monitor_id, member_key)

    monkeypatch.setattr(assigner, "rendezvous_weight", weigh)
    token_id, _ = await create_token(database, settings)
    agent = await register(database, coordinator, token_id, "agent-1")
    monitor_ids = await insert_monitors(database, world.org_a, 5)

    await coordinator.reassign_region(REGION)

    assert {key for key, _ in (await active_grants(database)).values()} == {agent}
    assert len(await active_grants(database)) == len(monitor_ids)
    assert threads and threading.get_ident() not in threads


async def test_a_cancelled_pass_stops_its_hashing_thread(
    database: Database,
    settings: Settings,
    world: World,
    coordinator: AgentCoordinator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A thread cannot be cancelled: without being told, it would hash the rest of the region (20 s
    # at 100,000 monitors and 200 agents) for a pass nobody waits for any more.
    started = threading.Event()
    hashed = 0

    def slow(monitor_id: str, member_key: str) -> int:  # one member: once a monitor
        nonlocal hashed
        hashed += 1
        started.set()
        threading.Event().wait(0.002)
        return rendezvous_weight(monitor_id, member_key)

    monkeypatch.setattr(assigner, "rendezvous_weight", slow)
    token_id, _ = await create_token(database, settings)
    await register(database, coordinator, token_id, "agent-1")
    await insert_monitors(database, world.org_a, 1_500)  # 3 s of hashing at 2 ms each

    hashed = 0
    started.clear()
    task = asyncio.create_task(coordinator.reassign_region(REGION))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    at_cancel = hashed
    await asyncio.sleep(1.0)  # 500 more monitors' worth, had the thread gone on

    assert hashed - at_cancel <= 256  # it stops at its next look, every 256 monitors
    assert hashed < 1_500
