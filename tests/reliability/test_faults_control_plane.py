"""Faults of the control plane's half (issue 16), each with real processes: `traxo api` SIGKILLed
while it ingests agents' results and AI events, PostgreSQL (a cluster of the test's own) stopped
and started under `traxo api` and its workers, and `traxo worker` SIGKILLed mid-delivery.

Covered elsewhere, not repeated here:
- `traxo api` SIGKILLed at a random moment while two agents stream results, and an agent restarted
  with its spool meanwhile: tests/e2e/test_agents_e2e.py,
  test_a_control_plane_outage_and_an_agent_restart_lose_and_duplicate_nothing. The test here kills
  it with an agent's batches certainly taken and not committed, then again as the spool replay lands.
- `traxo api` (its alerts job) SIGKILLed while a receiver holds the webhook, then sent again under
  the same webhook-id: tests/e2e/test_alerts_e2e.py,
  test_an_api_killed_mid_send_sends_it_again_after_restart. The test here does it to `traxo worker`.

Those two run on both databases; the SIGKILL tests here run in the PostgreSQL pass only (production's
database, and the suite's ten minutes on SQLite), as do the outage tests (a cluster of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from control_plane import migrate
from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.core.timefmt import utcnow
from control_plane.db import Database, UnavailableLog, database_unavailable
from control_plane.models import CheckResult
from control_plane.models.ai import AiDailyUsage, AiEvent, AiUsageRollup
from control_plane.settings import Plan, Settings
from tests.ai.support import MINIMAL_EVENT, insert_llm_monitor
from tests.alert_delivery_support import deliveries, insert_channel, open_down
from tests.conftest import Account, make_account, make_org
from tests.databases import scratch_database
from tests.e2e.test_alerts_e2e import Hooks
from tests.factories import insert_monitor
from tests.operations.support import ApiProcess, Target
from tests.processes import BIN, command_env, run_traxo
from tests.reliability.fault_support import (
    AgentRun,
    Answer,
    IngestClient,
    LoggedProcess,
    PgCluster,
    answer_of,
)
from tests.waiting import eventually

REGION = "faults-east"


@dataclass
class Ingest:
    """`traxo api` (no workers) on a database of the suite's kind, and an agent token for REGION."""

    tmp: Path
    db: Database
    owner: Account
    api: ApiProcess
    agent_token: str


@pytest.fixture(scope="module")
async def ingest(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingest]:
    tmp = tmp_path_factory.mktemp("ingest-faults")
    with scratch_database(database_url, tmp, "traxo_faults") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        db = Database(url)
        owner = await make_account(db, "ops@faults.example", "Ops")
        await make_org(db, owner, "faults-org", plan=Plan.ENTERPRISE)
        env = command_env(
            url,
            TRAXO_LOG_LEVEL="info",
            TRAXO_REGIONS=REGION,
            TRAXO_DEFAULT_REGIONS=REGION,
            # Monitors here are rows inserted by the test, which no change announces: sweep often.
            TRAXO_AGENT_FULL_PASS_SECONDS="1",
        )
        output = await asyncio.to_thread(run_traxo, "agents", "create-token", "--region", REGION, env=env)
        api = ApiProcess("api", env, tmp, "--no-workers", "--no-migrate")
        try:
            await api.start()
            await api.ready()
            yield Ingest(tmp, db, owner, api, output.strip().splitlines()[-1])
        finally:
            await api.stop()
            await db.dispose()


async def _kill(api: ApiProcess) -> None:
    api.signal(signal.SIGKILL)
    code, _ = await api.exited(15)
    assert code == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.postgres_only  # on SQLite, the e2e tests named above SIGKILL `traxo api` as well
