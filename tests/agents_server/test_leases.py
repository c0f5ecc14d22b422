"""Leases: renewals gathered into one write, results that keep an agent's lease, and lapsed agents
kept lapsed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import grpc
import pytest
from sqlalchemy import event, select, update

from control_plane.agents.clock import SYSTEM_CLOCK
from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.agents.leases import LeaseRenewals
from control_plane.agents.registry import Registration
from control_plane.db import Database
from control_plane.models import Agent
from control_plane.settings import Settings
from tests.agents_server.server_tools import REGION, AgentClient, check_result, create_token, insert_monitors
from tests.agents_server.test_agent_identity import ResultsStream, renewed, snapshot_of
from tests.agents_server.test_grpc_service import expect_code, poll
from tests.conftest import World
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

LEASE = timedelta(seconds=10)


async def renewed_at(db: Database, agent_id: str) -> datetime | None:
    async with db.session() as session:
        return await session.scalar(select(Agent.renewed_at).where(Agent.id == agent_id))


async def set_renewed_at(db: Database, agent_id: str, at: datetime, *, lapsed: bool = False) -> None:
    async with db.session() as session:
        await session.execute(
            update(Agent).where(Agent.id == agent_id).values(renewed_at=at, lapsed_at=at if lapsed else None)
        )
        await session.commit()


async def renewed_at_changed(db: Database, agent_id: str, since: datetime) -> bool:
    return await renewed_at(db, agent_id) != since


@pytest.fixture
async def renewals(database: Database) -> AsyncIterator[LeaseRenewals]:
    leases = LeaseRenewals(database, SYSTEM_CLOCK, lease=LEASE, gather_seconds=0.05)
    leases.start()
    yield leases
    await leases.stop()


async def test_renewals_arriving_together_are_one_transaction_and_each_gets_its_own_answer(
    client: AgentClient, database: Database, settings: Settings, renewals: LeaseRenewals
) -> None:
    token_a, raw_a = await create_token(database, settings)
    token_b, raw_b = await create_token(database, settings)
    agents_a = [await client.register(raw_a, name=f"a{i}") for i in range(40)]
    agent_b = await client.register(raw_b, name="b")
    lapsed = agents_a.pop()
    long_ago = datetime(2025, 1, 1, tzinfo=SYSTEM_CLOCK.wall().tzinfo)
    await set_renewed_at(database, lapsed, long_ago, lapsed=True)
    for agent_id in [*agents_a, agent_b]:
        await set_renewed_at(database, agent_id, long_ago)
    commits: list[object] = []
    listener = event.listens_for(database.engine.sync_engine, "commit")(lambda conn: commits.append(conn))

    try:
        answers = await asyncio.gather(
            *(renewals.renew(token_a, agent_id) for agent_id in agents_a),
            renewals.renew(token_a, lapsed),  # lapsed: it must register again
            renewals.renew(token_a, agent_b),  # another token's agent: not this token's to renew
            renewals.renew(token_b, agent_b),
            renewals.renew(token_a, "agt_unknown"),
        )
    finally:
        event.remove(database.engine.sync_engine, "commit", listener)

    assert answers == [True] * len(agents_a) + [False, False, True, False]
    assert len(commits) == 1
    for agent_id in [*agents_a, agent_b]:
        at = await renewed_at(database, agent_id)
        assert at is not None and at > long_ago
    assert await renewed_at(database, lapsed) == long_ago


async def test_an_agent_whose_results_arrive_keeps_its_lease_without_renewing(
    client: AgentClient, endpoint: AgentsEndpoint, database: Database, settings: Settings, world: World
) -> None:
    _, raw = await create_token(database, settings)
    (monitor_id,) = await insert_monitors(database, world.org_a, 1)
    agent_id = await client.register(raw, name="busy")
    watch, held = await snapshot_of(client, raw, agent_id)
    long_ago = datetime(2025, 1, 1, tzinfo=SYSTEM_CLOCK.wall().tzinfo)
    await set_renewed_at(database, agent_id, long_ago)
    results = ResultsStream(client, raw)

    ack = await results.send(
        pb.ResultBatch(agent_id=agent_id, sequence=1, results=[check_result(monitor_id, held[monitor_id])])
    )

    assert list(ack.rejected) == []
    assert await poll(lambda: renewed_at_changed(database, agent_id, long_ago))
    # Once lapsed, its results renew nothing: it must register again. RenewLease says so, and so
    # does its results stream (an agent renewed by its results may never call RenewLease).
    await set_renewed_at(database, agent_id, long_ago, lapsed=True)
    endpoint.leases.registered(agent_id)  # forget when it was last renewed: the next batch is heard
    await results.send(
        pb.ResultBatch(agent_id=agent_id, sequence=2, results=[check_result(monitor_id, held[monitor_id])])
    )
    assert not await renewed(client, raw, agent_id)
    assert await renewed_at(database, agent_id) == long_ago
    await results._queue.put(
        pb.ResultBatch(agent_id=agent_id, sequence=3, results=[check_result(monitor_id, held[monitor_id])])
    )
    await expect_code(grpc.StatusCode.FAILED_PRECONDITION, asyncio.wait_for(results.call.read(), 5))
    watch.cancel()
    # Registering again takes it back: its results are stored and renew it once more.
    assert await client.register(raw, name="busy") == agent_id
    again = ResultsStream(client, raw)
    ack = await again.send(
        pb.ResultBatch(agent_id=agent_id, sequence=1, results=[check_result(monitor_id, held[monitor_id])])
    )
    assert list(ack.rejected) == []
    assert await poll(lambda: renewed_at_changed(database, agent_id, long_ago))
    again.call.cancel()


async def test_results_renew_an_agent_at_most_once_a_third_of_a_lease(
    database: Database, settings: Settings, renewals: LeaseRenewals, client: AgentClient
) -> None:
    token_id, raw = await create_token(database, settings)
    agent_id = await client.register(raw, name="chatty")
    sender = Registration(agent_id, f"{token_id}/chatty", "eu-west", token_id, None, 1)
    renewals.heard(sender)
    await renewals.flush()
    first = await renewed_at(database, agent_id)
    commits: list[object] = []
    listener = event.listens_for(database.engine.sync_engine, "commit")(lambda conn: commits.append(conn))
    try:
        for _ in range(20):  # a batch every half second for ten seconds, say
            renewals.heard(sender)
            await renewals.flush()
    finally:
        event.remove(database.engine.sync_engine, "commit", listener)
    assert commits == []
    assert await renewed_at(database, agent_id) == first


async def test_registering_tells_the_agent_that_its_results_renew_its_lease(
    client: AgentClient, database: Database, settings: Settings
) -> None:
    _, raw = await create_token(database, settings)
    reply = await client.stub.Register(
        pb.RegisterRequest(name="new", region=REGION, version="0.1.0"),
        metadata=client.metadata(raw),
        timeout=10,
    )
    assert reply.results_renew_lease
