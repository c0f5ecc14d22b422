"""Faults of the control plane's half (issue 16), each with real processes: `traxo api` SIGKILLed
while it ingests agents' results and AI events, PostgreSQL stopped and started under `traxo api`,
and `traxo worker` SIGKILLed mid-delivery.

Covered elsewhere, not repeated here:
- `traxo api` SIGKILLed at a random moment while two agents stream results, and an agent restarted
  with its spool meanwhile: tests/e2e/test_agents_e2e.py,
  test_a_control_plane_outage_and_an_agent_restart_lose_and_duplicate_nothing. The test here kills
  it while it takes an agent's spool replay of hundreds of results, batches in flight.
- `traxo api` (its alerts job) SIGKILLed while a receiver holds the webhook, then sent again under
  the same webhook-id: tests/e2e/test_alerts_e2e.py,
  test_an_api_killed_mid_send_sends_it_again_after_restart. The test here does it to `traxo worker`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from control_plane import migrate
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.settings import Plan
from tests.ai.support import insert_llm_monitor
from tests.alert_delivery_support import deliveries, insert_channel, open_down
from tests.conftest import Account, make_account, make_org
from tests.e2e.test_alerts_e2e import Hooks
from tests.factories import insert_monitor
from tests.operations.support import ApiProcess
from tests.processes import command_env
from tests.reliability.fault_support import Answer, PgCluster, answer_of
from tests.waiting import eventually

pytestmark = pytest.mark.slow


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
    event = {
        "provider": "openai",
        "model": "gpt-4o",
        "promptTokens": 1,
        "completionTokens": 1,
        "latencyMs": 1,
    }
    requests = {
        "list monitors": client.get("/api/monitors", headers=auth),
        "read monitor": client.get(f"/api/monitors/{outage.monitor_id}", headers=auth),
        "rename monitor": client.put(
            f"/api/monitors/{outage.monitor_id}", headers=auth, json={"name": f"written {number}"}
        ),
        "dashboard": client.get("/api/dashboard/stats", headers=auth),
        "ai ingest": client.post(f"/api/ai/ingest/{outage.llm_monitor_id}", json=event),
        "heartbeat ping": client.post(f"/api/heartbeat/{outage.heartbeat_token}"),
        "public page": client.get(f"/api/status-pages/{outage.page_slug}"),
        "page html": client.get(f"/status/{outage.page_slug}"),
        "readyz": client.get("/readyz"),
    }
    return list(await asyncio.gather(*(answer_of(name, request) for name, request in requests.items())))


def _succeeded(answers: list[Answer]) -> bool:
    return all(200 <= answer.status < 300 for answer in answers)


@pytest.mark.postgres_only  # a PostgreSQL cluster of the test's own, stopped and started (its binaries)
async def test_a_database_restart_answers_503_meanwhile_and_the_api_recovers_by_itself(
    outage: Outage,
) -> None:
    api = outage.api
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        before = await _round(outage, client, 0)
        assert _succeeded(before), before

        await asyncio.to_thread(outage.cluster.stop)
        down: list[Answer] = []
        for number in range(1, 6):
            down += await _round(outage, client, number)
        readiness = [answer for answer in down if answer.name == "readyz"]
        assert all(a.status == 503 and a.body["status"] == "unready" for a in readiness), readiness
        unclean = [answer for answer in down if answer.name != "readyz" and not answer.clean_unavailable]
        assert not unclean, unclean
        assert api.process is not None and api.process.returncode is None

        await asyncio.to_thread(outage.cluster.start)
        started = time.monotonic()
        rounds = 0

        async def recovered() -> bool:
            nonlocal rounds
            rounds += 1
            answers = await _round(outage, client, 100 + rounds)
            assert all(a.status in (200, 201, 503) for a in answers), answers  # never a 500
            return _succeeded(answers)

        await eventually(recovered, 15, "every kind of request succeeds again", 0.2)
        recovery = time.monotonic() - started
        after = [answer for number in range(3) for answer in await _round(outage, client, 200 + number)]
        assert _succeeded(after), after
    print(f"recovered {recovery:.1f} s after the cluster started ({rounds} rounds)")

    # The workers survived: an incident written now is delivered by the alerts loop, and the
    # periodic jobs have had rounds that succeeded since the restart.
    await outage.db.engine.dispose()  # this process's own pool: its connections died with the server
    now = utcnow()
    monitor = await insert_monitor(outage.db, outage.owner.org_id or "", name="after the outage")
    incident_id = await open_down(outage.db, monitor, now)

    async def delivered() -> bool:
        rows = [row for row in await deliveries(outage.db) if row.incident_id == incident_id]
        return bool(rows) and all(row.status == "delivered" for row in rows)

    await eventually(delivered, 15, "the alerts loop delivers an incident opened after the restart", 0.2)
    assert [kind for _, kind in outage.hooks.of(monitor.id)] == ["incident.opened"]

    log = api.log()
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