async def test_an_api_killed_while_it_ingests_ai_events_stores_each_answered_event_once(
    ingest: Ingest,
) -> None:
    """Three clients send batches without pause (two JSON, one OTLP), SIGKILL, restart: every
    event of every batch answered 2xx is stored once, a batch sent again (cut off, or refused
    while the API was away) is not stored twice, and the daily counter and the hourly rollups
    count each event once. One more batch is committed and its answer never read before the
    kill: sent again after the restart, it is answered with the events stored the first time."""
    monitor = await insert_llm_monitor(ingest.db, ingest.owner.org_id or "")
    base = ingest.api.base_url
    clients = [
        IngestClient(base, monitor.id, "json-a"),
        IngestClient(base, monitor.id, "json-b"),
        IngestClient(base, monitor.id, "otlp-c", otlp=True),
    ]
    lost = IngestClient(base, monitor.id, "json-lost")
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=10) as http:
        tasks = [asyncio.create_task(client.run(http, stop)) for client in clients]
        try:
            await eventually(
                lambda: all(len(c.answered) >= 5 for c in clients), 30, "each client's batches answered", 0.05
            )
            # One batch certainly committed and never answered: its answer is not read before the kill.
            lost_ids = lost.event_ids(0)
            unread = await _send_unread(ingest.api.port, *lost.request(0))
            committed = await eventually(
                lambda: _stored_ids(ingest.db, lost_ids), 15, "the lost batch commits"
            )
            await _kill(ingest.api)
            unread.close()
            killed_at = utcnow()
            cut_off = {client.name: len(client.statuses) for client in clients}
            in_flight = {client.name: len(client.answered) for client in clients}  # its number
            await eventually(
                lambda: all(0 in c.statuses[cut_off[c.name] :] for c in clients),
                10,
                "every client finds the API gone",
                0.05,
            )
            before = {client.name: len(client.answered) for client in clients}
            await ingest.api.start()
            await ingest.api.ready()
            await eventually(
                lambda: all(len(c.answered) >= before[c.name] + 5 for c in clients),
                30,
                "each client's batches answered after the restart",
                0.05,
            )
            path, body, headers = lost.request(0)
            again = await http.post(f"{base}{path}", content=body, headers=headers)
            assert again.status_code == 200, again.text
            # Answered with the events stored before the kill, not new ones.
            assert [event["id"] for event in again.json()["data"]] == committed
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=30)
            for task in pending:
                task.cancel()
        for task in tasks:
            if not task.cancelled():
                task.result()  # a client's own failure, if it had one

    answered = [event_id for client in clients for ids in client.answered.values() for event_id in ids]
    answered += lost_ids
    assert len(answered) == len(set(answered))
    async with ingest.db.session() as session:
        rows = await session.execute(
            select(AiEvent.client_event_id, func.count())
            .where(AiEvent.monitor_id == monitor.id)
            .group_by(AiEvent.client_event_id)
        )
        stored = {event_id: int(count) for event_id, count in rows.all()}
        rollup_events = await session.scalar(
            select(func.sum(AiUsageRollup.events)).where(AiUsageRollup.monitor_id == monitor.id)
        )
        daily = await session.scalar(
            select(func.sum(AiDailyUsage.events)).where(AiDailyUsage.org_id == monitor.org_id)
        )
        # The batches in flight at the kill whose events were committed before it: their answers
        # were lost, and the resend was answered with the stored events (in some runs: the moment
        # of the kill decides; the lost batch above is that case for certain).
        first_ids = [client.event_ids(in_flight[client.name])[0] for client in clients]
        committed_unanswered = await session.scalar(
            select(func.count()).where(
                AiEvent.monitor_id == monitor.id,
                AiEvent.client_event_id.in_(first_ids),
                AiEvent.created_at <= killed_at,
            )
        )
    assert set(stored) == set(answered), (len(stored), len(answered))
    assert {count for count in stored.values()} == {1}
    assert rollup_events == len(answered)
    assert daily == len(answered)  # this monitor's organization ingests nothing else
    resent = {client.name: client.resent for client in clients}
    assert all(resent.values()), resent  # each client had batches to send again
    print(
        f"{len(answered)} events stored once each; sends again: {resent}; batches committed at the "
        f"kill whose answer was lost: {committed_unanswered} of {len(clients)}"
    )


MONITORS = 30
INTERVAL_S = 1
FENCED = 'traxo_agent_results_rejected_total{reason="fenced"}'


