"""The real AgentService over a socket, driven by the generated stub the agent uses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select
from sqlalchemy import update as sql_update

from control_plane.agents import server as server_module
from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.agents.registry import member_key
from control_plane.db import Database
from control_plane.models import CheckResult, CheckRollup, Monitor
from control_plane.settings import Settings
from control_plane.workers.rollups import fold_rollups
from tests.agents_server.server_tools import (
    REGION,
    AgentClient,
    active_grants,
    check_result,
    create_token,
    grant_history,
    insert_monitors,
    name_that_wins,
    next_change,
    next_update,
    revoke_token,
)
from tests.conftest import World
from tests.factories import insert_monitor
from tests.monitor_tools import set_plan
from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

Reason = pb.RejectedResult.Reason
CHANGE_BUDGET_S = 1.0


async def stored_ids(db: Database, monitor_id: str) -> set[str]:
    async with db.session() as session:
        return set(await session.scalars(select(CheckResult.id).where(CheckResult.monitor_id == monitor_id)))


async def poll(condition: Callable[[], Awaitable[Any]], within: float = 5) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


# -- authentication ----------------------------------------------------------------------------


async def expect_code(code: grpc.StatusCode, call: Awaitable[Any]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value


async def every_rpc_fails(client: AgentClient, raw: str | None, code: grpc.StatusCode) -> None:
    metadata = client.metadata(raw)
    await expect_code(
        code,
        client.stub.Register(
            pb.RegisterRequest(name="a", region=REGION, version="0.1.0"), metadata=metadata, timeout=5
        ),
    )
    await expect_code(
        code, client.stub.RenewLease(pb.RenewLeaseRequest(agent_id="agt_x"), metadata=metadata, timeout=5)
    )
    watch = client.stub.WatchAssignments(pb.WatchAssignmentsRequest(agent_id="agt_x"), metadata=metadata)
    await expect_code(code, watch.read())

    async def one_batch() -> Any:
        yield pb.ResultBatch(agent_id="agt_x", sequence=1)
        await asyncio.sleep(5)

    results = client.stub.StreamResults(one_batch(), metadata=metadata)
    await expect_code(code, results.read())
    results.cancel()


async def test_health_service_answers_serving(endpoint: AgentsEndpoint, channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "traxo.agent.v1.AgentService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_missing_wrong_or_revoked_tokens_are_unauthenticated_on_every_rpc(
    client: AgentClient, database: Database, settings: Settings
) -> None:
    token_id, raw = await create_token(database, settings)
    await revoke_token(database, token_id)
    for bad in (None, "", "nonsense", "traxo_agent_" + "x" * 43, raw):
        await every_rpc_fails(client, bad, grpc.StatusCode.UNAUTHENTICATED)


async def test_revoking_a_token_ends_its_open_assignment_stream(
    client: AgentClient, database: Database, settings: Settings
) -> None:
    token_id, raw = await create_token(database, settings)
    agent_id = await client.register(raw)
    watch = client.watch(raw, agent_id)
    assert (await next_update(watch)).WhichOneof("update") == "snapshot"

    await revoke_token(database, token_id)

    await expect_code(grpc.StatusCode.UNAUTHENTICATED, asyncio.wait_for(watch.read(), CHANGE_BUDGET_S))
    await expect_code(
        grpc.StatusCode.UNAUTHENTICATED,
        client.stub.RenewLease(pb.RenewLeaseRequest(agent_id=agent_id), metadata=client.metadata(raw)),
    )


async def test_revoking_a_token_ends_its_open_results_stream(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    token_id, raw = await create_token(database, settings)
    monitor = await insert_monitor(database, world.org_a)
    agent_id = await client.register(raw)
    epoch = (await active_grants(database))[monitor.id][1]
    queue: asyncio.Queue[pb.ResultBatch] = asyncio.Queue()

    async def batches() -> Any:
        while True:
            yield await queue.get()

    call = client.stub.StreamResults(batches(), metadata=client.metadata(raw))
    await queue.put(pb.ResultBatch(agent_id=agent_id, sequence=1, results=[check_result(monitor.id, epoch)]))
    assert (await asyncio.wait_for(call.read(), 5)).sequence == 1

    await revoke_token(database, token_id)
    late = check_result(monitor.id, epoch)
    await queue.put(pb.ResultBatch(agent_id=agent_id, sequence=2, results=[late]))

    await expect_code(grpc.StatusCode.UNAUTHENTICATED, asyncio.wait_for(call.read(), 5))
    assert late.result_id not in await stored_ids(database, monitor.id)


async def test_a_region_other_than_the_tokens_is_permission_denied(
    client: AgentClient, database: Database, settings: Settings
) -> None:
    _, raw = await create_token(database, settings)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.register(raw, region="eu-west-1")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "us-east-1" in (caught.value.details() or "")


# -- assignments -------------------------------------------------------------------------------


async def timed_change(
    watch: Any, action: Awaitable[httpx.Response]
) -> tuple[pb.Change, float, httpx.Response]:
    response = await action
    assert response.status_code < 300, response.text
    answered = time.monotonic()
    change = await next_change(watch, within=CHANGE_BUDGET_S * 3)
    return change, time.monotonic() - answered, response


async def test_monitor_changes_through_the_api_reach_the_stream_within_a_second(
    api: httpx.AsyncClient, client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    await set_plan(database, world.org_a, "ENTERPRISE")
    existing = await insert_monitor(database, world.org_a)
    _, raw = await create_token(database, settings)
    agent_id = await client.register(raw)
    watch = client.watch(raw, agent_id)
    snapshot = (await next_update(watch)).snapshot
    assert [a.monitor_id for a in snapshot.assignments] == [existing.id]
    version = snapshot.version
    headers = world.alice.headers
    body = {"name": "Shop", "type": "HTTP", "url": "https://shop.example/health", "interval": 15}

    steps: list[tuple[str, Any, int]] = []
    change, latency, response = await timed_change(
        watch, api.post("/api/monitors", json=body, headers=headers)
    )
    monitor_id = response.json()["data"]["id"]
    steps.append(("create", change, pb.Change.ADD))
    assert change.assignment.interval_seconds == 15 and change.assignment.target == body["url"]
    latencies = [latency]
    for label, request, kind in (
        (
            "update",
            api.put(f"/api/monitors/{monitor_id}", json={"url": "https://shop.example/v2"}, headers=headers),
            pb.Change.UPDATE,
        ),
        ("pause", api.post(f"/api/monitors/{monitor_id}/pause", headers=headers), pb.Change.REMOVE),
        ("resume", api.post(f"/api/monitors/{monitor_id}/resume", headers=headers), pb.Change.ADD),
        ("delete", api.delete(f"/api/monitors/{monitor_id}", headers=headers), pb.Change.REMOVE),
    ):
        change, latency, _ = await timed_change(watch, request)
        steps.append((label, change, kind))
        latencies.append(latency)

    for label, change, expected in steps:
        assert change.kind == expected, (label, change)
        assert change.assignment.monitor_id == monitor_id, label
        assert change.version > version, label
        version = change.version
    assert steps[1][1].assignment.target == "https://shop.example/v2"
    assert steps[3][1].assignment.epoch > steps[0][1].assignment.epoch  # resumed: a new grant
    assert max(latencies) < CHANGE_BUDGET_S, latencies
    # Nothing else was announced.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch.read(), 0.3)
    watch.cancel()


async def wait_resumable(endpoint: AgentsEndpoint, key: str, version: int) -> None:
    async def ready() -> bool:
        return endpoint.change_log.resume(key, version) is not None

    assert await poll(ready), "the closed stream was never recorded for resuming"


async def test_a_reconnecting_agent_resumes_from_its_version(
    api: httpx.AsyncClient,
    client: AgentClient,
    endpoint: AgentsEndpoint,
    database: Database,
    settings: Settings,
    world: World,
) -> None:
    await set_plan(database, world.org_a, "ENTERPRISE")
    token_id, raw = await create_token(database, settings)
    kept = await insert_monitor(database, world.org_a)
    changed = await insert_monitor(database, world.org_a)
    agent_id = await client.register(raw)
    watch = client.watch(raw, agent_id)
    snapshot = (await next_update(watch)).snapshot
    assert {a.monitor_id for a in snapshot.assignments} == {kept.id, changed.id}
    watch.cancel()
    await wait_resumable(endpoint, member_key(token_id, "agent-1"), snapshot.version)

    # While it is away: one monitor changes, one is created.
    headers = world.alice.headers
    response = await api.put(
        f"/api/monitors/{changed.id}",
        json={"name": "Renamed", "interval": 20, "timeout": 10},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    response = await api.post(
        "/api/monitors", json={"name": "New", "type": "HTTP", "url": "https://new.example/"}, headers=headers
    )
    created = response.json()["data"]["id"]
    assert await poll(lambda: _granted(database, created))

    agent_id = await client.register(raw)  # a reconnect registers again, then resumes
    watch = client.watch(raw, agent_id, known_version=snapshot.version)
    first = await next_update(watch)
    assert first.WhichOneof("update") == "resumed" and first.resumed.version == snapshot.version
    missed = {}
    for _ in range(2):
        change = await next_change(watch)
        assert change.version > snapshot.version
        missed[change.assignment.monitor_id] = change
    assert (
        missed[changed.id].kind == pb.Change.UPDATE and missed[changed.id].assignment.interval_seconds == 20
    )
    assert missed[created].kind == pb.Change.ADD
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch.read(), 0.3)
    watch.cancel()

    # A version the server cannot continue from gets the whole picture.
    for stale in (snapshot.version, 12345):
        watch = client.watch(raw, agent_id, known_version=stale)
        update = await next_update(watch)
        assert update.WhichOneof("update") == "snapshot", stale
        assert {a.monitor_id for a in update.snapshot.assignments} == {kept.id, changed.id, created}
        watch.cancel()


async def _granted(db: Database, monitor_id: str) -> bool:
    return monitor_id in await active_grants(db)


async def test_an_agent_joining_its_region_takes_over_only_what_it_wins(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    await set_plan(database, world.org_a, "ENTERPRISE")
    _, raw = await create_token(database, settings)
    monitor_ids = {(await insert_monitor(database, world.org_a)).id for _ in range(12)}
    first = await client.register(raw, name="first")
    watch = client.watch(raw, first)
    held = {a.monitor_id: a.epoch for a in (await next_update(watch)).snapshot.assignments}
    assert set(held) == monitor_ids

    second = await client.register(raw, name="second")
    other = client.watch(raw, second)
    taken = {a.monitor_id: a.epoch for a in (await next_update(other)).snapshot.assignments}
    assert taken
    removed: set[str] = set()
    while len(removed) < len(taken):
        change = await next_change(watch)
        assert change.kind == pb.Change.REMOVE
        removed.add(change.assignment.monitor_id)
    assert removed == set(taken)
    assert all(taken[m] > held[m] for m in taken)
    watch.cancel()
    other.cancel()


async def test_an_agent_given_many_monitors_at_once_gets_one_snapshot_of_them(
    client: AgentClient, endpoint: AgentsEndpoint, database: Database, settings: Settings, world: World
) -> None:
    """A region's first agent: its stream opens before the rebalance is done (empty), then gets the
    region's monitors as one snapshot, not a change per monitor."""
    await set_plan(database, world.org_a, "ENTERPRISE")
    _, raw = await create_token(database, settings)
    agent_id = await client.register(raw)
    watch = client.watch(raw, agent_id)
    empty = (await next_update(watch)).snapshot
    assert list(empty.assignments) == []
    monitor_ids = set(await insert_monitors(database, world.org_a, 1_500))
    few = set(await insert_monitors(database, world.org_a, 3))

    await endpoint.coordinator.reassign_region(REGION)

    update = await next_update(watch)
    assert update.WhichOneof("update") == "snapshot", update.WhichOneof("update")
    assert update.snapshot.version > empty.version
    assert {a.monitor_id for a in update.snapshot.assignments} == monitor_ids | few
    # A few changes stay changes.
    async with database.session() as session:
        await session.execute(sql_update(Monitor).where(Monitor.id.in_(few)).values(interval=120))
        await session.commit()
    await endpoint.coordinator.reassign_monitors(few)
    changed = {(await next_change(watch)).assignment.monitor_id for _ in few}
    assert changed == few
    watch.cancel()


