"""An agent is its token and name: registering again (a restart, a reconnect) is the same agent, with
the same id and share; of two live processes under one name, the newer registration takes over."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, func, select, text

from control_plane import migrate
from control_plane.agents import registry
from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.agents.registry import member_key
from control_plane.db import Database
from control_plane.models import Agent, CheckResult
from control_plane.settings import Settings, sync_database_url
from tests.agents_server.server_tools import (
    REGION,
    AgentClient,
    active_grants,
    check_result,
    create_token,
    insert_monitors,
    next_update,
)
from tests.agents_server.test_grpc_service import CHANGE_BUDGET_S, expect_code
from tests.conftest import World
from tests.monitor_tools import set_plan
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb


async def renewed(client: AgentClient, raw: str, agent_id: str) -> bool:
    reply = await client.stub.RenewLease(
        pb.RenewLeaseRequest(agent_id=agent_id), metadata=client.metadata(raw), timeout=5
    )
    return bool(reply.held)


async def snapshot_of(client: AgentClient, raw: str, agent_id: str) -> tuple[Any, dict[str, int]]:
    """An open assignment stream and the snapshot it began with (monitor id -> epoch)."""
    watch = client.watch(raw, agent_id)
    update = await next_update(watch)
    assert update.WhichOneof("update") == "snapshot", update
    return watch, {a.monitor_id: a.epoch for a in update.snapshot.assignments}


class ResultsStream:
    """One StreamResults call that stays open between batches, like an agent's."""

    def __init__(self, client: AgentClient, raw: str) -> None:
        self._queue: asyncio.Queue[pb.ResultBatch] = asyncio.Queue()
        self.call = client.stub.StreamResults(self._batches(), metadata=client.metadata(raw))

    async def _batches(self) -> Any:
        while True:
            yield await self._queue.get()

    async def send(self, batch: pb.ResultBatch) -> pb.ResultAck:
        await self._queue.put(batch)
        return await asyncio.wait_for(self.call.read(), 5)


