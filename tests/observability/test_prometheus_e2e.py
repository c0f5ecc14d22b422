"""A real Prometheus scrapes a real deployment: `traxo api` (REST and gRPC, no workers: bearer
token), `traxo worker --metrics-port` (the workers, token too) and a `traxo-agent` checking an HTTP
monitor against a loopback server, every second. Its query API must return the monitor's
`traxo_monitor_up`, the API's HTTP series by route template, the agents' series from both sides
and the worker's rounds; `promtool check metrics` must pass on the three expositions."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from control_plane import migrate
from control_plane.agents import tokens
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.settings import Plan
from tests.conftest import make_account, make_org
from tests.factories import insert_monitor
from tests.processes import BIN, command_env, free_port
from tests.tools import require_program
from tests.waiting import eventually

# Once, in the SQLite pass: what the processes expose does not depend on their database.
pytestmark = [pytest.mark.slow, pytest.mark.one_pass]

TOKEN = "prometheus-e2e-token-5f0c2a7d9e"
REGION = "prom-east"


class Processes:
    """Subprocesses whose output goes to log files, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        with (self.directory / f"{name}.log").open("wb") as log:
            self.running[name] = await asyncio.create_subprocess_exec(
                *args, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )

    def check_alive(self) -> None:
        for name, process in self.running.items():
            assert process.returncode is None, f"{name} exited with {process.returncode}:\n{self.log(name)}"

    def log(self, name: str) -> str:
        return "\n".join((self.directory / f"{name}.log").read_text(errors="replace").splitlines()[-30:])

    async def stop_all(self) -> None:
        for process in self.running.values():
            if process.returncode is None:
                process.terminate()
        for process in self.running.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """The monitored site: a loopback HTTP server answering 200."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="checkout works")

    app = web.Application()
    app.router.add_get("/checkout", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/checkout"
    await runner.cleanup()


async def answers(url: str, **kwargs: Any) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, timeout=1, **kwargs)).status_code == 200
    except httpx.HTTPError:
        return False


async def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """The instant vector Prometheus' HTTP API answers for `promql` (empty while it has none)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=2)
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def promtool_check(promtool: str, exposition: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


async def test_prometheus_scrapes_the_control_plane_the_worker_and_an_agent(
    fresh_database_url: str, tmp_path: Path, target: str
) -> None:
    prometheus = require_program("prometheus")
    promtool = require_program("promtool")
    api_port, grpc_port, worker_port, agent_port, prometheus_port = (free_port() for _ in range(5))
    env = command_env(
        fresh_database_url,
        TRAXO_METRICS_TOKEN=TOKEN,
        TRAXO_REGIONS=REGION,
        TRAXO_DEFAULT_REGIONS=REGION,
        # The monitor is inserted into the database, which no change notification announces.
        TRAXO_AGENT_FULL_PASS_SECONDS="1",
        TRAXO_LOG_LEVEL="info",
    )
    await asyncio.to_thread(migrate.upgrade, fresh_database_url)
    db = Database(fresh_database_url)
    async with db.session() as session:
        _, agent_token = await tokens.create_token(session, region=REGION, now=utcnow())
    owner = await make_account(db, "ops@prometheus.example", "Ops")
    await make_org(db, owner, "prometheus-org", plan=Plan.ENTERPRISE)
    monitor = await insert_monitor(
        db, owner.org_id or "", name="Checkout page", url=target, interval=1, timeout=1, regions=[REGION]
    )
    await db.dispose()

    config = tmp_path / "prometheus.yml"  # JSON is YAML
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": name,
                        "authorization": {"type": "Bearer", "credentials": TOKEN} if with_token else None,
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    }
                    for name, port, with_token in (
                        ("traxo-api", api_port, True),
                        ("traxo-worker", worker_port, True),
                        ("traxo-agent", agent_port, False),
                    )
                ],
            }
        ).replace(', "authorization": null', "")
    )
    processes = Processes(tmp_path)
    traxo = str(BIN / "traxo")
    try:
        await processes.start(
            "api", traxo, "api", "--host", "127.0.0.1", "--port", str(api_port),
            "--grpc-port", str(grpc_port), "--no-workers", "--no-migrate", env=env,
        )  # fmt: skip
        await processes.start(
            "worker",
            traxo,
            "worker",
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(worker_port),
            env=env,
        )
        agent_env = {**command_env(None), "TRAXO_AGENT_TOKEN": agent_token}
        await processes.start(
            "agent", str(BIN / "traxo-agent"), "--control-plane", f"127.0.0.1:{grpc_port}",
            "--region", REGION, "--name", "prom-agent", "--spool", str(tmp_path / "agent.spool"),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(agent_port), env=agent_env,
        )  # fmt: skip
        await processes.start(
            "prometheus", prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn",
        )  # fmt: skip
        api_url, prometheus_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prometheus_port}"

        async def ready() -> bool:
            processes.check_alive()
            return await answers(f"{api_url}/readyz") and await answers(f"{prometheus_url}/-/ready")

        await eventually(ready, 30, "traxo api and Prometheus ready", 0.1)
        async with httpx.AsyncClient(base_url=api_url, headers=owner.headers) as client:
            # One request through a templated route, which the API's series must name by its template.
            assert (await client.get(f"/api/monitors/{monitor.id}")).status_code == 200

        async def series(promql: str, value: str | None = None) -> list[dict[str, Any]]:
            processes.check_alive()
            found = await query(prometheus_url, promql)
            return [s for s in found if value is None or s["value"][1] == value]

        [up] = await eventually(
            lambda: series(f'traxo_monitor_up{{monitor_id="{monitor.id}"}}', "1"),
            20,
            "traxo_monitor_up 1",
            0.2,
        )
        assert up["metric"] == {
            "__name__": "traxo_monitor_up",
            "instance": f"127.0.0.1:{api_port}",
            "job": "traxo-api",
            "monitor_id": monitor.id,
            "name": "Checkout page",
            "region": REGION,
        }
        [requests] = await eventually(
            lambda: series('traxo_http_requests_total{route="/api/monitors/{monitor_id}",status="200"}', "1"),
            10,
            "the API's request by its route template",
            0.2,
        )
        assert requests["metric"]["method"] == "GET" and requests["metric"]["job"] == "traxo-api"
        assert await series(f'traxo_monitor_response_seconds{{monitor_id="{monitor.id}"}} > 0')
        assert await series(f'traxo_agents_connected{{region="{REGION}"}}', "1")
        assert await series(f'traxo_assignments{{region="{REGION}"}}', "1")
        assert await eventually(
            lambda: series(f'traxo_agents_result_batches_total{{region="{REGION}",outcome="acked"}} > 0'), 10
        )
        # The results bound: its size, and what is in use (nothing once the batches are acked).
        assert await series('traxo_agents_result_batches_limit{job="traxo-api"}', "32")
        assert await series('traxo_agents_result_batches_storing{job="traxo-api"} >= 0')
        # Eventually, as the other agent series: the agent's own target is scraped on its own
        # schedule, and a scrape that timed out (1 s) on a busy machine leaves no sample yet.
        assert await eventually(lambda: series('traxo_agent_connected{job="traxo-agent"}', "1"), 10)
        assert await eventually(
            lambda: series('traxo_agent_checks_total{job="traxo-agent",type="HTTP",status="UP"} > 0'), 10
        )
        assert await eventually(
            lambda: series('traxo_worker_job_runs_total{job="traxo-worker",outcome="ok"} > 0'), 10
        )
        assert {s["metric"]["job"] for s in await series("up", "1")} == {
            "traxo-api",
            "traxo-worker",
            "traxo-agent",
        }

        async with httpx.AsyncClient() as client:
            refused = await client.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=2)
            assert refused.status_code == 401 and "TRAXO_METRICS_TOKEN" in refused.json()["error"]
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            expositions = [
                (await client.get(f"{api_url}/metrics", headers=bearer, timeout=5)).text,
                (await client.get(f"http://127.0.0.1:{worker_port}/metrics", headers=bearer, timeout=5)).text,
                (await client.get(f"http://127.0.0.1:{agent_port}/metrics", timeout=5)).text,
            ]
        for exposition in expositions:
            assert "traxo_" in exposition
            await asyncio.to_thread(promtool_check, promtool, exposition)
    except BaseException:
        for name in processes.running:
            print(f"--- {name} ---\n{processes.log(name)}")
        raise
    finally:
        await processes.stop_all()