@pytest.mark.slow
@pytest.mark.postgres_only  # on SQLite, the e2e tests named above SIGKILL `traxo api` as well
async def test_an_api_killed_while_it_takes_results_and_a_spool_replay_loses_and_repeats_none(
    ingest: Ingest,
) -> None:
    """An agent streams 30 results a second. `traxo api` is SIGKILLed twice: first with batches
    taken but not committed (the test holds check_results' write lock, so they are in flight for
    sure), then as soon as it has stored the first of the agent's spool replay. After a restart
    the agent drains its spool: every result the API acknowledged is stored, none twice, and every
    check the target saw is stored but those refused after the final pause (fenced)."""
    target = Target()
    await target.start()
    agent = AgentRun("agent-1", REGION, ingest.agent_token, ingest.api.grpc_port, ingest.tmp)
    org_id = ingest.owner.org_id or ""
    monitor_ids = [
        (
            await insert_monitor(
                ingest.db,
                org_id,
                name=f"replayed {i}",
                url=f"{target.url}/replayed-{i}",
                interval=INTERVAL_S,
                timeout=1,
                regions=[REGION],
            )
        ).id
        for i in range(MONITORS)
    ]
    api = ingest.api

    async def stored_results() -> int:
        async with ingest.db.session() as session:
            count = await session.scalar(select(func.count()).where(CheckResult.monitor_id.in_(monitor_ids)))
        return int(count or 0)

    async def unacknowledged() -> float:
        sent = await agent.metric("traxo_agent_results_sent_total")
        return sent - await agent.metric("traxo_agent_results_acked_total")

    try:
        await agent.start()
        await eventually(lambda: _at_least(stored_results, MONITORS * 2), 30, "results arrive", 0.1)
        async with results_held(ingest.db):
            await eventually(
                lambda: _at_least(unacknowledged, MONITORS),
                20,
                "a second's results sent, not committed",
                0.05,
            )
            await _kill(api)
        await eventually(lambda: _metric_at_least(agent, "traxo_agent_spool_results", MONITORS * 3), 20)
        before_replay = await stored_results()
        await api.start()
        await eventually(lambda: _at_least(stored_results, before_replay + 1), 30, "the replay begins", 0.01)
        await _kill(api)  # as soon as the first of the replay is committed, its ack perhaps not sent
        spooled = await agent.metric("traxo_agent_spool_results")
        await api.start()
        await api.ready()
        await eventually(lambda: _metric_at_least(agent, "traxo_agent_connected", 1), 20, "reconnects")

        async with httpx.AsyncClient(base_url=api.base_url, headers=ingest.owner.headers) as client:
            for monitor_id in monitor_ids:  # through the API: the agent hears of it at once
                response = await client.post(f"/api/monitors/{monitor_id}/pause", timeout=10)
                assert response.status_code == 200, response.text
        await eventually(lambda: _metric_equals(agent, "traxo_agent_assignments", 0), 20, "the agent stops")
        await eventually(lambda: _metric_equals(agent, "traxo_agent_spool_results", 0), 20, "it drains")

        async def every_check_accounted_for() -> bool:
            # A check running when its monitor was paused finishes, and its result is sent after the
            # spool looked empty: its hit is counted before it is fenced. Lost results never settle.
            hits = sum(target.hits[f"/replayed-{i}"] for i in range(MONITORS))
            return hits == await stored_results() + await agent.metric(FENCED)

        with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
            await eventually(every_check_accounted_for, 10, "the last running checks' results", 0.1)
        stored = await stored_results()
        acked = await agent.metric("traxo_agent_results_acked_total")
        sent = await agent.metric("traxo_agent_results_sent_total")
        fenced = await agent.metric(FENCED)
        hits = sum(target.hits[f"/replayed-{i}"] for i in range(MONITORS))
        print(f"stored {stored}, acknowledged {acked}, sent {sent}, fenced {fenced}, spooled {spooled}")
        assert stored == acked  # each acknowledged result once, and nothing unacknowledged
        assert hits == stored + fenced  # every check run is stored, but those refused after the pause
        assert sent >= acked + fenced + MONITORS  # what the first kill cut off went out again
    except BaseException:
        print(api.log()[-4000:], agent.log()[-4000:], sep="\n")
        raise
    finally:
        await agent.stop()
        await target.stop()


@asynccontextmanager
async def results_held(db: Database) -> AsyncIterator[None]:
    """While open, writes to check_results wait: the API takes an agent's batches and cannot commit
    them (SQLite: the file's write lock; PostgreSQL: a SHARE lock on the table)."""
    if db.is_sqlite:
        path = make_url(db.url).database
        holder = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
            yield
            await asyncio.to_thread(holder.execute, "ROLLBACK")
        finally:
            holder.close()
        return
    async with db.engine.connect() as conn:
        await conn.execute(text("LOCK TABLE check_results IN SHARE MODE"))
        yield
        await conn.rollback()


