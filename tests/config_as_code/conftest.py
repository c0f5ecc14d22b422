"""A real `traxo api` on a scratch database of the suite's kind, a counting proxy in front of it (to
prove what an apply wrote), and organizations with keys for `traxo apply` and `traxo export`."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from control_plane import migrate
from control_plane.db import Database
from control_plane.settings import Plan
from tests.config_as_code.support import Server, counting_proxy
from tests.conftest import Account, make_account, make_org
from tests.databases import scratch_database
from tests.processes import BIN, command_env, stop
from tests.waiting import eventually_sync

_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="package")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("config_as_code")
    with scratch_database(database_url, directory, "traxo_cac") as url:
        migrate.upgrade(url)
        log_path = directory / "api.log"
        env = command_env(
            url,
            TRAXO_LOG_LEVEL="info",
            # Channels' URLs point at 127.0.0.1 (tests send nothing outside it), which this allows.
            TRAXO_ALERTS_ALLOW_PRIVATE_URLS="true",
            TRAXO_REGIONS="us-east-1,eu-west-1",
        )
        args = [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", "0"]
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [*args, "--no-workers", "--no-grpc", "--no-migrate"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            port = eventually_sync(lambda: _listening(log_path, process), 60, "traxo api to listen", 0.05)
            api_url = f"http://127.0.0.1:{port}"
            with httpx.Client(timeout=30) as client, counting_proxy(api_url, client) as proxy:
                eventually_sync(lambda: _ready(client, api_url), 60, "traxo api to answer /readyz", 0.05)
                yield Server(api_url, proxy, url)
        finally:
            stop(process)


def _listening(log_path: Path, process: subprocess.Popen[str]) -> int | None:
    text = log_path.read_text(errors="replace")
    if process.poll() is not None:
        raise AssertionError(f"traxo api exited with {process.returncode}:\n{text}")
    match = _LISTENING.search(text)
    return int(match[1]) if match else None


def _ready(client: httpx.Client, api_url: str) -> bool:
    try:
        return client.get(f"{api_url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="package")
async def server_database(server: Server) -> AsyncIterator[Database]:
    db = Database(server.database_url)
    await db.start()
    yield db
    await db.dispose()


_orgs = iter(range(1, 1_000_000))


async def new_org(db: Database, plan: Plan = Plan.ENTERPRISE) -> Account:
    """An organization of its own (by default ENTERPRISE: 15 s intervals, no monitor limit) and its
    owner's key."""
    n = next(_orgs)
    owner = await make_account(db, f"owner{n}@cac.example", f"Owner {n}")
    await make_org(db, owner, f"cac-org-{n}", plan)
    return owner


@pytest.fixture
async def org(server_database: Database, server: Server) -> Account:
    server.proxy.requests.clear()
    return await new_org(server_database)


@pytest.fixture
async def other_org(server_database: Database, org: Account) -> Account:
    return await new_org(server_database)


@pytest.fixture
async def free_org(server_database: Database, server: Server) -> Account:
    server.proxy.requests.clear()
    return await new_org(server_database, Plan.FREE)