# -- results -----------------------------------------------------------------------------------


async def registered_with_grant(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> tuple[str, str, str, Monitor, int]:
    """(token id, raw token, agent id, monitor, epoch) for one agent holding one monitor."""
    token_id, raw = await create_token(database, settings)
    monitor = await insert_monitor(database, world.org_a)
    agent_id = await client.register(raw)
    grants = await active_grants(database)
    return token_id, raw, agent_id, monitor, grants[monitor.id][1]


async def test_a_batch_is_acknowledged_only_once_it_is_committed(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    results = [check_result(monitor.id, epoch) for _ in range(3)]
    queue: asyncio.Queue[pb.ResultBatch] = asyncio.Queue()

    async def batches() -> Any:
        while True:
            yield await queue.get()

    call = client.stub.StreamResults(batches(), metadata=client.metadata(raw))
    await queue.put(pb.ResultBatch(agent_id=agent_id, sequence=7, results=results))
    ack = await asyncio.wait_for(call.read(), 5)
    stored_at_ack = await stored_ids(database, monitor.id)  # read the moment the ack arrives
    call.cancel()

    assert ack.sequence == 7 and list(ack.rejected) == []
    assert stored_at_ack == {r.result_id for r in results}
    async with database.session() as session:
        row = await session.get(CheckResult, results[0].result_id)
        assert row is not None and row.region == REGION and row.agent_id == agent_id
        assert row.scheduled_at is not None and row.status == "UP" and row.total_ms == 75.0


async def test_a_monitors_last_check_follows_its_newest_result_shortly_after_the_ack(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    now = datetime.now(UTC)
    newest = check_result(monitor.id, epoch, scheduled_at=now - timedelta(seconds=2), status=pb.DOWN)
    older = check_result(monitor.id, epoch, scheduled_at=now - timedelta(seconds=30), response_time_ms=5.0)
    acks = await client.send(raw, [pb.ResultBatch(agent_id=agent_id, sequence=1, results=[newest, older])])
    assert [list(ack.rejected) for ack in acks] == [[]]
    # A late batch carrying an older result must not take lastCheck back.
    oldest = check_result(monitor.id, epoch, scheduled_at=now - timedelta(minutes=5))
    await client.send(raw, [pb.ResultBatch(agent_id=agent_id, sequence=2, results=[oldest])])

    expected = newest.finished_at.ToDatetime(tzinfo=UTC)
    deadline = time.monotonic() + 5
    while True:
        async with database.session() as session:
            stored = await session.get(Monitor, monitor.id)
        assert stored is not None
        if stored.last_checked_at is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the late batch's note, had it won, would be written by now
    async with database.session() as session:
        stored = await session.get(Monitor, monitor.id)
    assert stored is not None
    assert stored.last_checked_at is not None
    assert abs(stored.last_checked_at - expected) < timedelta(milliseconds=1)  # float seconds on the way
    assert stored.last_check_status == "DOWN" and stored.last_check_response_time == 75.0


async def test_replayed_results_are_stored_once(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    results = [check_result(monitor.id, epoch) for _ in range(4)]
    batch = pb.ResultBatch(agent_id=agent_id, sequence=1, results=results)
    twice = pb.ResultBatch(agent_id=agent_id, sequence=2, results=results[:2] + results[:2])

    acks = await client.send(raw, [batch, twice])
    acks += await client.send(raw, [batch])  # a new call after a reconnect, replaying from the spool

    assert [ack.sequence for ack in acks] == [1, 2, 1]
    assert all(list(ack.rejected) == [] for ack in acks)
    assert await stored_ids(database, monitor.id) == {r.result_id for r in results}
    await fold_rollups(database)
    async with database.session() as session:
        counted = await session.scalar(
            select(func.sum(CheckRollup.count)).where(
                CheckRollup.monitor_id == monitor.id, CheckRollup.granularity == "hour"
            )
        )
    assert counted == 4


async def test_malformed_results_are_rejected_invalid_and_the_rest_stored(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    good = check_result(monitor.id, epoch)
    no_times = check_result(monitor.id, epoch)
    no_times.ClearField("finished_at")
    bad = {
        "bad id": check_result(monitor.id, epoch, result_id="chk_NOT-VALID"),
        "other region": check_result(monitor.id, epoch, region="eu-west-1"),
        "no status": check_result(monitor.id, epoch, status=pb.CHECK_STATUS_UNSPECIFIED),
        "no times": no_times,
        "details": check_result(monitor.id, epoch, details_json="[1, 2]"),
        "future": check_result(monitor.id, epoch, scheduled_at=datetime.now(UTC) + timedelta(days=1)),
        "NUL in monitor id": check_result("mon_a\x00b", epoch),
        "not a monitor id": check_result("../etc", epoch),
        "screenshot not a PNG": check_result(monitor.id, epoch, screenshot_png=b"GIF89a"),
        "NaN phase": check_result(monitor.id, epoch, dns_ms=float("nan")),
        "infinite phase": check_result(monitor.id, epoch, ttfb_ms=float("inf")),
        "negative phase": check_result(monitor.id, epoch, tcp_ms=-1.0),
        "NaN response time": check_result(monitor.id, epoch, response_time_ms=float("nan")),
        "size beyond a bigint": check_result(monitor.id, epoch, size_bytes=2**63),
    }

    (ack,) = await client.send(
        raw, [pb.ResultBatch(agent_id=agent_id, sequence=1, results=[good, *bad.values()])]
    )

    rejected = {r.result_id: r for r in ack.rejected}
    assert set(rejected) == {r.result_id for r in bad.values()}
    assert {r.reason for r in rejected.values()} == {Reason.INVALID}
    assert all(r.message for r in rejected.values())
    assert await stored_ids(database, monitor.id) == {good.result_id}


async def test_results_under_another_members_or_an_unknown_epoch_are_fenced(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    token_id, raw, holder_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    holder_key = member_key(token_id, "agent-1")
    bystander = await client.register(raw, name=name_that_wins(token_id, monitor.id, holder_key, wins=False))
    assert (await active_grants(database))[monitor.id] == (holder_key, epoch)

    stolen = check_result(monitor.id, epoch)
    invented = check_result(monitor.id, epoch + 100)
    acks = await client.send(
        raw,
        [
            pb.ResultBatch(agent_id=bystander, sequence=1, results=[stolen]),
            pb.ResultBatch(agent_id=holder_id, sequence=2, results=[invented]),
        ],
    )

    assert [(r.result_id, r.reason) for a in acks for r in a.rejected] == [
        (stolen.result_id, Reason.FENCED),
        (invented.result_id, Reason.FENCED),
    ]
    assert await stored_ids(database, monitor.id) == set()


async def test_a_moved_monitors_late_results_are_kept_and_later_ones_fenced(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    token_id, raw, old_holder, monitor, epoch = await registered_with_grant(client, database, settings, world)
    winner = name_that_wins(token_id, monitor.id, member_key(token_id, "agent-1"))
    before_move = datetime.now(UTC) - timedelta(milliseconds=50)
    new_holder = await client.register(raw, name=winner)
    history = await grant_history(database, monitor.id)
    assert [g.epoch for g in history] == [epoch, epoch + 1]
    revoked_at = history[0].revoked_at
    assert revoked_at is not None and history[1].member_key == member_key(token_id, winner)

    late = check_result(monitor.id, epoch, scheduled_at=before_move)  # from the old holder's spool
    after = check_result(monitor.id, epoch, scheduled_at=revoked_at + timedelta(milliseconds=1))
    fresh = check_result(monitor.id, epoch + 1, scheduled_at=revoked_at + timedelta(milliseconds=2))
    acks = await client.send(
        raw,
        [
            pb.ResultBatch(agent_id=old_holder, sequence=1, results=[late, after]),
            pb.ResultBatch(agent_id=new_holder, sequence=2, results=[fresh]),
        ],
    )

    assert [(r.result_id, r.reason) for a in acks for r in a.rejected] == [(after.result_id, Reason.FENCED)]
    assert await stored_ids(database, monitor.id) == {late.result_id, fresh.result_id}


async def test_a_paused_monitors_results_from_before_the_pause_are_kept(
    api: httpx.AsyncClient, client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    before = check_result(monitor.id, epoch, scheduled_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await api.post(f"/api/monitors/{monitor.id}/pause", headers=world.alice.headers)
    assert response.status_code == 200, response.text
    assert await poll(lambda: _revoked(database, monitor.id))
    after = check_result(monitor.id, epoch, scheduled_at=datetime.now(UTC) + timedelta(seconds=1))

    (ack,) = await client.send(raw, [pb.ResultBatch(agent_id=agent_id, sequence=1, results=[before, after])])

    assert [(r.result_id, r.reason) for r in ack.rejected] == [(after.result_id, Reason.FENCED)]
    assert await stored_ids(database, monitor.id) == {before.result_id}


async def _revoked(db: Database, monitor_id: str) -> bool:
    return all(g.revoked_at is not None for g in await grant_history(db, monitor_id))


async def test_results_of_a_deleted_monitor_are_unknown_monitor(
    api: httpx.AsyncClient, client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    kept = await insert_monitor(database, world.org_a)
    assert client.coordinator is not None
    await client.coordinator.reassign_monitors({kept.id})  # as if created through the API
    kept_epoch = (await active_grants(database))[kept.id][1]
    response = await api.delete(f"/api/monitors/{monitor.id}", headers=world.alice.headers)
    assert response.status_code == 200, response.text
    orphan = check_result(monitor.id, epoch)
    fine = check_result(kept.id, kept_epoch)

    (ack,) = await client.send(raw, [pb.ResultBatch(agent_id=agent_id, sequence=1, results=[orphan, fine])])

    assert [(r.result_id, r.reason) for r in ack.rejected] == [(orphan.result_id, Reason.UNKNOWN_MONITOR)]
    assert await stored_ids(database, kept.id) == {fine.result_id}


async def test_an_unknown_sender_is_failed_precondition(
    client: AgentClient, database: Database, settings: Settings
) -> None:
    _, raw = await create_token(database, settings)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.send(raw, [pb.ResultBatch(agent_id="agt_nobody", sequence=1)])
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    watch = client.watch(raw, "agt_nobody")
    await expect_code(grpc.StatusCode.FAILED_PRECONDITION, watch.read())


async def test_another_tokens_agent_id_is_not_accepted(
    client: AgentClient, database: Database, settings: Settings, world: World
) -> None:
    _, _, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    _, other_raw = await create_token(database, settings)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.send(
            other_raw,
            [pb.ResultBatch(agent_id=agent_id, sequence=1, results=[check_result(monitor.id, epoch)])],
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await stored_ids(database, monitor.id) == set()


async def test_a_batch_failing_as_the_stream_ends_leaves_the_streams_own_ending(
    client: AgentClient,
    database: Database,
    settings: Settings,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two endings of one call: the reader meets an unknown sender, and a batch being stored fails
    # as it is cancelled (psycopg, cancelled inside a pipeline, may raise its own AssertionError).
    # The call ends once, with the first: a second abort of a call is grpc's UsageError.
    _, raw, agent_id, monitor, epoch = await registered_with_grant(client, database, settings, world)
    storing = asyncio.Event()
    failed: list[str] = []

    async def failing_on_cancel(*args: Any, **kwargs: Any) -> Any:
        storing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            failed.append("cancelled")
            raise AssertionError from None  # what psycopg's pipeline may raise instead

    monkeypatch.setattr(server_module, "ingest_batch", failing_on_cancel)

    async def batches() -> Any:
        yield pb.ResultBatch(agent_id=agent_id, sequence=1, results=[check_result(monitor.id, epoch)])
        await storing.wait()
        yield pb.ResultBatch(agent_id="agt_nobody", sequence=2)
        await asyncio.sleep(10)

    with caplog.at_level(logging.DEBUG):
        call = client.stub.StreamResults(batches(), metadata=client.metadata(raw))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), 10)
        await eventually(lambda: failed == ["cancelled"])
        await asyncio.sleep(0.2)  # what a second abort would log comes after the call's end

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value
    said = "\n".join(
        f"{record.name}: {record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert "UsageError" not in said and "abort" not in said.lower(), said
    assert await stored_ids(database, monitor.id) == set()


# -- listeners ----------------------------------------------------------------------------------


async def test_several_servers_share_the_port_and_stop_together(
    database: Database, settings: Settings
) -> None:
    served = await AgentsEndpoint.start(
        database, settings.model_copy(update={"grpc_listeners": 3}), ("127.0.0.1", 0)
    )
    assert served.server is not None and len(served.server.servers) == 3
    target = f"127.0.0.1:{served.port}"
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    try:
        for _ in range(12):  # a connection each: the kernel hands each to one of the servers
            async with grpc.aio.insecure_channel(target, options=own_connection) as ch:
                reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await served.stop()
    async with grpc.aio.insecure_channel(target, options=own_connection) as ch:
        await expect_code(
            grpc.StatusCode.UNAVAILABLE,
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2),
        )