async def _send_unread(port: int, path: str, body: bytes, headers: dict[str, str]) -> asyncio.StreamWriter:
    """POST without reading the answer: the connection, to close once the answer no longer matters."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    return writer


async def _stored_ids(db: Database, event_ids: list[str]) -> list[str] | None:
    """The stored events' ids (evt_...) in the order of `event_ids`, once all are stored."""
    async with db.session() as session:
        rows = await session.execute(
            select(AiEvent.client_event_id, AiEvent.id).where(AiEvent.client_event_id.in_(event_ids))
        )
        stored = dict(rows.all())
    return [stored[event_id] for event_id in event_ids] if len(stored) == len(event_ids) else None


async def _at_least(count: Callable[[], Awaitable[float]], minimum: float) -> bool:
    return await count() >= minimum


async def _metric_at_least(agent: AgentRun, name: str, minimum: float) -> bool:
    return await agent.metric(name) >= minimum


async def _metric_equals(agent: AgentRun, name: str, value: float) -> bool:
    return await agent.metric(name) == value


@pytest.mark.slow
@pytest.mark.postgres_only  # on SQLite, the e2e tests named above SIGKILL `traxo api` as well
async def test_a_worker_killed_mid_delivery_sends_it_again_once_after_restart(ingest: Ingest) -> None:
    """`traxo worker` alone (no API): SIGKILLed while the receiver holds a webhook, started again,
    it sends the same delivery under the same webhook-id once its claim has lapsed, and marks it
    delivered; nothing else arrives."""
    hooks = Hooks()
    await hooks.start()
    account = await make_account(ingest.db, "ops@worker-faults.example", "Ops")
    await make_org(ingest.db, account, "worker-faults-org", plan=Plan.ENTERPRISE)
    org_id = account.org_id or ""
    await insert_channel(ingest.db, org_id, config={"url": hooks.url}, created_at=utcnow())
    monitor = await insert_monitor(ingest.db, org_id, name="delivered once", is_active=False)
    env = command_env(
        ingest.api.env["TRAXO_DATABASE_URL"],
        TRAXO_LOG_LEVEL="info",
        TRAXO_ALERTS_ALLOW_PRIVATE_URLS="true",
        TRAXO_ALERT_SEND_TIMEOUT_SECONDS="1",  # a claim of (1 + 5) + 5 s with a batch of 20
        TRAXO_ALERT_DELIVERY_BATCH="20",
    )
    worker = LoggedProcess("worker", [str(BIN / "traxo"), "worker", "--no-migrate"], env, ingest.tmp)
    try:
        hooks.hang = True
        incident_id = await open_down(ingest.db, monitor, utcnow())
        await worker.start()
        [(first_id, kind)] = await eventually(lambda: hooks.of(monitor.id), 30, "the webhook arrives", 0.1)
        assert kind == "incident.opened"
        await worker.kill()  # while the receiver holds it
        hooks.hang = False
        [row] = [r for r in await deliveries(ingest.db) if r.incident_id == incident_id]
        assert (row.status, row.attempts) == ("pending", 0)
        await worker.start()

        async def delivered() -> bool:
            rows = [r for r in await deliveries(ingest.db) if r.incident_id == incident_id]
            return [r.status for r in rows] == ["delivered"]

        await eventually(delivered, 40, "the delivery goes out again once its claim lapses", 0.2)
        await worker.stop()
        assert [webhook_id for webhook_id, _ in hooks.of(monitor.id)] == [first_id, first_id]
        [row] = [r for r in await deliveries(ingest.db) if r.incident_id == incident_id]
        assert (row.idempotency_key, row.attempts) == (first_id, 1)
    except BaseException:
        print(worker.log()[-4000:])
        raise
    finally:
        await worker.stop()
        await hooks.stop()


# -- PostgreSQL stopped and started under `traxo api` ---------------------------------------------


@dataclass
class Outage:
    cluster: PgCluster
    db: Database
    owner: Account
    api: ApiProcess
    hooks: Hooks
    monitor_id: str  # an HTTP monitor, renamed by the writes
    llm_monitor_id: str
    heartbeat_token: str
    page_slug: str