async def test_an_agent_registering_again_is_the_same_agent_with_the_same_share(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    await set_plan(database, world.org_a, "ENTERPRISE")
    token_id, raw = await create_token(database, settings)
    other_token_id, other_raw = await create_token(database, settings)
    await insert_monitors(database, world.org_a, 30)
    box = await client.register(raw, name="box")
    await client.register(raw, name="crate")
    watch, held = await snapshot_of(client, raw, box)
    watch.cancel()
    grants = await active_grants(database)
    assert held and {m for m, (key, _) in grants.items() if key == member_key(token_id, "box")} == set(held)
    first = check_result(next(iter(held)), held[next(iter(held))])
    assert [
        list(a.rejected)
        for a in await client.send(raw, [pb.ResultBatch(agent_id=box, sequence=1, results=[first])])
    ] == [[]]

    again = await client.register(raw, name="box")  # the process restarted

    assert again == box
    assert await renewed(client, raw, box)
    assert await active_grants(database) == grants  # nothing moved, no new epochs
    watch, held_again = await snapshot_of(client, raw, box)
    watch.cancel()
    assert held_again == held
    later = check_result(first.monitor_id, first.epoch)
    assert [
        list(a.rejected)
        for a in await client.send(raw, [pb.ResultBatch(agent_id=box, sequence=1, results=[later])])
    ] == [[]]
    async with database.session() as session:
        stored_by = set(
            await session.scalars(
                select(CheckResult.agent_id).where(CheckResult.id.in_([first.result_id, later.result_id]))
            )
        )
        agents = (await session.execute(select(Agent.name, Agent.token_id, Agent.incarnation))).all()
    assert stored_by == {box}  # its results, before and after the restart, are one agent's
    assert sorted(agents) == [("box", token_id, 2), ("crate", token_id, 1)]
    # Another name, or the same name under another token, is another agent.
    assert await client.register(raw, name="box-2") != box
    assert await client.register(other_raw, name="box") not in {box, again}
    assert other_token_id != token_id


async def test_of_two_live_processes_under_one_name_the_newer_registration_takes_over(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw = await create_token(database, settings)
    (monitor_id,) = await insert_monitors(database, world.org_a, 1)
    older = await client.register(raw, name="box")
    older_watch, held = await snapshot_of(client, raw, older)
    older_results = ResultsStream(client, raw)
    ack = await older_results.send(
        pb.ResultBatch(agent_id=older, sequence=1, results=[check_result(monitor_id, held[monitor_id])])
    )
    assert list(ack.rejected) == []

    newer = await client.register(raw, name="box")  # a second process with the same name and token

    assert newer == older  # the protocol cannot tell them apart: they share the agent's identity
    await expect_code(grpc.StatusCode.ABORTED, asyncio.wait_for(older_watch.read(), CHANGE_BUDGET_S))
    late = check_result(monitor_id, held[monitor_id])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await older_results.send(pb.ResultBatch(agent_id=older, sequence=2, results=[late]))
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert "registered again" in (caught.value.details() or "")
    newer_watch, newer_held = await snapshot_of(client, raw, newer)
    assert newer_held == held  # the same agent's share, under the same grants
    newer_results = ResultsStream(client, raw)
    ack = await newer_results.send(pb.ResultBatch(agent_id=newer, sequence=1, results=[late]))
    assert list(ack.rejected) == []  # (the older process replays it after registering again)

    # The older process registers again: now its registration is the newer one.
    await client.register(raw, name="box")
    await expect_code(grpc.StatusCode.ABORTED, asyncio.wait_for(newer_watch.read(), CHANGE_BUDGET_S))
    with pytest.raises(grpc.aio.AioRpcError):
        await newer_results.send(pb.ResultBatch(agent_id=newer, sequence=2, results=[]))
    for call in (older_watch, newer_watch, older_results.call, newer_results.call):
        call.cancel()


async def test_an_agent_back_from_a_lapsed_lease_rejoins_under_its_id(
    client: AgentClient, endpoint: AgentsEndpoint, database: Database, settings: Settings, world: World
) -> None:
    token_id, raw = await create_token(database, settings)
    monitor_ids = set(await insert_monitors(database, world.org_a, 5))
    agent_id = await client.register(raw, name="box")
    coordinator = endpoint.coordinator
    async with database.session() as session:
        later = coordinator.clock.wall() + timedelta(hours=1)
        assert await registry.expire_lapsed(session, REGION, cutoff=later, now=later) == 1
    await coordinator.reassign_region(REGION)
    assert await active_grants(database) == {}
    assert not await renewed(client, raw, agent_id)
    await expect_code(grpc.StatusCode.FAILED_PRECONDITION, client.watch(raw, agent_id).read())

    assert await client.register(raw, name="box") == agent_id  # rebalanced as it registers

    assert await renewed(client, raw, agent_id)
    grants = await active_grants(database)
    assert set(grants) == monitor_ids and {key for key, _ in grants.values()} == {member_key(token_id, "box")}


async def test_registrations_of_a_new_name_at_once_make_one_agent(
    client: AgentClient, database: Database, settings: Settings
) -> None:
    _, raw = await create_token(database, settings)

    ids = await asyncio.gather(*(client.register(raw, name="twin") for _ in range(4)))

    assert len(set(ids)) == 1
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Agent)) == 1
        assert await session.scalar(select(Agent.incarnation)) == 4


async def test_the_migration_keeps_the_newest_registration_of_each_agent(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url, "0006")
    engine = create_engine(sync_database_url(fresh_database_url))
    rows = [  # (id, name, registered_at, superseded_at)
        ("agt_old", "box", "2026-11-01 10:00:00", "2026-11-02 10:00:00"),
        ("agt_new", "box", "2026-11-02 10:00:00", None),
        ("agt_lapsed", "crate", "2026-11-01 10:00:00", "2026-11-01 11:00:00"),
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO agent_tokens (id, region, token_hash, prefix, last4, created_at)"
                " VALUES ('tok_a', 'us-east-1', 'hash', 'traxo_agent_', 'abcd', '2026-11-01 09:00:00')"
            )
        )
        for agent_id, name, registered_at, superseded_at in rows:
            conn.execute(
                text(
                    "INSERT INTO agents (id, token_id, member_key, name, region, version, capabilities,"
                    " registered_at, renewed_at, superseded_at) VALUES (:id, 'tok_a', :key, :name,"
                    " 'us-east-1', '0.1.0', '[]', :at, :at, :superseded)"
                ),
                {
                    "id": agent_id,
                    "key": f"tok_a/{name}",
                    "name": name,
                    "at": registered_at,
                    "superseded": superseded_at,
                },
            )
    migrate.upgrade(fresh_database_url)
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT id, incarnation, lapsed_at IS NULL FROM agents ORDER BY id")).all()
    engine.dispose()
    assert [tuple(row) for row in kept] == [("agt_lapsed", 1, False), ("agt_new", 1, True)]
