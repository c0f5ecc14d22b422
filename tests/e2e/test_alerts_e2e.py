"""Alerts end to end: `traxo api` with its workers (the alerts job among them) and a real agent
probe a local target; the organization's WEBHOOK channel points at a local receiver. A target
that fails and recovers sends "opened" then "resolved", each once; an API killed while the
receiver holds a webhook, and started again, sends it again under the same webhook-id once the
lease has run out, and none is lost."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import signal
from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select

from control_plane import migrate
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Incident
from control_plane.models.alerts import AlertDelivery
from control_plane.settings import Plan
from tests.alert_delivery_support import insert_channel
from tests.conftest import make_account, make_org
from tests.databases import scratch_database
from tests.e2e.test_agents_e2e import (
    BIN,
    EAST,
    Cluster,
    Process,
    Target,
    _connected,
    _create_token,
)
from tests.e2e.test_incidents_e2e import Switch
from tests.processes import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow

INTERVAL_S = 2
SEND_TIMEOUT_S = 1  # with a batch of 20: a lease of (1 + 5) + 5 = 11 s


class Hooks:
    """The webhook receiver: every request's id and type, in arrival order; `hang` holds them."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []  # (webhook-id, type, monitor id)
        self.hang = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        event = json.loads(await request.read())
        monitor = (event.get("data") or {}).get("monitor") or {}
        self.received.append((request.headers.get("webhook-id", ""), event["type"], monitor.get("id", "")))
        if self.hang:
            await asyncio.Event().wait()
        return web.Response(text="ok")

    def of(self, monitor_id: str) -> list[tuple[str, str]]:
        return [(webhook_id, kind) for webhook_id, kind, monitor in self.received if monitor == monitor_id]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclasses.dataclass
class AlertCluster(Cluster):
    """The agents' e2e cluster with the API's workers on and loopback alert URLs allowed."""

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "TRAXO_ALERTS_ALLOW_PRIVATE_URLS": "true",
            "TRAXO_ALERT_SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT_S),
            "TRAXO_ALERT_DELIVERY_BATCH": "20",
        }

    async def start_api(self) -> None:
        args = [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--grpc-port", str(self.grpc_port), "--no-migrate"]
        self.api = Process("api", args, self.env(), self.tmp / "api.log")
        await self.api.start()

        async def ready() -> bool:
            assert self.api is not None and self.api.running, self.api.log_tail() if self.api else ""
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.base_url}/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, 30, "the API answers /readyz")


@dataclasses.dataclass
class Setup:
    cluster: AlertCluster
    switch: Switch
    hooks: Hooks


@pytest.fixture(scope="module")
async def setup(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    tmp = tmp_path_factory.mktemp("alerts-e2e")
    with scratch_database(database_url, tmp, "traxo_alerts_e2e") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        db = Database(url)
        owner = await make_account(db, "ops@alerts.example", "Ops")
        await make_org(db, owner, "alerts-org", plan=Plan.ENTERPRISE)
        switch, hooks = Switch(), Hooks()
        await switch.start()
        await hooks.start()
        await insert_channel(db, owner.org_id or "", config={"url": hooks.url}, created_at=utcnow())
        cluster = AlertCluster(tmp, url, db, owner, tmp / "no-ca.pem", Target(), Target(), free_port())
        (tmp / "no-ca.pem").write_text("")
        try:
            cluster.tokens[EAST] = await asyncio.to_thread(_create_token, cluster.env(), EAST)
            await cluster.start_api()
            agent = await cluster.start_agent("east-1", EAST)
            await eventually(partial(_connected, agent), 30, "the agent connects")
            yield Setup(cluster, switch, hooks)
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            for process in (*cluster.agents.values(), cluster.api):
                if process is not None:
                    await process.stop()
            await hooks.stop()
            await switch.stop()
            await db.dispose()


async def _deliveries(setup: Setup, monitor_id: str) -> list[AlertDelivery]:
    """Of its DOWN incidents (a restart's gap in checks opens a NO_DATA one as well)."""
    async with setup.cluster.db.session() as session:
        query = (
            select(AlertDelivery)
            .join(Incident, Incident.id == AlertDelivery.incident_id)
            .where(Incident.monitor_id == monitor_id)
        )
        return list(await session.scalars(query))


async def test_a_failing_target_sends_opened_then_resolved_each_once(setup: Setup) -> None:
    path = "/flaky"
    monitor = await setup.cluster.monitor(
        "flaky", "", [EAST], url=f"{setup.switch.url}{path}", interval=INTERVAL_S
    )
    await asyncio.sleep(INTERVAL_S * 2)
    setup.switch.failing.add(path)

    async def opened() -> list[tuple[str, str]]:
        return setup.hooks.of(monitor)

    await eventually(opened, 2 * INTERVAL_S + 8, "the opened webhook arrives")
    setup.switch.failing.discard(path)

    async def resolved() -> bool:
        return [kind for _, kind in setup.hooks.of(monitor)][-1:] == ["incident.resolved"]

    await eventually(resolved, 2 * INTERVAL_S + 8, "the resolved webhook arrives")
    await asyncio.sleep(2)  # nothing more comes
    received = setup.hooks.of(monitor)
    assert [kind for _, kind in received] == ["incident.opened", "incident.resolved"]
    assert len({webhook_id for webhook_id, _ in received}) == 2
    assert {row.status for row in await _deliveries(setup, monitor)} == {"delivered"}


async def test_an_api_killed_mid_send_sends_it_again_after_restart(setup: Setup) -> None:
    path = "/killed"
    monitor = await setup.cluster.monitor(
        "killed", "", [EAST], url=f"{setup.switch.url}{path}", interval=INTERVAL_S
    )
    await asyncio.sleep(INTERVAL_S * 2)
    setup.hooks.hang = True
    setup.switch.failing.add(path)

    async def held() -> list[tuple[str, str]]:
        return setup.hooks.of(monitor)

    [(first_id, kind)] = await eventually(held, 2 * INTERVAL_S + 8, "the webhook reaches the receiver")
    assert kind == "incident.opened"
    assert setup.cluster.api is not None
    await setup.cluster.api.signal(signal.SIGKILL)  # killed while the receiver holds it
    setup.hooks.hang = False
    [row] = await _deliveries(setup, monitor)
    assert (row.status, row.attempts) == ("pending", 0)
    await setup.cluster.start_api()

    async def delivered() -> bool:
        # That delivery: on a loaded machine the restart can outlast three intervals of the agent's
        # results, and a NO_DATA incident of its own opens and resolves meanwhile (its deliveries
        # are other rows).
        return [r.status for r in await _deliveries(setup, monitor) if r.id == row.id] == ["delivered"]

    try:
        await eventually(delivered, 30, "the delivery goes out again after its lease")
    except AssertionError as exc:  # say what there was instead
        rows = [(r.kind, r.status, r.attempts, r.claimed_until) for r in await _deliveries(setup, monitor)]
        raise AssertionError(f"{exc}; deliveries: {rows}; received: {setup.hooks.of(monitor)}") from None
    ids = collections.Counter(webhook_id for webhook_id, _ in setup.hooks.of(monitor))
    assert ids[first_id] == 2  # the same id twice (killed, then resent); a receiver dedups it
    assert row.idempotency_key == first_id
    setup.switch.failing.discard(path)