@pytest.fixture(scope="module")
async def outage(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outage]:
    # Not `database_url`'s server, a cluster of its own; the fixture puts it in the PostgreSQL pass.
    tmp = tmp_path_factory.mktemp("pg-outage")
    cluster = PgCluster()
    await asyncio.to_thread(cluster.init)
    await asyncio.to_thread(cluster.start)
    db: Database | None = None
    api: ApiProcess | None = None
    hooks = Hooks()
    try:
        await asyncio.to_thread(migrate.upgrade, cluster.url)
        db = Database(cluster.url)
        owner = await make_account(db, "ops@outage.example", "Ops")
        await make_org(db, owner, "outage-org", plan=Plan.ENTERPRISE)
        await hooks.start()
        await insert_channel(db, owner.org_id or "", config={"url": hooks.url}, created_at=utcnow())
        monitor = await insert_monitor(db, owner.org_id or "", name="written", interval=3600)
        llm = await insert_llm_monitor(db, owner.org_id or "")
        env = command_env(
            cluster.url,
            TRAXO_LOG_LEVEL="info",
            TRAXO_ALERTS_ALLOW_PRIVATE_URLS="true",
            # Every read of the page goes to the route (no replayed answer): the database's.
            TRAXO_STATUS_PAGE_CACHE_SECONDS="0",
        )
        api = ApiProcess("api", env, tmp, "--no-migrate")
        await api.start()
        await api.ready()
        async with httpx.AsyncClient(base_url=api.base_url, headers=owner.headers, timeout=10) as client:
            created = await client.post(
                "/api/monitors", json={"name": "cron", "type": "HEARTBEAT", "interval": 3600}
            )
            assert created.status_code == 201, created.text
            token = created.json()["data"]["heartbeatUrl"].rsplit("/", 1)[1]
            page = await client.post(
                "/api/status-pages",
                json={"name": "Outage", "slug": "outage-page", "monitors": [{"monitorId": monitor.id}]},
            )
            assert page.status_code == 201, page.text
        yield Outage(cluster, db, owner, api, hooks, monitor.id, llm.id, token, "outage-page")
    finally:
        if api is not None:
            await api.stop()
        await hooks.stop()
        if db is not None:
            await db.dispose()
        await asyncio.to_thread(cluster.remove)


async def _round(outage: Outage, client: httpx.AsyncClient, number: int) -> list[Answer]:
    """One of each kind of request, at once: API reads and writes, AI ingest, a heartbeat ping, the
    public page (JSON and HTML), /readyz."""
    auth = outage.owner.headers
    event = MINIMAL_EVENT
    requests = {
        "list monitors": client.get("/api/monitors", headers=auth),
        "read monitor": client.get(f"/api/monitors/{outage.monitor_id}", headers=auth),
        "rename monitor": client.put(
            f"/api/monitors/{outage.monitor_id}", headers=auth, json={"name": f"written {number}"}
        ),
        "dashboard": client.get("/api/dashboard/stats", headers=auth),
        "ai ingest": client.post(f"/api/ai/ingest/{outage.llm_monitor_id}", json=event),
        # Nothing to store, but the monitor is still looked up: a read of the ingest's own.
        "ai ingest, no valid event": client.post(
            f"/api/ai/ingest/{outage.llm_monitor_id}", json={"events": [{"provider": "openai"}]}
        ),
        "heartbeat ping": client.post(f"/api/heartbeat/{outage.heartbeat_token}"),
        "public page": client.get(f"/api/status-pages/{outage.page_slug}"),
        "page html": client.get(f"/status/{outage.page_slug}"),
        "readyz": client.get("/readyz"),
    }
    return list(await asyncio.gather(*(answer_of(name, request) for name, request in requests.items())))


_JOBS = ("incident-queue", "incidents", "heartbeats", "rollups")
_LAST_SUCCESS = 'traxo_worker_job_last_success_timestamp_seconds{{job="{}"}}'


def _sample(exposition: str, series: str) -> float:
    """A sample's value in a Prometheus text exposition (0 when absent)."""
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


async def _succeeds(outage: Outage, client: httpx.AsyncClient) -> bool:
    return _succeeded(await _round(outage, client, 0))


def _succeeded(answers: list[Answer]) -> bool:
    return all(200 <= answer.status < 300 for answer in answers)


