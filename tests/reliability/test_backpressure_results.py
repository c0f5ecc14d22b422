"""Load with backpressure (issue 16), the agents' side: one process stores at most
TRAXO_AGENT_RESULTS_MAX_BATCHES result batches at once over all its streams, however many agents
send (200 agents replaying their spools after an outage would otherwise hold hundreds of MB of
converted results). A batch past the bound stays unread or unacknowledged, never dropped; each
acknowledged result was committed before its ack and is stored once; every stream completes when
the load drops; a stream cancelled while its batch holds the bound gives it back.

The real AgentService on a socket, driven by grpc.aio clients; the ingest it calls is the real one,
counted while it runs and held at a gate the test opens one batch at a time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from control_plane.agents import server
from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.agents.ingest import ingest_batch
from control_plane.db import Database
from control_plane.models import Agent, CheckResult
from control_plane.observability.metrics import REGISTRY
from control_plane.settings import Settings
from tests.agents_server.server_tools import (
    AgentClient,
    active_grants,
    check_result,
    create_token,
    insert_monitors,
)
from tests.conftest import World
from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

BOUND = 2
STREAMS = 6  # agents' streams at once, each with more batches in flight than the bound
BATCHES = 3  # per stream
RESULTS = 4  # per batch


class HeldIngest:
    """The real `ingest_batch`, counted while it runs, each call waiting for a ticket first: the
    batches the server has taken stay "being stored" for as long as the test likes."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.holding: set[str] = set()  # ids of the results in the calls running
        self.tickets = asyncio.Semaphore(0)
        self.changed = asyncio.Event()

    async def __call__(self, db: Database, sender: Any, results: Sequence[Any], **kwargs: Any) -> Any:
        ids = {granted.result.id for granted in results}
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.holding |= ids
        self.changed.set()
        try:
            await self.tickets.acquire()
            return await ingest_batch(db, sender, results, **kwargs)
        finally:
            self.running -= 1
            self.holding -= ids
            self.changed.set()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldIngest:
    counted = HeldIngest()
    monkeypatch.setattr(server, "ingest_batch", counted)
    return counted


