"""A rolling restart of two `traxo api` replicas on one PostgreSQL database, under load and with a real
agent: every answered request is durable, none is a 5xx, and the agent's results are all stored once."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select

from control_plane import migrate
from control_plane.db import Database
from control_plane.models import AiEvent, CheckResult, Monitor
from control_plane.settings import Plan
from tests.conftest import Account, make_account, make_org
from tests.factories import insert_monitor
from tests.operations.support import ApiProcess, Target, agent_metric
from tests.processes import BIN, command_env, free_port, run_traxo
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

REGION = "ops-east"
DELAY_S = 1.0  # TRAXO_SHUTDOWN_DELAY_SECONDS: /readyz says 503 this long before the listener closes
DEADLINE_S = 10.0


@dataclass
class Load:
    """Requests at both replicas in turn, as a load balancer sends them: to the replicas whose
    /readyz answers 200 (polled every 0.1 s). One refused before it was sent (connection refused)
    is sent to the other replica; one whose answer was lost (a reset after sending) is never sent
    again."""

    replicas: list[ApiProcess]
    owner: Account
    llm_monitor: str
    created: list[str] = field(default_factory=list)  # monitors answered 201
    acknowledged: list[str] = field(default_factory=list)  # eventIds answered 200
    server_errors: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    retried: int = 0
    stopping: bool = False
    ready: dict[str, bool] = field(default_factory=dict)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    async def watch_readiness(self) -> None:
        async with httpx.AsyncClient(timeout=0.5) as client:
            while not self.stopping:
                for replica in self.replicas:
                    try:
                        answer = await client.get(f"{replica.base_url}/readyz")
                        self.ready[replica.name] = answer.status_code == 200
                    except httpx.HTTPError:
                        self.ready[replica.name] = False
                await asyncio.sleep(0.1)

    async def run(self, worker: int) -> None:
        # A new connection for every request: a kept-alive one that the draining replica closes
        # would lose a request nobody could tell was never read.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            for n in itertools.count():
                if self.stopping:
                    return
                await self._send(client, "monitor" if n % 2 else "event", f"w{worker}-{n}")
                await asyncio.sleep(0.01)  # two cores: leave some to the replicas' starting

    async def _send(self, client: httpx.AsyncClient, kind: str, name: str) -> None:
        first = next(self._turn)
        ready = [r for r in self.replicas if self.ready.get(r.name, True)] or self.replicas
        for attempt in range(len(self.replicas) * 3):
            replica = (ready if attempt == 0 else self.replicas)[
                (first + attempt) % len(ready if attempt == 0 else self.replicas)
            ]
            try:
                if kind == "monitor":
                    response = await client.post(
                        f"{replica.base_url}/api/monitors",
                        json={"name": name, "type": "HEARTBEAT", "interval": 3600},
                        headers=self.owner.headers,
                    )
                else:
                    response = await client.post(
                        f"{replica.base_url}/api/ai/ingest/{self.llm_monitor}",
                        json={
                            "provider": "openai",
                            "model": "gpt-4o",
                            "promptTokens": 10,
                            "completionTokens": 5,
                            "latencyMs": 100,
                            "eventId": name,
                        },
                    )
            except httpx.ConnectError:
                self.retried += 1
                await asyncio.sleep(0.01)
                continue
            except httpx.HTTPError as exc:
                self.unanswered.append(f"{kind} {name} at {replica.name}: {exc!r}")
                return
            if response.status_code >= 500:
                self.server_errors.append(
                    f"{kind} {name} at {replica.name}: {response.status_code} {response.text}"
                )
            elif kind == "monitor" and response.status_code == 201:
                self.created.append(response.json()["data"]["id"])
            elif kind == "event" and response.status_code == 200:
                self.acknowledged.append(name)
            else:
                raise AssertionError(f"{kind} {name}: {response.status_code} {response.text}")
            return
        self.unanswered.append(f"{kind} {name}: every replica refused the connection")


async def grpc_health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="traxo.agent.v1.AgentService"), timeout=1
        )
        return int(reply.status)


async def drain_and_restart(replica: ApiProcess, agent_port: int) -> None:
    """SIGTERM: /readyz 503 and gRPC NOT_SERVING at once, exit 0 within the deadline; then back up."""
    replica.signal(signal.SIGTERM)
    signalled = time.monotonic()
    print(f"{time.strftime('%X')} SIGTERM {replica.name}")

    async def draining() -> bool:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{replica.base_url}/readyz", timeout=1)).status_code == 503

    await eventually(draining, DELAY_S / 2, f"{replica.name}'s /readyz says 503", 0.05)
    assert await grpc_health(replica.grpc_port) == health_pb2.HealthCheckResponse.NOT_SERVING
    code, _ = await replica.exited(DEADLINE_S + 5)
    took = time.monotonic() - signalled
    assert code == 0, replica.log()[-3000:]
    assert took < DEADLINE_S, f"{replica.name} took {took:.1f} s to drain"
    assert "shutdown: done in" in replica.log()

    async def agent_connected() -> bool:
        return await agent_metric(agent_port, "traxo_agent_connected") == 1.0

    print(f"{time.strftime('%X')} {replica.name} exited after {took:.1f} s")
    await eventually(agent_connected, 10, "the agent reconnects to the other replica", 0.1)
    print(f"{time.strftime('%X')} agent connected")
    await replica.start()
    await replica.ready()
    print(f"{time.strftime('%X')} {replica.name} ready again")


async def test_a_rolling_restart_loses_no_answered_request_and_no_result(
    fresh_database_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(migrate.upgrade, fresh_database_url)
    db = Database(fresh_database_url)
    target = Target()
    await target.start()
    env = command_env(
        fresh_database_url,
        TRAXO_REGIONS=REGION,
        TRAXO_DEFAULT_REGIONS=REGION,
        # Monitors below are inserted into the database (2 s intervals are below every plan's
        # minimum), which no change notification announces: the full pass finds them.
        TRAXO_AGENT_FULL_PASS_SECONDS="1",
        TRAXO_RATE_LIMIT_MULTIPLIER="100",
        TRAXO_SHUTDOWN_DELAY_SECONDS=str(DELAY_S),
        TRAXO_SHUTDOWN_DEADLINE_SECONDS=str(DEADLINE_S),
        TRAXO_LOG_LEVEL="info",
    )
    replicas = [ApiProcess(name, env, tmp_path, "--no-migrate") for name in ("replica-a", "replica-b")]
    agent: asyncio.subprocess.Process | None = None
    agent_log = tmp_path / "agent.log"
    try:
        owner = await make_account(db, "ops@rolling.example", "Ops")
        await make_org(db, owner, "rolling", plan=Plan.ENTERPRISE)
        probed = {
            f"/probe-{i}": (
                await insert_monitor(
                    db,
                    owner.org_id or "",
                    name=f"probe {i}",
                    url=f"{target.url}/probe-{i}",
                    interval=2,
                    timeout=1,
                    regions=[REGION],
                )
            ).id
            for i in range(3)
        }
        token = run_traxo("agents", "create-token", "--region", REGION, env=env).strip().splitlines()[-1]
        await asyncio.gather(*(replica.start() for replica in replicas))
        await asyncio.gather(*(replica.ready() for replica in replicas))

        # One agent, given both replicas' addresses: it dials the first that answers.
        metrics_port = free_port()
        grpc_targets = ",".join(f"127.0.0.1:{replica.grpc_port}" for replica in replicas)
        with agent_log.open("ab") as log:
            agent = await asyncio.create_subprocess_exec(
                str(BIN / "traxo-agent"),
                "--control-plane", f"ipv4:{grpc_targets}",
                "--region", REGION,
                "--name", "rolling",
                "--spool", str(tmp_path / "agent.spool"),
                "--metrics-host", "127.0.0.1",
                "--metrics-port", str(metrics_port),
                "--reconnect-min", "0.2",
                "--reconnect-max", "1",
                "--shutdown-deadline", "5",
                env={**command_env(None), "TRAXO_AGENT_TOKEN": token},
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

        async def probing() -> bool:
            return all(target.hits[path] for path in probed)

        await eventually(probing, 20, "the agent probes every monitor", 0.2)
        print(f"{time.strftime('%X')} probing")

        async with httpx.AsyncClient() as client:
            created = await client.post(
                f"{replicas[0].base_url}/api/monitors",
                json={"name": "Chat", "type": "LLM"},
                headers=owner.headers,
            )
        assert created.status_code == 201, created.text
        load = Load(replicas, owner, created.json()["data"]["id"])
        workers = [asyncio.create_task(load.run(n)) for n in range(2)]
        workers.append(asyncio.create_task(load.watch_readiness()))
        await asyncio.sleep(2)
        for replica in replicas:  # A, then B
            await drain_and_restart(replica, metrics_port)
            await asyncio.sleep(1.5)
        load.stopping = True
        await asyncio.gather(*workers)

        # The agent stops: its running checks finish and every result is acknowledged first.
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 15) == 0
        agent_output = agent_log.read_text(errors="replace")
        assert "stopped; 0 unacknowledged results in the spool" in agent_output, agent_output[-3000:]

        assert load.server_errors == []
        # Sent only to ready replicas, no request meets a listener closing (a connection the kernel
        # had queued then would be reset unread): the delay after /readyz's 503 is what gives this.
        assert load.unanswered == [], load.unanswered
        assert len(load.created) > 20 and len(load.acknowledged) > 20, (load.created, load.acknowledged)
        async with db.session() as session:
            stored_monitors = set(
                await session.scalars(select(Monitor.id).where(Monitor.id.in_(load.created)))
            )
            events = dict(
                (
                    await session.execute(
                        select(AiEvent.client_event_id, func.count())
                        .where(AiEvent.monitor_id == load.llm_monitor)
                        .group_by(AiEvent.client_event_id)
                    )
                ).all()
            )
            results = dict(
                (
                    await session.execute(
                        select(CheckResult.monitor_id, func.count())
                        .where(CheckResult.monitor_id.in_(list(probed.values())))
                        .group_by(CheckResult.monitor_id)
                    )
                ).all()
            )
        assert stored_monitors == set(load.created)
        assert all(events.get(event_id) == 1 for event_id in load.acknowledged), {
            event_id: events.get(event_id) for event_id in load.acknowledged if events.get(event_id) != 1
        }
        # Every probe the target saw is one result, stored once: none lost across two restarts.
        stored = {path: results.get(monitor_id, 0) for path, monitor_id in probed.items()}
        assert stored == {path: target.hits[path] for path in probed}
        print(
            f"created {len(load.created)} monitors, {len(load.acknowledged)} events acknowledged, "
            f"{load.retried} connections refused and retried, unanswered {load.unanswered}, results {stored}"
        )
    except BaseException:
        for replica in replicas:
            print(f"--- {replica.name} ---\n{replica.log()[-4000:]}")
        if agent_log.exists():
            print(f"--- agent ---\n{agent_log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        if agent is not None and agent.returncode is None:
            agent.kill()
            await agent.wait()
        for replica in replicas:
            await replica.stop()
        await target.stop()
        await db.dispose()
