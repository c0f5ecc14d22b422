"""The agent against a fake control plane over a real gRPC socket, in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from agent_fake_control_plane import FakeControlPlane

from agent.checks import CheckRegistry
from agent.checks.base import CheckResult, CheckSpec, Status
from agent.runtime import Agent, AuthenticationFailed
from agent.settings import AgentSettings
from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

StartAgent = Callable[..., Awaitable[Agent]]


async def instant_check(check: CheckSpec) -> CheckResult:
    return CheckResult(Status.UP, 1.0, status_code=200)


def monitor(monitor_id: str, epoch: int = 1) -> pb.Assignment:
    return pb.Assignment(
        monitor_id=monitor_id,
        type="HTTP",
        target="http://127.0.0.1:1/",
        interval_seconds=1,
        timeout_seconds=1,
        config_json="{}",
        epoch=epoch,
    )


async def until(agent: Agent, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Awaits assignment updates until the agent's state satisfies predicate()."""
    await eventually(predicate, timeout_s, "the agent's awaited assignment state", wake=agent.store.updated)


@pytest.fixture
async def start_agent(agent_settings: Callable[..., AgentSettings]) -> AsyncIterator[StartAgent]:
    running: list[tuple[Agent, asyncio.Task[None]]] = []

    async def start(**overrides: object) -> Agent:
        registry = CheckRegistry(runners={"HTTP": instant_check}, capabilities=["http", "tcp"])
        agent = Agent(agent_settings(**overrides), registry=registry)
        running.append((agent, asyncio.create_task(agent.run())))
        return agent

    yield start
    for agent, task in running:
        agent.request_stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_it_registers_with_its_identity_and_token(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    await start_agent()
    await control_plane.wait_for(lambda: bool(control_plane.watch_requests))
    registration = control_plane.registrations[0]
    assert (registration.name, registration.region) == ("agent-under-test", "eu-test")
    assert registration.version and list(registration.capabilities) == ["http", "tcp"]
    assert control_plane.watch_requests[0].agent_id == "agt_1"
    assert control_plane.watch_requests[0].known_version == 0


async def test_snapshot_then_changes_drive_the_checks(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    await until(agent, lambda: agent.store.synced)
    assert agent.scheduler.monitor_ids() == {"mon_a"}

    control_plane.set_monitor(monitor("mon_b", epoch=3))
    await control_plane.wait_for(lambda: any(r.monitor_id == "mon_b" for r in control_plane.results.values()))
    result = next(r for r in control_plane.results.values() if r.monitor_id == "mon_b")
    assert (result.epoch, result.region, result.type, result.status_code) == (3, "eu-test", "HTTP", 200)
    assert result.started_at.ToNanoseconds() >= result.scheduled_at.ToNanoseconds()

    control_plane.remove_monitor("mon_a")
    await until(agent, lambda: agent.store.version == control_plane.version)
    assert agent.scheduler.monitor_ids() == {"mon_b"}


async def test_results_are_deleted_only_after_the_ack(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.commit.clear()
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    await control_plane.wait_for(lambda: bool(control_plane.batches))
    assert (await agent.spool.stats()).count >= 1  # sent, not committed: still spooled
    assert control_plane.batches[0].sequence == 1 and control_plane.batches[0].agent_id == "agt_1"
    control_plane.commit.set()
    assert await agent.pipeline.wait_drained(5)
    assert agent.metrics.results_acked._value.get() >= 1


async def test_a_reconnect_resumes_and_replays_unacknowledged_results(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    control_plane.commit.clear()
    await control_plane.wait_for(lambda: bool(control_plane.batches))
    unacked = {r.result_id for b in control_plane.batches for r in b.results}

    await control_plane.stop()  # the control plane goes away before committing
    control_plane.set_monitor(monitor("mon_b"))  # a change the agent misses while disconnected
    control_plane.commit.set()
    await control_plane.start()

    await control_plane.wait_for(lambda: len(control_plane.watch_requests) == 2)
    assert control_plane.watch_requests[1].known_version == 1
    await control_plane.wait_for(lambda: unacked <= set(control_plane.results))
    await until(agent, lambda: agent.scheduler.monitor_ids() == {"mon_a", "mon_b"})
    assert await agent.pipeline.wait_drained(5)


async def test_without_resume_the_server_sends_a_snapshot(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    await until(agent, lambda: agent.store.synced)
    await control_plane.stop()
    control_plane.resumable = False
    control_plane.remove_monitor("mon_a")
    control_plane.set_monitor(monitor("mon_c"))
    await control_plane.start()
    await until(agent, lambda: agent.scheduler.monitor_ids() == {"mon_c"})
    assert agent.store.version == control_plane.version


async def test_fenced_results_leave_the_spool_and_are_counted(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.fenced_monitors.add("mon_a")
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    await control_plane.wait_for(lambda: bool(control_plane.acked_sequences))
    assert await agent.pipeline.wait_drained(5)
    assert agent.metrics.results_rejected.labels("fenced")._value.get() >= 1
    assert control_plane.results == {}


async def test_a_lost_lease_makes_the_agent_register_again(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.lease_s = 0.3  # renewals every 0.1 s
    await start_agent()
    await control_plane.wait_for(lambda: len(control_plane.renewals) >= 1)
    control_plane.lease_held = False
    await control_plane.wait_for(lambda: len(control_plane.registrations) >= 2)


async def test_failed_renewals_are_tried_again_without_ending_the_session(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    """A busy control plane answering renewals late or not at all must not make every agent register
    again, take a new snapshot and replay its results: only an answer that the lease lapsed does."""
    control_plane.lease_s = 0.3  # renewals every 0.1 s
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    await control_plane.wait_for(lambda: len(control_plane.renewals) >= 1)
    control_plane.renewals_refused = 5
    seen = len(control_plane.renewals)
    await control_plane.wait_for(lambda: len(control_plane.renewals) >= seen + 8)
    assert len(control_plane.registrations) == 1
    assert len(control_plane.watch_requests) == 1
    assert agent.metrics.renewals_failed._value.get() == 5
    assert agent.metrics.reconnects._value.get() == 0
    control_plane.lease_held = False  # and a lapsed lease still makes it register again
    await control_plane.wait_for(lambda: len(control_plane.registrations) >= 2)


async def test_an_agent_whose_results_renew_its_lease_calls_renew_only_while_none_are_acknowledged(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    control_plane.lease_s = 1.5  # a renewal due every 0.5 s
    control_plane.results_renew_lease = True
    for n in range(4):  # about four results a second: an ack between any two renewals due
        control_plane.set_monitor(monitor(f"mon_{n}"))
    await start_agent()
    await control_plane.wait_for(lambda: len(control_plane.acked_sequences) >= 4)
    renewals, acked = len(control_plane.renewals), len(control_plane.acked_sequences)
    await asyncio.sleep(2)
    assert len(control_plane.acked_sequences) >= acked + 4
    assert len(control_plane.renewals) - renewals <= 1  # of the 4 due
    control_plane.commit.clear()  # acks stop: it renews at every one again
    renewals = len(control_plane.renewals)
    await asyncio.sleep(1.6)
    assert len(control_plane.renewals) - renewals >= 2


async def test_a_refused_token_stops_the_agent(agent_settings: Callable[..., AgentSettings]) -> None:
    agent = Agent(agent_settings(token="wrong"), registry=CheckRegistry())
    with pytest.raises(AuthenticationFailed, match="unknown or revoked agent token"):
        async with asyncio.timeout(5):
            await agent.run()


async def test_metrics_health_and_readiness(control_plane: FakeControlPlane, start_agent: StartAgent) -> None:
    control_plane.set_monitor(monitor("mon_a"))
    agent = await start_agent()
    await control_plane.wait_for(lambda: bool(control_plane.results))
    base = f"http://127.0.0.1:{agent.observability.port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{base}/readyz") as response:
            assert response.status == 200
        async with session.get(f"{base}/metrics") as response:
            text = await response.text()
    for line in (
        "traxo_agent_connected 1.0",
        "traxo_agent_assignments 1.0",
        'traxo_agent_checks_total{status="UP",type="HTTP"}',
        "traxo_agent_schedule_lag_seconds_bucket",
        "traxo_agent_check_duration_seconds_bucket",
        "traxo_agent_spool_results",
        "traxo_agent_spool_oldest_age_seconds",
        "traxo_agent_results_sent_total",
        "traxo_agent_results_acked_total",
        "traxo_agent_skipped_runs_total",
    ):
        assert line in text, line


async def test_not_ready_without_control_plane_or_persisted_assignments(
    control_plane: FakeControlPlane, start_agent: StartAgent
) -> None:
    await control_plane.stop()
    agent = await start_agent()
    await agent.started.wait()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{agent.observability.port}/readyz") as response:
            assert response.status == 503
            assert "not registered" in await response.text()