@pytest.mark.slow
@pytest.mark.postgres_only  # a PostgreSQL cluster of the test's own, stopped and started (its binaries)
async def test_a_restart_between_requests_costs_the_first_requests_a_503_then_none(outage: Outage) -> None:
    """No request meets the outage: the pool's connections died unseen, and the first statement on
    one finds it (db.py's reason for no ping at checkout). Those requests are a 503, never a 500,
    and the pool, invalidated by the first, serves the next ones. An API without workers, whose
    rounds would otherwise find the dead connections first."""
    api = ApiProcess("api-alone", outage.api.env, outage.api.log_path.parent, "--no-workers", "--no-migrate")
    await api.start()
    try:
        await api.ready()
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
            assert _succeeded(await _round(outage, client, 0))  # the pool holds connections now
            await asyncio.to_thread(outage.cluster.stop)
            await asyncio.to_thread(outage.cluster.start)
            first = await _round(outage, client, 1)
            assert {a.status for a in first} <= {200, 201, 503} and 503 in {a.status for a in first}, first
            assert all(a.clean_unavailable for a in first if a.status == 503 and a.name != "readyz"), first
            second = await _round(outage, client, 2)
            assert _succeeded(second), second
    finally:
        await api.stop()
    assert "Traceback" not in api.log(), api.log()[-5000:]


@pytest.mark.slow
@pytest.mark.postgres_only  # a PostgreSQL cluster of the test's own, stopped and started (its binaries)
async def test_agents_meeting_a_database_restart_are_told_unavailable_and_reconnect(outage: Outage) -> None:
    api = outage.api
    assert api.process is not None and api.process.returncode is None
    token = await asyncio.to_thread(run_traxo, "agents", "create-token", "--region", "us-east-1", env=api.env)
    agent = AgentRun(
        "agent-outage", "us-east-1", token.strip().splitlines()[-1], api.grpc_port, api.log_path.parent
    )
    await agent.start()
    try:
        await eventually(lambda: _metric_equals(agent, "traxo_agent_connected", 1), 20, "the agent connects")
        logged_before = len(api.log())
        await asyncio.to_thread(outage.cluster.stop)
        await eventually(lambda: _metric_equals(agent, "traxo_agent_connected", 0), 10, "it is cut off")
        await asyncio.sleep(1)  # a few of its reconnects meet the outage
        await asyncio.to_thread(outage.cluster.start)
        await eventually(lambda: _metric_equals(agent, "traxo_agent_connected", 1), 20, "it reconnects")
    finally:
        await agent.stop()
    log = api.log()[logged_before:]
    assert "Traceback" not in log, log[-3000:]
    assert "sqlalchemy" not in agent.log(), agent.log()[-3000:]  # the database's errors stay ours


@pytest.mark.slow
@pytest.mark.postgres_only  # a PostgreSQL cluster of the test's own, stopped and started (its binaries)
async def test_a_session_closed_on_a_connection_the_database_dropped_raises_nothing(outage: Outage) -> None:
    """A route's session closes after its answer is out: a failure then was an unhandled 500 and a
    traceback for a request that had been answered (seen under load in the test below)."""
    db = Database(outage.cluster.url)
    try:
        async with db.session() as session:
            assert await session.scalar(text("SELECT 1")) == 1  # a transaction open on its connection
            await asyncio.to_thread(outage.cluster.stop)
    finally:
        await asyncio.to_thread(outage.cluster.start)
        await db.dispose()


