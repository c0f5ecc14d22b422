"""A client generated from the served OpenAPI document works: openapi-python-client writes one from
a live `traxo api`'s /api/openapi.json, and a monitor's whole life cycle goes through its typed
functions and models (create, read, list, update, pause, resume, checks, delete), every answer
parsed into the model its status documents."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.results import ResultIn, record_results
from control_plane.services import accounts, organizations
from control_plane.settings import Plan
from tests.api_server import ApiServer, sqlite_url, traxo_api
from tests.processes import BIN

pytestmark = pytest.mark.slow

PACKAGE = "traxo_api_client"  # what the generator names the document's title, "Traxo API"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with traxo_api(tmp_path_factory.mktemp("generated_client"), migrate=True) as server:
        yield server


@pytest.fixture
def client_package(served: ApiServer, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated package, importable for this test only."""
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{served.base_url}/api/openapi.json", timeout=10).content)
    generated = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(document), "--meta", "none"],
        cwd=tmp_path,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},  # its post hook runs the venv's ruff on what it wrote
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    # Only what it cannot type is left out (binary, images, feeds): no model of ours is.
    assert "Unable to" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


async def _owner_key(served: ApiServer) -> str:
    db = Database(sqlite_url(served.log_path.parent))
    try:
        async with db.session() as session:
            user, key = await accounts.create_user(
                session, email="owner@client.example", name="Owner", now=utcnow()
            )
            await organizations.create_organization(
                session, user_id=user.id, name="Client", slug="client", plan=Plan.PRO, now=utcnow()
            )
        return key
    finally:
        await db.dispose()


async def _record_checks(served: ApiServer, monitor_id: str) -> list[str]:
    """What an agent would have sent: no agent runs here."""
    now = datetime.now(UTC)
    results = [
        ResultIn(
            id=new_id("chk"),
            monitor_id=monitor_id,
            region="us-east-1",
            status=status,
            checked_at=now - timedelta(minutes=index),
            response_time=120.0,
            status_code=200 if status == "UP" else 503,
            error_kind=None if status == "UP" else "http_status",
            error_message=None if status == "UP" else "HTTP 503 (expected 200)",
        )
        for index, status in enumerate(("UP", "DOWN"))
    ]
    db = Database(sqlite_url(served.log_path.parent))
    try:
        async with db.session() as session:
            await record_results(session, results)
        return [result.id for result in results]
    finally:
        await db.dispose()


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


async def test_a_monitor_lives_its_life_through_a_generated_client(
    served: ApiServer, client_package: ModuleType
) -> None:
    key = await _owner_key(served)
    models = _module(client_package, "models")
    monitors = {
        operation: _module(client_package, f"api.monitors.{operation}")
        for operation in (
            "create_monitor",
            "get_monitor",
            "list_monitors",
            "update_monitor",
            "pause_monitor",
            "resume_monitor",
            "list_checks",
            "delete_monitor",
        )
    }
    client = client_package.AuthenticatedClient(
        base_url=served.base_url, token=key, raise_on_unexpected_status=True
    )
    with client:
        body = models.MonitorCreate(
            name="Checkout",
            type_=models.MonitorCreateType.HTTP,
            url="https://shop.example/health",
            interval=300,
            regions=["us-east-1"],
        )
        created = monitors["create_monitor"].sync_detailed(client=client, body=body)
        assert created.status_code == 201
        assert isinstance(created.parsed, models.MonitorResponse)
        monitor = created.parsed.data
        assert monitor.id.startswith("mon_")
        assert (monitor.name, monitor.type_, monitor.interval, monitor.is_active) == (
            "Checkout",
            models.MonitorOutType.HTTP,
            300,
            True,
        )

        read = monitors["get_monitor"].sync(monitor.id, client=client)
        assert isinstance(read, models.MonitorDetailResponse)
        assert (read.data.id, read.data.url, read.data.regions) == (
            monitor.id,
            "https://shop.example/health",
            ["us-east-1"],
        )
        assert read.data.checks == []

        listed = monitors["list_monitors"].sync(client=client)
        assert isinstance(listed, models.MonitorSummaryListResponse)
        assert [summary.id for summary in listed.data] == [monitor.id]

        update = models.MonitorUpdate(name="Checkout (EU)", regions=["us-east-1"])
        updated = monitors["update_monitor"].sync(monitor.id, client=client, body=update)
        assert isinstance(updated, models.MonitorUpdatedResponse)
        assert updated.data.name == "Checkout (EU)"

        paused = monitors["pause_monitor"].sync(monitor.id, client=client)
        assert isinstance(paused, models.MonitorStateResponse)
        assert paused.data.is_active is False
        resumed = monitors["resume_monitor"].sync(monitor.id, client=client)
        assert isinstance(resumed, models.MonitorStateResponse)
        assert resumed.data.is_active is True

        check_ids = await _record_checks(served, monitor.id)
        checks = monitors["list_checks"].sync(monitor.id, client=client, limit=10)
        assert isinstance(checks, models.CheckPageResponse)
        assert [check.id for check in checks.data] == check_ids  # newest first
        up, down = checks.data
        assert (up.status, up.status_code, up.region) == (models.CheckOutStatus.UP, 200, "us-east-1")
        assert (down.status, down.error_kind) == (models.CheckOutStatus.DOWN, "http_status")
        assert isinstance(down.checked_at, datetime) and down.checked_at < up.checked_at

        deleted = monitors["delete_monitor"].sync(monitor.id, client=client)
        assert isinstance(deleted, models.MessageResponse)
        gone = monitors["get_monitor"].sync_detailed(monitor.id, client=client)
        assert gone.status_code == 404
        assert isinstance(gone.parsed, models.ErrorResponse)
        assert gone.parsed.error == "Monitor not found"