@pytest.fixture
async def client(database: Database, settings: Settings) -> AsyncIterator[AgentClient]:
    bounded = settings.model_copy(update={"agent_results_max_batches": BOUND})
    endpoint = await AgentsEndpoint.start(database, bounded, ("127.0.0.1", 0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{endpoint.port}") as channel:
            yield AgentClient(AgentServiceStub(channel), endpoint.coordinator)
    finally:
        await endpoint.stop()


async def one_agent_holding(
    client: AgentClient, database: Database, settings: Settings, world: World, count: int
) -> tuple[str, str, dict[str, int]]:
    """(raw token, agent id, monitor id -> epoch) for one agent granted `count` monitors."""
    monitor_ids = await insert_monitors(database, world.org_a, count)
    _, raw = await create_token(database, settings)
    agent_id = await client.register(raw)
    grants = await active_grants(database)
    assert set(grants) == set(monitor_ids)
    return raw, agent_id, {monitor_id: epoch for monitor_id, (_, epoch) in grants.items()}


async def stored_counts(database: Database, result_ids: Sequence[str]) -> Counter[str]:
    async with database.session() as session:
        rows = await session.execute(
            select(CheckResult.id, func.count())
            .where(CheckResult.id.in_(result_ids))
            .group_by(CheckResult.id)
        )
        return Counter({result_id: count for result_id, count in rows.all()})


def storing() -> float:
    """What the bound's gauge says is in use in this process now."""
    return REGISTRY.get_sample_value("traxo_agents_result_batches_storing") or 0.0


async def test_streams_store_at_most_the_bound_at_once_and_ack_each_result_once_committed(
    client: AgentClient, database: Database, settings: Settings, world: World, held: HeldIngest
) -> None:
    raw, agent_id, epochs = await one_agent_holding(client, database, settings, world, RESULTS)
    batches = {
        (stream, sequence): pb.ResultBatch(
            agent_id=agent_id,
            sequence=sequence,
            results=[check_result(monitor_id, epoch) for monitor_id, epoch in epochs.items()],
        )
        for stream in range(STREAMS)
        for sequence in range(1, BATCHES + 1)
    }
    # What each ack found stored the moment it arrived: all of its batch, or it came too early.
    stored_at_ack: dict[tuple[int, int], int] = {}
    acked = asyncio.Event()

    async def agent(stream: int) -> grpc.StatusCode:
        async def requests() -> AsyncIterator[pb.ResultBatch]:
            for sequence in range(1, BATCHES + 1):  # all at once, not waiting for acks
                yield batches[stream, sequence]

        call = client.stub.StreamResults(requests(), metadata=client.metadata(raw))
        async for ack in call:
            assert list(ack.rejected) == []
            ids = [result.result_id for result in batches[stream, ack.sequence].results]
            stored_at_ack[stream, ack.sequence] = sum((await stored_counts(database, ids)).values())
            acked.set()
        return await call.code()

    before = storing()
    agents = [asyncio.create_task(agent(stream)) for stream in range(STREAMS)]
    try:
        await eventually(lambda: held.running == BOUND, 10, "the bound's batches taken", wake=held.changed)
        assert storing() == before + BOUND  # the bound in use, as /metrics shows it
        assert REGISTRY.get_sample_value("traxo_agents_result_batches_limit") == BOUND
        # One batch let through at a time: each time, the server takes the next waiting one, and
        # never more than the bound are being stored (18 batches were sent, all without waiting).
        for done in range(1, len(batches) + 1):
            held.tickets.release()
            await eventually(lambda: len(stored_at_ack) >= done, 10, f"{done} acks", wake=acked)  # noqa: B023
            assert held.running <= BOUND
            assert held.peak == BOUND
        codes = await asyncio.wait_for(asyncio.gather(*agents), 10)
    finally:
        for task in agents:
            task.cancel()
    assert codes == [grpc.StatusCode.OK] * STREAMS
    assert held.peak == BOUND and held.running == 0
    assert storing() == before
    assert stored_at_ack == dict.fromkeys(batches, RESULTS)
    sent = [result.result_id for batch in batches.values() for result in batch.results]
    assert await stored_counts(database, sent) == Counter(dict.fromkeys(sent, 1))


async def test_a_stream_cancelled_while_its_batch_holds_the_bound_gives_it_back(
    client: AgentClient, database: Database, settings: Settings, world: World, held: HeldIngest
) -> None:
    raw, agent_id, epochs = await one_agent_holding(client, database, settings, world, 1)
    [(monitor_id, epoch)] = epochs.items()
    before = storing()
    holders, dropped = [], []
    for sequence in range(BOUND):  # the bound taken by batches of streams that then go away
        call = client.stub.StreamResults(metadata=client.metadata(raw))
        dropped.append(check_result(monitor_id, epoch))
        await call.write(pb.ResultBatch(agent_id=agent_id, sequence=sequence, results=[dropped[-1]]))
        holders.append(call)
        await eventually(lambda: held.running == sequence + 1, 10, "the batch taken", wake=held.changed)  # noqa: B023
    waiting = client.stub.StreamResults(metadata=client.metadata(raw))
    kept = check_result(monitor_id, epoch)
    await waiting.write(pb.ResultBatch(agent_id=agent_id, sequence=99, results=[kept]))
    try:
        for call in holders:
            call.cancel()  # the agents disconnect: the batches being stored are not acknowledged
        # Their permits are back: the waiting stream's batch is taken, stored and acknowledged.
        await eventually(
            lambda: held.holding == {kept.result_id}, 10, "only the waiting batch taken", wake=held.changed
        )
        assert storing() == before + 1  # the cancelled ones' given back, the waiting one's taken
        held.tickets.release()
        ack = await asyncio.wait_for(waiting.read(), 10)
        assert ack.sequence == 99 and list(ack.rejected) == []
    finally:
        waiting.cancel()
    assert held.running == 0
    await eventually(lambda: storing() == before, 10, "the last permit given back")
    # Unacknowledged and not stored: their agents send them again on their next stream.
    every = [kept.result_id, *(result.result_id for result in dropped)]
    assert await stored_counts(database, every) == Counter({kept.result_id: 1})


async def test_an_agent_whose_batches_wait_on_the_bound_keeps_its_lease(
    database: Database, settings: Settings, world: World, held: HeldIngest
) -> None:
    # A busy process holding an agent's batches longer than the missed periods lapsed the very
    # agents it kept waiting (their renewals waited in gRPC's queue too), and moved their monitors,
    # which made it busier still (bench/agents_at_scale.py: 200 agents, 100,000 monitors).
    lease = 0.5  # lapsed after 1.5 s unheard
    short = settings.model_copy(update={"agent_results_max_batches": 1, "agent_lease_seconds": lease})
    endpoint = await AgentsEndpoint.start(database, short, ("127.0.0.1", 0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{endpoint.port}") as channel:
            client = AgentClient(AgentServiceStub(channel), endpoint.coordinator)
            raw, agent_id, epochs = await one_agent_holding(client, database, settings, world, 1)
            [(monitor_id, epoch)] = epochs.items()
            call = client.stub.StreamResults(metadata=client.metadata(raw))
            try:
                for sequence in (1, 2):  # the first holds the bound, the second waits for it
                    batch = pb.ResultBatch(
                        agent_id=agent_id, sequence=sequence, results=[check_result(monitor_id, epoch)]
                    )
                    await call.write(batch)
                await eventually(lambda: held.running == 1, 10, "the first batch taken", wake=held.changed)
                await asyncio.sleep(lease * 3 * 2.5)  # the missed periods, twice over, nothing acked
                await endpoint.coordinator.check_liveness()
                async with database.session() as session:
                    lapsed_at = await session.scalar(select(Agent.lapsed_at).where(Agent.id == agent_id))
                assert lapsed_at is None, "lapsed while its batches waited for this process"
                held.tickets.release()
                held.tickets.release()
                acks = [await asyncio.wait_for(call.read(), 10) for _ in range(2)]
                assert sorted(ack.sequence for ack in acks) == [1, 2]
                assert all(list(ack.rejected) == [] for ack in acks)
            finally:
                call.cancel()
    finally:
        await endpoint.stop()