@pytest.mark.slow
@pytest.mark.postgres_only  # a PostgreSQL cluster of the test's own, stopped and started (its binaries)
async def test_a_database_restart_answers_503_meanwhile_and_the_api_recovers_by_itself(
    outage: Outage,
) -> None:
    api = outage.api
    logged_before = len(api.log())
    rounds: list[tuple[float, float, list[Answer]]] = []  # (began, ended, its answers), back to back
    load_stops = asyncio.Event()

    async def load(client: httpx.AsyncClient) -> None:
        while not load_stops.is_set():
            began = time.monotonic()
            answers = await _round(outage, client, len(rounds))
            rounds.append((began, time.monotonic(), answers))

    def rounds_since(moment: float) -> list[list[Answer]]:
        return [answers for began, _, answers in rounds if began >= moment]

    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        # An earlier test's restart left this pool's connections dead: the first requests find it.
        await eventually(lambda: _succeeds(outage, client), 10, "a round that succeeds", 0.1)
        loading = asyncio.create_task(load(client))
        try:
            await eventually(lambda: len(rounds) >= 3, 20, "rounds before the outage", 0.05)
            await asyncio.to_thread(outage.cluster.stop)  # requests in flight meet it
            stopped = time.monotonic()
            await eventually(lambda: len(rounds_since(stopped)) >= 5, 20, "rounds in the outage", 0.05)
            starting = time.monotonic()
            await asyncio.to_thread(outage.cluster.start)
            started_at = time.time()
            recovered = await eventually(
                lambda: next((b for b, _, a in rounds if b >= starting and _succeeded(a)), None),
                15,
                "a round in which every kind of request succeeds",
                0.05,
            )
            assert recovered is not None  # eventually() returns the first truthy value
            await eventually(lambda: len(rounds_since(recovered)) >= 4, 20, "rounds after it", 0.05)
        finally:
            load_stops.set()
            await loading

        async def jobs_ran() -> bool:
            """Each periodic job has had a round that succeeded since the cluster started."""
            exposition = (await client.get("/metrics")).text
            return all(_sample(exposition, _LAST_SUCCESS.format(job)) > started_at for job in _JOBS)

        await eventually(jobs_ran, 20, f"rounds of {', '.join(_JOBS)} after the restart", 0.5)

    everything = [answer for _, _, answers in rounds for answer in answers]
    assert _succeeded(rounds[0][2]), rounds[0]
    # Whenever it came, an answer is a success or a clean 503: never a 500, never a dropped connection.
    unclean = [
        answer
        for answer in everything
        if not 200 <= answer.status < 300
        and not answer.clean_unavailable
        and not (answer.name == "readyz" and answer.status == 503 and answer.body.get("status") == "unready")
    ]
    assert not unclean, unclean
    # Rounds wholly within the outage (one still going when the start began may meet the database back).
    outage_answers = [
        a for began, ended, answers in rounds if stopped <= began and ended < starting for a in answers
    ]
    assert outage_answers, rounds
    assert [a for a in outage_answers if a.status != 503] == []
    after = [answer for answers in rounds_since(recovered) for answer in answers]
    assert _succeeded(after), [answer for answer in after if answer.status >= 300]
    assert api.process is not None and api.process.returncode is None
    print(
        f"{len(rounds)} rounds of {len(rounds[0][2])} requests; {len(outage_answers)} answers in the "
        f"outage, all 503; recovered {recovered - starting:.1f} s after the cluster's start began"
    )

    # The workers survived: the periodic jobs have had rounds that succeeded since the restart
    # (above), and an incident written now is delivered by the alerts loop.
    await outage.db.engine.dispose()  # this process's own pool: its connections died with the server
    now = utcnow()
    monitor = await insert_monitor(outage.db, outage.owner.org_id or "", name="after the outage")
    incident_id = await open_down(outage.db, monitor, now)

    async def delivered() -> bool:
        rows = [row for row in await deliveries(outage.db) if row.incident_id == incident_id]
        return bool(rows) and all(row.status == "delivered" for row in rows)

    await eventually(delivered, 15, "the alerts loop delivers an incident opened after the restart", 0.2)
    assert [kind for _, kind in outage.hooks.of(monitor.id)] == ["incident.opened"]

    log = api.log()[logged_before:]
    assert "Traceback" not in log, log[-5000:]
    assert "database unavailable, answered 503" in log
    # One line when the outage began (then one per 10 s), not one per request answered 503.
    assert log.count("database unavailable, answered 503") <= 3, log[-5000:]

    # A clean shutdown afterwards: the alerts loop's lease connection, which died in the outage,
    # has nothing to release (its session's lock went with it), and says no outage that is over.
    api.signal(signal.SIGTERM)
    code, _ = await api.exited(30)
    shutdown = api.log().partition("SIGTERM received")[2]
    assert code == 0, shutdown
    assert "unavailable" not in shutdown, shutdown


# -- the rule itself ------------------------------------------------------------------------------


def _raised(error: Exception, *, connection_invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, error, connection_invalidated=connection_invalidated)


def test_it_tells_an_unreachable_database_from_a_statements_own_error() -> None:
    """What the 503 answers and the workers' quiet lines are for, and what keeps its 500."""
    refused = psycopg.OperationalError("connection failed: Connection refused")
    assert database_unavailable(OperationalError("SELECT 1", None, refused))
    assert database_unavailable(_raised(psycopg.errors.AdminShutdown("terminating connection")))
    assert database_unavailable(
        _raised(psycopg.errors.CannotConnectNow("the database system is starting up"))
    )
    assert database_unavailable(_raised(ValueError("anything"), connection_invalidated=True))
    assert database_unavailable(PoolTimeout("QueuePool limit of size 20 overflow 20 reached"))
    assert database_unavailable(_raised(sqlite3.OperationalError("database is locked")))
    # Raised by psycopg itself, on the paths that use its connection directly (results, AI ingest).
    assert database_unavailable(psycopg.errors.AdminShutdown("terminating connection"))
    assert not database_unavailable(psycopg.errors.UniqueViolation("duplicate key"))

    assert database_unavailable(_raised(psycopg.errors.TooManyConnections("too many clients")))
    assert database_unavailable(_raised(psycopg.errors.ReadOnlySqlTransaction("read-only")))  # failover
    assert not database_unavailable(_raised(psycopg.errors.DeadlockDetected("deadlock detected")))
    assert not database_unavailable(_raised(psycopg.errors.UniqueViolation("duplicate key")))
    assert not database_unavailable(_raised(psycopg.errors.QueryCanceled("statement timeout")))
    assert not database_unavailable(_raised(sqlite3.OperationalError("no such table: monitors")))
    assert not database_unavailable(ConnectionRefusedError("an outbound call's, not the database's"))


def test_an_outage_is_one_warning_line_per_window_with_the_count_since(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = UnavailableLog(every=10, clock=lambda: now[0])
    error = OperationalError("SELECT 1", None, psycopg.OperationalError("connection failed"))
    with caplog.at_level(logging.WARNING, logger="control_plane.db"):
        for path in ("/api/monitors", "/api/incidents", "/status/acme"):
            outage.note("GET", path, error, None)
        now[0] += 10
        outage.note("POST", "/api/heartbeat/x", error, None)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable, answered 503 to GET /api/monitors: OperationalError")
    assert "POST /api/heartbeat/x (2 more answered 503 since the last line)" in lines[1]


def test_background_work_meeting_an_outage_is_one_line_per_window_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The loops that retry each second or half lease (the alerts pass, the coordinator's passes,
    lastCheck writes, AI ingest groups) say an outage once per window, not once a retry."""
    now = [100.0]
    outage = UnavailableLog(every=10, clock=lambda: now[0])
    error = OperationalError("SELECT 1", None, psycopg.OperationalError("connection failed"))
    with caplog.at_level(logging.WARNING, logger="control_plane.db"):
        for _ in range(5):
            assert outage.outage_noted("the alerts pass", error)
            now[0] += 1
        now[0] += 6
        assert outage.outage_noted("the alerts pass", error)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "database unavailable, the alerts pass failed; retrying: OperationalError: connection failed",
        "database unavailable, the alerts pass failed; retrying (4 more failures since the last line): "
        "OperationalError: connection failed",
    ], lines


async def test_only_an_unreachable_database_is_a_503_a_statements_own_error_stays_a_500(
    settings: Settings, runtime: Runtime
) -> None:
    """The handler answers what database_unavailable says; any other database error goes on to the
    unhandled error's 500, its traceback logged, as before."""
    app = create_app(settings, runtime)
    raised: dict[str, Exception] = {
        "refused": OperationalError("SELECT 1", None, psycopg.OperationalError("connection failed")),
        "deadlock": _raised(psycopg.errors.DeadlockDetected("deadlock detected")),
        "driver's own": psycopg.errors.AdminShutdown("terminating connection"),
    }

    @app.get("/raise/{name}")
    async def raise_it(name: str) -> None:
        raise raised[name]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        refused = await client.get("/raise/refused")
        deadlock = await client.get("/raise/deadlock")
        driver = await client.get("/raise/driver's own")
    assert refused.status_code == driver.status_code == 503
    assert driver.headers["retry-after"] == "5"
    assert refused.headers["retry-after"] == "5"
    assert refused.json() == {"error": "The database is unavailable; try again in 5 s"}
    assert deadlock.status_code == 500
    assert deadlock.json()["error"] == "Internal server error"
